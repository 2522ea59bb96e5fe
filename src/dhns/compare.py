"""Markdown table of test metrics (mean +- std over seeds) per dataset, model and sampler, from DVC experiments.

Usage: `python -m dhns.compare` (runs `dvc exp show --json`), or `python -m dhns.compare exps.json`.
Only experiments are tabulated (not the workspace or the baseline commit, which would count a run twice);
runs that share dataset, model and sampler are pooled, one per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

METRICS = ("mrr", "hits_at_1", "hits_at_3", "hits_at_10", "mean_rank")
GROUP_BY = (("data", "dataset"), ("model", "name"), ("train", "sampler"))


def experiment_runs(payload: list[dict]) -> Iterator[dict]:
    """Yield {'name', 'params', 'metrics'} for every experiment in `dvc exp show --json` output."""
    for commit in payload:
        for experiment in commit.get("experiments") or []:
            for run in experiment.get("revs", []):
                if run.get("error") or not run.get("data"):
                    continue
                data = run["data"]
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("metrics/eval.json", {}).get("data", {})
                if params and metrics:
                    yield {"name": run.get("name") or run["rev"][:7], "params": params, "metrics": metrics}


def mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.4f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4f} ± {std:.4f}"


def comparison_table(runs: list[dict], policy: str = "realistic") -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        key = tuple(run["params"].get(section, {}).get(field, "?") for section, field in GROUP_BY)
        groups[key].append(run)
    header = ["dataset", "model", "sampler", "seeds"] + [f"test {m}" for m in METRICS] + ["valid mrr"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in sorted(groups):
        members = groups[key]
        seeds = sorted({run["params"].get("seed") for run in members}, key=str)
        cells = [*map(str, key), ",".join(map(str, seeds))]
        for metric in METRICS:
            cells.append(mean_std([run["metrics"]["test"]["both"][policy][metric] for run in members]))
        cells.append(mean_std([run["metrics"]["valid"]["both"][policy]["mrr"] for run in members]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_payload(source: str | None) -> Any:
    if source:
        return json.loads(Path(source).read_text(encoding="utf-8"))
    shown = subprocess.run(["dvc", "exp", "show", "--json"], check=True, capture_output=True, text=True)
    return json.loads(shown.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", help="a saved `dvc exp show --json` file (default: run it)")
    parser.add_argument("--policy", default="realistic", choices=("optimistic", "realistic", "pessimistic"))
    args = parser.parse_args(argv)
    runs = list(experiment_runs(read_payload(args.source)))
    if not runs:
        sys.exit("compare: no finished experiments with metrics/eval.json; queue some with `make compare-run`")
    print(f"Filtered link prediction ({args.policy} ranks), both directions; mean ± std over runs.\n")
    print(comparison_table(runs, args.policy))


if __name__ == "__main__":
    main()
