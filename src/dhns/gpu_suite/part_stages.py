"""Part 3: the stage scripts end to end on a tiny graph, then pretrain SIGKILLed mid-run and resumed.

Why the kill: a lent GPU call can be cut off at any moment, and the stages promise that a rerun resumes from
the last snapshot to the same model; this checks that promise on the device, against the uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from dhns.gpu_suite.commands import PartFailed, PartRun, log_tail, python, signal_group
from dhns.gpu_suite.settings import REPO
from dhns.gpu_suite.tiny_project import new_project, pretrain_epochs, run_stage

STAGES = ("prepare", "feature_inputs", "features", "pretrain", "diffusion", "train", "evaluate")
KILL_AFTER_EPOCH = 5
PRETRAIN_MODEL = Path("models/pretrain/model.safetensors")


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch of a stage's snapshot, or None while there is none (or it is being replaced)."""
    if not path.is_file():
        return None
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])  # no CUDA context here
    except Exception:  # half-written or just renamed: look again on the next poll
        return None


def kill_mid_pretrain(run: PartRun, root: Path) -> int:
    """Start pretrain, SIGKILL it once its snapshot reaches KILL_AFTER_EPOCH; returns the snapshot's epoch."""
    import torch  # noqa: F401  (imported before the stage starts: the first import takes longer than its epochs)

    checkpoint = root / "checkpoints" / "pretrain" / "checkpoint.pt"
    began = time.monotonic()
    process, log = run.start("pretrain-killed", python(run.settings, REPO / "stages" / "pretrain.py"), cwd=root)
    while process.poll() is None and run.remaining() > 1:
        if (checkpoint_epoch(checkpoint) or 0) >= KILL_AFTER_EPOCH:
            break
        time.sleep(0.02)
    if process.poll() is not None:
        raise PartFailed(f"pretrain ended (exit {process.returncode}) before it could be killed "
                         f"(log {log.name}): raise PRETRAIN_EPOCHS\n{log_tail(log)}")
    signal_group(process, signal.SIGKILL)
    run.finish("pretrain-killed", process, log, began, 30)
    killed_at, epochs = checkpoint_epoch(checkpoint), pretrain_epochs(run.settings)
    if killed_at is None or not KILL_AFTER_EPOCH <= killed_at < epochs:
        raise PartFailed(f"after the SIGKILL the pretrain snapshot holds epoch {killed_at}, expected "
                         f"{KILL_AFTER_EPOCH}..{epochs - 1}")
    if (root / "models" / "pretrain").exists():
        raise PartFailed("the killed pretrain run left models/pretrain behind")
    return killed_at


def max_abs_difference(a: Path, b: Path) -> float:
    """Largest elementwise difference between two safetensors files with the same tensors."""
    from safetensors.torch import load_file

    left, right = load_file(str(a), device="cpu"), load_file(str(b), device="cpu")
    if left.keys() != right.keys():
        raise PartFailed(f"{a} and {b} hold different tensors: {sorted(left)} vs {sorted(right)}")
    return max(float((left[key].double() - right[key].double()).abs().max()) for key in left)


def compare_models(a: Path, b: Path) -> dict[str, Any]:
    """Bytes first (the CPU promise); the largest difference only where they differ (CUDA may move last bits)."""
    identical = a.read_bytes() == b.read_bytes()
    return {"bytes_identical": identical, "max_abs_difference": 0.0 if identical else max_abs_difference(a, b)}


def resume_check(run: PartRun, reference: Path, tolerance: float) -> dict[str, Any]:
    """SIGKILL pretrain mid-run in a copy of the project, rerun it, compare with the uninterrupted model.

    On the CPU the bytes must match (as tests/test_resume.py asserts). On CUDA, kernels without a deterministic
    version may change the last bits, so there the largest difference must stay within `tolerance`.
    """
    root = run.settings.work / "stages-resumed"
    shutil.copytree(reference / "data", root / "data")
    shutil.copy(reference / "params.yaml", root / "params.yaml")
    killed_at = kill_mid_pretrain(run, root)
    run_stage(run, root, "pretrain", "pretrain-resumed")
    resumed_log = (run.folder / "pretrain-resumed.log").read_text(encoding="utf-8", errors="replace")
    if f"resuming from checkpoints/pretrain/checkpoint.pt (epoch {killed_at})" not in resumed_log:
        raise PartFailed(f"the rerun did not resume from the epoch-{killed_at} snapshot (log pretrain-resumed.log)")
    comparison = compare_models(reference / PRETRAIN_MODEL, root / PRETRAIN_MODEL)
    figures = {"killed_at_epoch": killed_at, "epochs": pretrain_epochs(run.settings), **comparison}
    if not comparison["bytes_identical"] and comparison["max_abs_difference"] > tolerance:
        raise PartFailed(f"the resumed pretrain model differs from the uninterrupted one by up to "
                         f"{comparison['max_abs_difference']:.3g} (tolerance {tolerance:g})")
    return figures


def stage_metrics(root: Path) -> dict[str, Any]:
    """The evaluate stage's realistic MRR and Hits@10 (both directions) for the summary's headline."""
    evaluation = json.loads((root / "metrics" / "eval.json").read_text(encoding="utf-8"))
    return {split: {key: evaluation[split]["both"]["realistic"][key] for key in ("mrr", "hits_at_10")}
            for split in ("valid", "test")}


def part_stages(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    """Every stage in dvc.yaml's order, their metrics copied beside the logs, then the kill-and-resume check."""
    root = run.settings.work / "stages"
    new_project(run, root)
    seconds = {stage: run_stage(run, root, stage).seconds for stage in STAGES}
    for name in ("eval.json", "pretrain.json", "train.json", "diffusion.json"):
        shutil.copy(root / "metrics" / name, run.folder / f"metrics-{name}")
    tolerance = 1e-3 if run.settings.on_cuda else 0.0
    return {"device": run.settings.device, "stage_seconds": seconds, "metrics": stage_metrics(root),
            "resume": resume_check(run, root, tolerance)}
