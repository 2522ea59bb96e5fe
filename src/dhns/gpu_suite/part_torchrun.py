"""Part 4: pretrain and train under `torchrun --standalone --nproc-per-node=1`.

Why: the stages pick their rank and device from torchrun's environment; one rank checks that launch path on
the device machine (the only place with NCCL), and its pretrain model against part 3's plain run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dhns.gpu_suite.commands import Outcome, PartFailed, PartRun, python
from dhns.gpu_suite.part_stages import PRETRAIN_MODEL, compare_models
from dhns.gpu_suite.settings import REPO
from dhns.gpu_suite.tiny_project import new_project, run_stage

OUTPUTS = (str(PRETRAIN_MODEL), "models/train/model.safetensors", "metrics/train.json")
NOTE = ("one rank: dhns.distributed.init_parallel makes a process group only for world size > 1, so "
        "this checks the torchrun launch (rank env, device pick), not DDP or NCCL")


def torchrun(run: PartRun, root: Path, stage: str) -> Outcome:
    argv = python(run.settings, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                  REPO / "stages" / f"{stage}.py")
    return run.run(f"torchrun-{stage}", argv, cwd=root)


def borrow_or_make_inputs(run: PartRun, source: Path, root: Path) -> None:
    """Part 3's prepared data and features where it got that far, else the first three stages run here."""
    if (source / "data" / "features").is_dir():
        shutil.copytree(source / "data", root / "data")
        shutil.copy(source / "params.yaml", root / "params.yaml")
        return
    new_project(run, root)
    for stage in ("prepare", "feature_inputs", "features"):
        run_stage(run, root, stage)


def part_torchrun(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    """Pretrain and train under torchrun (one rank); part 3's project lends its inputs when it got that far."""
    source, root = run.settings.work / "stages", run.settings.work / "torchrun"
    borrow_or_make_inputs(run, source, root)
    seconds = {"pretrain": torchrun(run, root, "pretrain").seconds}
    if (source / "models" / "diffusion").is_dir():
        shutil.copytree(source / "models" / "diffusion", root / "models" / "diffusion")
    else:
        seconds["diffusion (plain)"] = run_stage(run, root, "diffusion").seconds
    seconds["train"] = torchrun(run, root, "train").seconds
    for output in OUTPUTS:
        if not (root / output).is_file():
            raise PartFailed(f"torchrun left no {output}")
    plain = source / PRETRAIN_MODEL
    comparison = compare_models(plain, root / PRETRAIN_MODEL) if plain.is_file() else None
    return {"world_size": 1, "backend": "nccl" if run.settings.on_cuda else "gloo", "seconds": seconds,
            "pretrain_vs_plain_run": comparison, "note": NOTE}
