"""Part 2: `python -m dhns.bench --stages none --eval`, the filtered evaluation alone, on MKG-Y and DB15K.

Separate from part 1 because ranking every entity is the evaluate stage's cost on the real graphs, which the
bench's synthetic training graph does not show.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

from dhns.gpu_suite.bench_calls import BenchCall, Row, bench_args, run_rows
from dhns.gpu_suite.commands import Outcome, PartRun
from dhns.gpu_suite.settings import REPO


def sliced_dataset(source: Path, target: Path, test_triples: int) -> Path:
    """A copy of an OpenKE folder whose test split keeps its first `test_triples` triples (the filter keeps all)."""
    if target.is_dir():
        return target
    shutil.copytree(source, target)
    lines = (source / "test2id.txt").read_text(encoding="utf-8").splitlines()[1:][:test_triples]
    (target / "test2id.txt").write_text(f"{len(lines)}\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return target


def eval_row(result: dict[str, Any]) -> Row:
    """The summary's row from one bench JSON: seconds and queries per second of the filtered ranking."""
    config, evaluation = result["config"], result["evaluation"]
    return {"dataset": Path(config["dataset"]).name, "model": config["model"], "dim": config["dim"],
            "test_triples": evaluation["test_triples"], "seconds": evaluation["seconds"],
            "queries_per_second": evaluation["queries_per_second"],
            "filter_index_seconds": evaluation["filter_index_seconds"],
            "peak_cuda_mib": evaluation.get("peak_cuda_mib"), "peak_host_rss_mib": evaluation.get("peak_host_rss_mib")}


def eval_calls(run: PartRun, dataset: str) -> Iterator[BenchCall]:
    """One call per scorer on `dataset` (its test split sliced first in the tiny form)."""
    shape, name = run.settings.shape, Path(dataset).name
    folder = REPO / dataset
    if shape.eval_test_triples is not None:
        folder = sliced_dataset(folder, run.settings.work / f"{folder.name}-slice", shape.eval_test_triples)
    for scorer in shape.eval_scorers:
        def failed_row(outcome: Outcome, model: str = scorer.model or "distmult") -> Row:
            return {"dataset": name, "model": model, "status": outcome.status}

        args = bench_args(shape, scorer, str(folder)) + ["--stages", "none", "--eval"]
        yield BenchCall(f"eval-{name}-{scorer.label}", args, eval_row, failed_row)


def part_eval(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    """Every evaluation scorer on every dataset; a failed row is listed and the others still run."""
    calls = (call for dataset in run.settings.shape.eval_datasets for call in eval_calls(run, dataset))
    return run_rows(run, calls, {})
