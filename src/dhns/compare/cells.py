"""One finished cell of the comparison (dataset, scorer, arm, seed) as one JSON file under docs/results/cells.

DVC experiments live in one clone's git refs; the files are what a later session, or a reader of the
repository, gets. A cell is written once, from the experiment's params and metrics, and never rerun:
`make compare-run` skips every cell whose file exists, so a grid that spans sessions only adds cells.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from dhns.compare.arms import arm_of
from dhns.config import resolve_params
from dhns.pipeline import paths
from dhns.io import read_json, write_json

RESULTS_DIR = Path("docs/results")
EXPERIMENT_PREFIX = "cmp-"
EVAL_FILE = paths.EVAL_FILE.as_posix()  # the evaluate stage's headline ...
EVAL_BREAKDOWNS_FILE = paths.EVAL_BREAKDOWNS_FILE.as_posix()  # ... and the rest of its report
TRAIN_FILE, PRETRAIN_FILE, DIFFUSION_FILE = (paths.metrics_file(stage).as_posix()
                                             for stage in ("train", "pretrain", "diffusion"))
METRIC_FILES = (EVAL_FILE, EVAL_BREAKDOWNS_FILE, TRAIN_FILE, PRETRAIN_FILE, DIFFUSION_FILE)


@dataclass(frozen=True, order=True)
class CellKey:
    dataset: str
    scorer: str
    seed: int
    arm: str

    def path(self, root: Path) -> Path:
        return root / "cells" / self.dataset / self.scorer / self.arm / f"seed{self.seed}.json"

    def experiment_name(self) -> str:
        """A name git accepts as a ref and a reader recognises in `dvc exp show`."""
        raw = f"{EXPERIMENT_PREFIX}{self.dataset}-{self.scorer}-{self.arm}-s{self.seed}".lower()
        return re.sub(r"[^a-z0-9_-]+", "-", raw)


def cell_record(raw_params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], experiment: str) -> dict:
    """What a cell file holds: its key, the resolved settings, every tie policy's metrics, epochs and seconds."""
    params = resolve_params(raw_params, experiment)
    train = dataclasses.asdict(params.train)
    evaluation, ntat = evaluation_report(metrics), metrics[TRAIN_FILE]
    pretrain, diffusion = metrics.get(PRETRAIN_FILE, {}), metrics.get(DIFFUSION_FILE, {})
    return {
        "dataset": params.data.dataset,
        "scorer": params.model.name,
        "arm": arm_of(train),
        "seed": params.seed,
        "experiment": experiment,
        "settings": {"model": dataclasses.asdict(params.model), "train": train,
                     "pretrain": dataclasses.asdict(params.pretrain)},
        "test": _ranking(evaluation["test"]),
        "valid": _ranking(evaluation["valid"]),
        "ntat": {key: ntat.get(key) for key in ("best_epoch", "epochs_run", "seconds", "precision", "hardware")},
        "pretrain": {"best_epoch": pretrain.get("best_epoch"), "epochs_run": pretrain.get("epochs_run"),
                     "seconds": pretrain.get("seconds"),
                     "valid_mrr": (pretrain.get("valid") or {}).get("both", {}).get(params.evaluate.tie_policy, {}).get("mrr")},
        "diffusion": {"seconds": diffusion.get("seconds")},
    }


def evaluation_report(metrics: Mapping[str, Mapping[str, Any]]) -> dict:
    """The evaluate stage's report per split: eval.json's headline with eval_breakdowns.json's sections beside it.

    The stage divides each split's report by whole sections (`dhns.evaluation.split_headline`), so one
    merge per split restores it. An experiment run before that division has the whole report in eval.json
    and no breakdowns file.
    """
    breakdowns = metrics.get(EVAL_BREAKDOWNS_FILE) or {}
    return {split: {**headline, **breakdowns.get(split, {})} for split, headline in metrics[EVAL_FILE].items()}


def _ranking(split: Mapping[str, Any]) -> dict:
    """Both directions under every tie policy, plus the per-category, self-loop and unseen breakdowns if present."""
    kept = {"both": split["both"]}
    for key in ("by_category", "without_self_loops", "without_unseen", "num_triples", "num_self_loops"):
        if key in split:
            kept[key] = split[key]
    return kept


def key_of(record: Mapping[str, Any]) -> CellKey:
    return CellKey(record["dataset"], record["scorer"], int(record["seed"]), record["arm"])


def write_cell(record: Mapping[str, Any], root: Path = RESULTS_DIR) -> Path:
    path = key_of(record).path(root)
    write_json(path, record)
    return path


def read_cells(root: Path = RESULTS_DIR) -> list[dict]:
    return [read_json(path) for path in sorted((root / "cells").glob("*/*/*/seed*.json"))]


SUPERSEDED_DIR = "superseded"  # under the results folder: one folder per set of cells whose settings changed
WHY_FILE = "why.md"  # in each: what the cells' settings were and what replaced them, written by hand


@dataclass(frozen=True)
class Superseded:
    """Cells run at settings the project has since changed, kept so their numbers stay readable.

    A rerun at new settings writes the same file names, so the old cells move to
    `<results>/superseded/<name>/cells/` first; the tables never mix settings, and the page still shows them.
    """

    name: str
    why: str
    cells: tuple[dict, ...]


def read_superseded(root: Path = RESULTS_DIR) -> list[Superseded]:
    folders = sorted(path for path in (root / SUPERSEDED_DIR).glob("*") if (path / "cells").is_dir())
    missing = [str(folder / WHY_FILE) for folder in folders if not (folder / WHY_FILE).is_file()]
    if missing:
        raise FileNotFoundError(f"superseded cells without a {WHY_FILE} saying what changed: {', '.join(missing)}")
    return [Superseded(folder.name, (folder / WHY_FILE).read_text(encoding="utf-8").strip(), tuple(read_cells(folder)))
            for folder in folders]


def workspace_record(workspace: Path, experiment: str) -> dict:
    """The cell the workspace holds right after `dvc exp run`: its params.yaml and metrics files."""
    raw = yaml.safe_load((workspace / "params.yaml").read_text(encoding="utf-8"))
    metrics = {name: read_json(workspace / name) for name in METRIC_FILES if (workspace / name).exists()}
    return cell_record(raw, metrics, experiment)


def experiment_records(payload: list[dict]) -> Iterator[dict]:
    """Cells from `dvc exp show --json`: finished experiments that `compare run` named (prefix `cmp-`)."""
    for commit in payload:
        for experiment in commit.get("experiments") or []:
            for run in experiment.get("revs", []):
                name = run.get("name") or experiment.get("name") or ""
                data = run.get("data")
                if run.get("error") or not data or not name.startswith(EXPERIMENT_PREFIX):
                    continue
                params = (data.get("params") or {}).get("params.yaml", {}).get("data")
                metrics = {file: value.get("data", {}) for file, value in (data.get("metrics") or {}).items()}
                if params and EVAL_FILE in metrics and TRAIN_FILE in metrics:
                    yield cell_record(params, metrics, name)


def harvest(payload: list[dict], root: Path = RESULTS_DIR) -> list[Path]:
    """Write the cells of finished experiments that have no file yet; existing files are never replaced."""
    written = []
    for record in experiment_records(payload):
        path = key_of(record).path(root)
        if not path.exists():
            written.append(write_cell(record, root))
    return written
