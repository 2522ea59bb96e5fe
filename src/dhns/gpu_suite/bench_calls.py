"""Calls of `python -m dhns.bench`, shared by the bench and evaluation parts: options, JSON, one row each.

Why every row runs even after one fails: a lent GPU comes seldom, so one broken precision or dataset must
not hide the others' figures; the part's worst row decides its status afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from dhns.gpu_suite.commands import Outcome, PartRun, python, raise_if_any
from dhns.gpu_suite.settings import BenchShape, Scorer

Row = dict[str, Any]


@dataclass(frozen=True)
class BenchCall:
    """One row to measure: the command's name, its bench options, and how its JSON or its failure reads as a row."""

    name: str
    args: list[str]
    row: Callable[[dict[str, Any]], Row]
    failed_row: Callable[[Outcome], Row]


def bench_args(shape: BenchShape, scorer: Scorer, dataset: str | None) -> list[str]:
    """The bench options that differ from its defaults (none for the reference DistMult row)."""
    options = {"--dataset": dataset, "--model": scorer.model, "--dim": scorer.dim, "--batch-size": shape.batch_size,
               "--num-negatives": shape.num_negatives, "--diffusion-steps": shape.diffusion_steps,
               "--modalities": shape.modalities, "--threads": shape.threads}
    return [item for key, value in options.items() if value is not None for item in (key, str(value))]


def run_bench(run: PartRun, name: str, args: list[str]) -> tuple[Outcome, dict[str, Any] | None]:
    """One `python -m dhns.bench` call with its JSON; a failure is recorded, not raised (the next row still runs)."""
    json_path = run.folder / f"{name}.json"
    argv = python(run.settings, "-m", "dhns.bench", *args, "--device", run.settings.device, "--json", json_path)
    if run.remaining() < 1:
        outcome = Outcome(name, None, 0.0, True, run.folder / f"{name}.log", started=False)
        run.note(f"{name}: not run, the part's time is spent")
        return outcome, None
    outcome = run.run(name, argv, check=False)
    return outcome, json.loads(json_path.read_text()) if outcome.ok and json_path.is_file() else None


def run_rows(run: PartRun, calls: Iterable[BenchCall], figures: dict[str, Any]) -> dict[str, Any]:
    """Every call in turn into `figures["rows"]`; then the part fails (figures kept) if any row did."""
    rows: list[Row] = []
    failures: list[Outcome] = []
    figures = {"rows": rows, **figures}
    for call in calls:
        outcome, result = run_bench(run, call.name, call.args)
        if result is None:
            failures.append(outcome)
            rows.append(call.failed_row(outcome))
        else:
            rows.append(call.row(result) | {"status": "ok"})
    raise_if_any(failures, figures)
    return figures
