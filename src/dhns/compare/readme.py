"""Keep the project README's result tables equal to the cell files.

The README quotes the comparison's summary, each cell's arm and paired tables, and the published numbers
beside ours. Typed by hand they drift from `docs/results/` as cells land; so `make compare` rewrites each
one between its pair of markers, `<!-- name:start -->` and `<!-- name:end -->`, and leaves every other
line of the README (the prose that reads the tables) as it is.
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


def refresh_readme(path: Path, blocks: Mapping[str, Sequence[str]]) -> list[str]:
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
    unplaced = [name for name in blocks if name not in done]
    if done and unplaced:  # a README that quotes results but has no place yet for these tables
        logging.warning("%s has no markers for %s: add `%s` ... `%s` where each table belongs", path,
                        ", ".join(unplaced), *markers(unplaced[0]))
    return done
