"""Links between the docs pages, checked: every relative link resolves, every page is reachable.

The README is short and sends the reader to docs/; a renamed page or heading would leave a link that
goes nowhere, and a page no link reaches is a page nobody reads. `python -m dhns.doc_links` lists both.
Links and images in code (fenced blocks, `inline spans`) are text, not links, and are skipped; links
to the web (`https:`, `mailto:`) are not fetched. A `#heading` anchor is checked against the target
page's headings, slugged as GitHub does (lower case, punctuation dropped, spaces to hyphens, `-1`, `-2`
for repeats).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from dhns.doc_figures import doc_pages

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?(?P<target>[^\s)>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str


@dataclass(frozen=True)
class BrokenLink:
    page: Path
    line: int
    target: str
    problem: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.target}: {self.problem}"


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Numbered lines outside fenced code, with inline code spans blanked out."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub("", line)


def links_in(page: Path) -> list[Link]:
    found = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        targets = [match["target"] for match in LINK.finditer(line)]
        if reference := REFERENCE.match(line):
            targets.append(reference["target"])
        found += [Link(page, number, target) for target in targets if target]
    return found


def slug(title: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading anchors by its text
    text = re.sub(r"[`*_]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors a page's headings give, repeats numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        if heading := HEADING.match(line):
            base = slug(heading["title"])
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def resolve(link: Link) -> tuple[Path, str]:
    """The file a relative link points at (the page itself for `#anchor`) and its anchor, if any."""
    path, _, anchor = link.target.partition("#")
    path = unquote(path.split("?")[0])
    return (link.page.parent / path if path else link.page), anchor


def check_link(link: Link, root: Path) -> str | None:
    """Why `link` goes nowhere, or None. Only links inside the repository are allowed."""
    if EXTERNAL.match(link.target):
        return None
    target, anchor = resolve(link)
    if target.is_absolute() and link.target.startswith("/"):
        return "absolute path: link relative to the page"
    if not target.resolve().is_relative_to(root.resolve()):
        return "points outside the repository"
    if not target.exists():
        return "no such file"
    if anchor and target.suffix == ".md" and target.is_file() and anchor not in anchors(target):
        return f"no heading #{anchor} in {target.name}"
    return None


def broken_links(root: Path, pages: list[Path] | None = None) -> list[BrokenLink]:
    """Every link or image in README.md and docs/**/*.md that does not resolve to a file of the repository."""
    found = []
    for page in pages if pages is not None else doc_pages(root):
        for link in links_in(page):
            if problem := check_link(link, root):
                found.append(BrokenLink(link.page, link.line, link.target, problem))
    return found


def unreachable_pages(root: Path) -> list[Path]:
    """The docs pages no chain of links from README.md reaches."""
    pages = doc_pages(root)
    start = root / "README.md"
    reached, queue = {start.resolve()}, [start]
    while queue:
        page = queue.pop()
        for link in links_in(page):
            if EXTERNAL.match(link.target):
                continue
            target = resolve(link)[0].resolve()
            if target.is_dir() and (target / "README.md").is_file():
                target = target / "README.md"  # a folder link renders its README
            if target.suffix == ".md" and target.is_file() and target not in reached:
                reached.add(target)
                queue.append(target)
    return [page for page in pages if page.resolve() not in reached]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhns.doc_links", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    problems = [str(link) for link in broken_links(args.root)]
    problems += [f"{page}: no link from README.md reaches it" for page in unreachable_pages(args.root)]
    print("\n".join(problems) if problems else "every link resolves and every page is reachable")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
