"""Figures in the docs that point at the file they come from, checked against it.

A number typed into prose drifts from the run it describes: the default run's test MRR was quoted four
different ways before this module. So a figure is written as a link to its source, a JSON file of the
repository, with the dotted key path as the link's title:

    [0.3692](metrics/eval.json "test.both.realistic.mrr")
    [182](metrics/train.json "seconds")                      integers: rounded to no digits
    [0.52%](metrics/train.json "first_batch.share")          a percent: the value times 100
    [21,310](docs/bench/x.json "graph.train")                thousands separators are optional
    [3.86](docs/bench/bench-peers.json "models.transe.training.speedup")x   the unit stays outside

The target is relative to the markdown file (as every link is); list items are numbered keys
(`sweep.rows.0.seconds_per_step`); a `.jsonl` file is the list of its lines' records (`3.valid_mrr`: the
fourth line's, as in the tuning grids of docs/tuning/). The shown text must equal the source value rounded to the digits
shown. `python -m dhns.doc_figures` lists the mismatches; `--fix` rewrites each shown number from its
source, keeping its digits, sign, separators and percent sign.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

FIGURE_LINK = re.compile(r'\[(?P<shown>[^\[\]]+)\]\((?P<target>[^\s()]+\.jsonl?) "(?P<key>[^"]+)"\)')
NUMBER = re.compile(r"(?P<sign>[+-]?)(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<decimals>\d+))?(?P<percent>%?)")


@dataclass(frozen=True)
class Figure:
    """One figure link: where it is written, what it shows and where its value lives."""

    page: Path
    line: int
    shown: str
    target: str
    key: str
    start: int  # offsets of the shown text within its line, for --fix
    end: int

    @property
    def source(self) -> Path:
        return self.page.parent / self.target


@dataclass(frozen=True)
class Mismatch:
    page: Path
    line: int
    shown: str
    source: str  # the value rounded as shown, or why there is none

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: shows {self.shown}, its source gives {self.source}"


def doc_pages(root: Path) -> list[Path]:
    """README.md and every markdown page under docs/: the pages a reader navigates."""
    pages = [root / "README.md"] if (root / "README.md").is_file() else []
    return pages + sorted((root / "docs").rglob("*.md"))


def figures_in(page: Path) -> Iterator[Figure]:
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        for match in FIGURE_LINK.finditer(line):
            yield Figure(page, number, match["shown"], match["target"], match["key"], match.start("shown"),
                         match.end("shown"))


@lru_cache(maxsize=None)
def load_json(path: Path) -> object:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def lookup(document: object, key: str) -> object:
    """The value at a dotted key path; numbered parts index lists. A missing part is a KeyError naming it."""
    value = document
    for part in key.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(f"no {part!r} in {key!r}")
    return value


def source_value(figure: Figure) -> float:
    """The number the figure's source holds; a clear error when the file, key or value is not there."""
    if not figure.source.is_file():
        raise ValueError(f"no file {figure.target}")
    try:
        value = lookup(load_json(figure.source.resolve()), figure.key)
    except KeyError as error:
        raise ValueError(f"{figure.target}: {error.args[0]}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{figure.target} is not JSON: {error}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{figure.target} {figure.key} is {value!r}, not a number")
    return float(value)


def render_like(shown: str, value: float) -> str | None:
    """`value` written the way `shown` is written (digits, sign, separators, percent); None if `shown` is no number."""
    match = NUMBER.fullmatch(shown.strip())
    if match is None:
        return None
    scaled = value * 100 if match["percent"] else value
    places = len(match["decimals"] or "")
    separator = "," if "," in match["digits"] else ""
    text = f"{abs(scaled):{separator}.{places}f}"
    negative = round(scaled, places) < 0
    sign = "-" if negative else ("+" if match["sign"] == "+" else "")
    if match["sign"] == "-" and not negative and round(scaled, places) == 0:
        sign = "-"  # a shown -0.0000 stays as written when the source rounds to zero
    return sign + text + match["percent"]


def check_figure(figure: Figure) -> Mismatch | None:
    try:
        value = source_value(figure)
    except ValueError as error:
        return Mismatch(figure.page, figure.line, figure.shown, str(error))
    expected = render_like(figure.shown, value)
    if expected is None:
        return Mismatch(figure.page, figure.line, figure.shown, f"{value!r} (the shown text is no number)")
    return None if expected == figure.shown.strip() else Mismatch(figure.page, figure.line, figure.shown, expected)


def figure_mismatches(root: Path) -> list[Mismatch]:
    """Every figure link in README.md and docs/**/*.md whose shown number is not its source's value."""
    load_json.cache_clear()  # the files may have changed since the last check
    found = (check_figure(figure) for page in doc_pages(root) for figure in figures_in(page))
    return [mismatch for mismatch in found if mismatch is not None]


def fix_page(page: Path) -> int:
    """Rewrite each wrong shown number of `page` from its source; the number of figures changed."""
    lines = page.read_text(encoding="utf-8").split("\n")
    changed = 0
    for figure in sorted(figures_in(page), key=lambda f: (f.line, -f.start)):  # right to left keeps offsets
        try:
            expected = render_like(figure.shown, source_value(figure))
        except ValueError:
            continue  # a missing source cannot be fixed from here; the check reports it
        if expected is not None and expected != figure.shown.strip():
            line = lines[figure.line - 1]
            lines[figure.line - 1] = line[:figure.start] + expected + line[figure.end:]
            changed += 1
    if changed:
        page.write_text("\n".join(lines), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhns.doc_figures", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (README.md, docs/)")
    parser.add_argument("--fix", action="store_true", help="rewrite shown numbers from their sources")
    args = parser.parse_args(argv)
    if args.fix:
        load_json.cache_clear()
        for page in doc_pages(args.root):
            if count := fix_page(page):
                print(f"{page}: {count} figure(s) rewritten")
    mismatches = figure_mismatches(args.root)
    for mismatch in mismatches:
        print(mismatch)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
