"""Run the missing cells of a comparison grid as DVC experiments, one after another, in the workspace.

Cells are ordered dataset, scorer, seed, arm: all arms of a seed follow each other, so DVC's run cache
restores that seed's pretrained model and generator instead of training them again (only `train.*`
differs between arms). Each finished experiment is written as a cell file at once, so an interrupted grid
resumes where it stopped. params.yaml is put back after every cell: each experiment sets its own keys
and nothing leaks from one cell into the next.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Callable, Sequence

from dhns.compare.arms import RUNNABLE_ARMS
from dhns.compare.cells import CellKey, workspace_record, write_cell

log = logging.getLogger("dhns.compare")

Runner = Callable[[list[str]], int]


def grid(datasets: Sequence[str], scorers: Sequence[str], seeds: Sequence[int], arms: Sequence[str]) -> list[CellKey]:
    return [CellKey(d, s, seed, arm) for d in datasets for s in scorers for seed in seeds for arm in arms]


def missing(keys: Sequence[CellKey], root: Path) -> list[CellKey]:
    return [key for key in keys if not key.path(root).exists()]


def experiment_command(key: CellKey, extra: Sequence[str] = ()) -> list[str]:
    """`dvc exp run` for one cell; `extra` are further `-S key=value` settings applied to every cell."""
    settings = {"data.dataset": key.dataset, "model.name": key.scorer, "seed": str(key.seed), **RUNNABLE_ARMS[key.arm]}
    command = ["dvc", "exp", "run", "-n", key.experiment_name()]
    for name, value in settings.items():
        command += ["-S", f"{name}={value}"]
    for setting in extra:
        command += ["-S", setting]
    return command


def existing_experiments(workspace: Path) -> set[str]:
    """Experiment names already in this clone's refs (a rerun under the same name would be refused)."""
    shown = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=workspace,
                           capture_output=True, text=True, check=False)
    return {line.rsplit("/", 1)[-1] for line in shown.stdout.splitlines() if line}


def run_cells(keys: Sequence[CellKey], root: Path, workspace: Path = Path("."), extra: Sequence[str] = (),
              run: Runner | None = None) -> list[Path]:
    """Run each cell that has no file yet; stop at the first failure (its message is DVC's, above)."""
    run = run or (lambda command: subprocess.run(command, cwd=workspace, check=False).returncode)
    params_path = workspace / "params.yaml"
    original = params_path.read_text(encoding="utf-8")
    todo = missing(keys, root)
    log.info("%d of %d cells to run (%d have files in %s)", len(todo), len(keys), len(keys) - len(todo), root)
    stale = existing_experiments(workspace) & {key.experiment_name() for key in todo}
    written = []
    try:
        for number, key in enumerate(todo, 1):
            name = key.experiment_name()
            if name in stale:  # an earlier attempt that left no cell file: replace it
                run(["dvc", "exp", "remove", name])
            log.info("cell %d/%d: %s", number, len(todo), name)
            code = run(experiment_command(key, extra))
            if code != 0:
                raise SystemExit(f"compare: `dvc exp run` failed for {name} (exit {code}); the cells before it are kept")
            record = workspace_record(workspace, name)
            found = (record["dataset"], record["scorer"], record["seed"], record["arm"])
            if found != (key.dataset, key.scorer, key.seed, key.arm):
                raise SystemExit(f"compare: {name} produced the cell {found}; an -S setting overrode the grid")
            written.append(write_cell(record, root))
            params_path.write_text(original, encoding="utf-8")
    finally:
        params_path.write_text(original, encoding="utf-8")
    return written
