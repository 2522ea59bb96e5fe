"""Keep the result tables that the docs quote equal to the cell files.

The README and the docs pages (docs/results.md above all) quote the comparison's summary, both protocols
side by side and the published numbers beside ours. Typed by hand they drift from `docs/results/` as
cells land; so `make compare` rewrites each one between its pair of markers, `<!-- name:start -->` and
`<!-- name:end -->`, and leaves every other line (the prose that reads the tables) as it is. The pages
are found by their markers, so a block moves with its prose: no list of pages to keep in step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_block(text: str, name: str, lines: Sequence[str]) -> str:
    """`text` with the lines between the `name` markers replaced; a missing or unclosed marker is an error."""
    start, end = markers(name)
    head, found, rest = text.partition(start)
    if not found:
        raise ValueError(f"no {start} marker")
    _, closed, tail = rest.partition(end)
    if not closed:
        raise ValueError(f"{start} has no {end} after it")
    return head + start + "\n" + "".join(line + "\n" for line in lines) + end + tail


def is_cell_table(name: str) -> bool:
    """A (dataset, scorer)'s own tables (`MKG-Y/transe`, `joint/MKG-Y/transe`), not a summary.

    docs/results/README.md carries every cell's tables whole, so a page may quote one where its prose reads
    it but need not; a summary (`summary`, `joint/summary`, `protocols`, `published`) belongs on a page.
    """
    parts = name.split("/")
    return len(parts) >= 2 and parts[-1] != "summary"


def marked_pages(root: Path) -> list[Path]:
    """README.md and the markdown pages under docs/ that hold at least one result marker."""
    candidates = [root / "README.md"] + sorted((root / "docs").rglob("*.md"))
    return [page for page in candidates if page.is_file() and ":start -->" in page.read_text(encoding="utf-8")]


def refresh_page(path: Path, blocks: Mapping[str, Sequence[str]]) -> list[str]:
    """Rewrite the blocks `path` has markers for; the names of those rewritten. No file, or no markers: nothing."""
    if not path.is_file():
        return []
    text = original = path.read_text(encoding="utf-8")
    done = []
    for name, lines in blocks.items():
        if markers(name)[0] in text:
            try:
                text = replace_block(text, name, lines)
            except ValueError as error:
                raise SystemExit(f"{path}: {error}") from None
            done.append(name)
    if text != original:
        path.write_text(text, encoding="utf-8")
    logging.info("%s: %s", path, f"rewrote {', '.join(done)}" if done else "no result markers, left as it is")
    return done


def refresh_pages(pages: Sequence[Path], blocks: Mapping[str, Sequence[str]]) -> dict[Path, list[str]]:
    """Rewrite every page's marked blocks; warn about each summary block no page has a place for."""
    done = {page: refresh_page(page, blocks) for page in pages}
    placed = {name for names in done.values() for name in names}
    unplaced = [name for name in blocks if name not in placed and not is_cell_table(name)]
    if any(done.values()) and unplaced:  # pages quote results but have no place yet for these tables
        logging.warning("no page has markers for %s: add `%s` ... `%s` where each table belongs (e.g. "
                        "docs/results.md)", ", ".join(unplaced), *markers(unplaced[0]))
    return done
