"""`python -m dhns.compare`: the results tables; `python -m dhns.compare run ...`: run the missing cells first.

    python -m dhns.compare                        # harvest `dvc exp show`, write docs/results/README.md and
                                                  # forest.svg/.png, print the tables
    python -m dhns.compare exps.json              # the same from a saved `dvc exp show --json`
    python -m dhns.compare run --datasets MKG-Y --scorers transe --arms all --seeds 0,1,2

With the default results folder it also rewrites the marked result tables of README.md and of every docs/ page
that has markers (see dhns.compare.readme); `--page` names the pages instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from dhns.compare.arms import parse_arms
from dhns.compare.cells import RESULTS_DIR, harvest, read_cells, read_superseded
from dhns.compare.forest import write_forest
from dhns.compare.readme import marked_pages, refresh_pages
from dhns.compare.runner import grid, run_cells
from dhns.compare.tables import readme_blocks, render

DEFAULT_DATASETS = "MKG-Y MKG-W DB15K"
DEFAULT_SCORERS = "transe rotate distmult"  # the order: TransE everywhere first
DEFAULT_SEEDS = "0 1 2"


def words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]


def exp_show_payload(source: str | None) -> list[dict]:
    if source:
        return json.loads(Path(source).read_text(encoding="utf-8"))
    shown = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True, check=False)
    if shown.returncode != 0:  # no git/DVC repository, or no experiments: the cell files still render
        logging.warning("dvc exp show failed (%s): tabulating the cell files only", shown.stderr.strip()[:200])
        return []
    return json.loads(shown.stdout or "[]")


def write_tables(root: Path, datasets: list[str], scorers: list[str], seeds: list[int],
                 pages: Sequence[Path] = ()) -> str:
    cells = read_cells(root)
    text = render(cells, datasets, scorers, seeds, read_superseded(root))
    (root / "README.md").parent.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(text, encoding="utf-8")
    if pages:
        refresh_pages(pages, readme_blocks(cells, words(DEFAULT_DATASETS), words(DEFAULT_SCORERS),
                                           [int(seed) for seed in words(DEFAULT_SEEDS)]))
    drawn = write_forest(cells, words(DEFAULT_DATASETS), words(DEFAULT_SCORERS), root)  # the whole grid's picture
    logging.info("forest plot: %s", ", ".join(map(str, drawn)) or "no paired DHNS cell yet")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhns.compare", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="table",
                        help="`run` to run missing cells, or a saved `dvc exp show --json` file to tabulate")
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--scorers", default=DEFAULT_SCORERS)
    parser.add_argument("--arms", default="all")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of cells/ and README.md")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a further setting for every cell (e.g. train.precision=fp32)")
    parser.add_argument("--page", "--readme", dest="pages", type=Path, action="append", default=None,
                        help="a page whose marked tables to rewrite, repeatable (default: README.md and every "
                             "docs/ page with markers, with the default --results; none with another)")
    args = parser.parse_args(argv)
    try:
        datasets, scorers, arms = words(args.datasets), words(args.scorers), parse_arms(args.arms)
        seeds = [int(seed) for seed in words(args.seeds)]
    except ValueError as error:
        parser.error(str(error))
    if args.command == "run":
        run_cells(grid(datasets, scorers, seeds, arms), args.results, extra=args.set)
    else:
        harvest(exp_show_payload(None if args.command == "table" else args.command), args.results)
    pages = args.pages or (marked_pages(Path(".")) if args.results == RESULTS_DIR else [])
    print(write_tables(args.results, datasets, scorers, seeds, pages))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    sys.exit(main())
