"""Resumable training loops: epoch snapshots and numerical fault detection.

A snapshot holds everything a loop needs to continue as if never stopped: parameters, optimiser state,
the random generator's state, the best-so-far state and the history. It is keyed by a fingerprint of
what determines the run (stage, params, seed, the starting parameters and the data), so a snapshot left
by a run with other params or other inputs is ignored rather than resumed. Snapshots live outside DVC's
outputs (checkpoints/<stage>/), so DVC never deletes them before a rerun; the stage removes its snapshot
once its outputs are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterable

import torch

from dhns.io import atomic_file

Tensor = torch.Tensor
log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN/inf; the message names the stage, epoch and batch, and the last good snapshot."""


def fingerprint(*parts: Any) -> str:
    """A stable digest of params (dataclasses, numbers, strings), tensors and modules' state."""
    digest = hashlib.sha256()
    for part in parts:
        _update_digest(digest, part)
    return digest.hexdigest()


def _update_digest(digest: "hashlib._Hash", part: Any) -> None:
    if isinstance(part, torch.nn.Module):
        part = part.state_dict()
    if isinstance(part, Tensor):
        tensor = part.detach().cpu().contiguous()
        digest.update(f"tensor{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(part, dict):
        for key in sorted(part, key=str):
            digest.update(str(key).encode())
            _update_digest(digest, part[key])
    elif dataclasses.is_dataclass(part) and not isinstance(part, type):
        _update_digest(digest, dataclasses.asdict(part))
    elif isinstance(part, (list, tuple)):
        for item in part:
            _update_digest(digest, item)
    else:
        digest.update(json.dumps(part, default=str).encode())


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and how often a loop snapshots itself; `every` = 0 turns snapshots off."""

    folder: Path
    every: int = 1

    @property
    def path(self) -> Path:
        return Path(self.folder) / CHECKPOINT_FILE

    def due(self, epoch: int) -> bool:
        return self.every > 0 and epoch % self.every == 0

    def save(self, state: dict[str, Any], key: str) -> None:
        """Write the snapshot atomically: a crash mid-write leaves the previous one intact."""
        with atomic_file(self.path) as tmp:
            torch.save({"fingerprint": key, **state}, tmp)

    def load(self, key: str) -> dict[str, Any] | None:
        """The snapshot for this run, or None if absent, unreadable or made by a different run."""
        if self.every == 0 or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s (%s); starting from scratch", self.path, error)
            return None
        if state.get("fingerprint") != key:
            log.warning("ignoring checkpoint %s: it was made with other params or inputs", self.path)
            return None
        log.info("resuming from %s (epoch %d)", self.path, state["epoch"])
        return state

    def last_good(self) -> str:
        """How to describe the snapshot a failed run leaves behind, for error messages."""
        if self.every == 0 or not self.path.is_file():
            return "no checkpoint was written (checkpoint_every = 0 or the first epoch failed)"
        try:
            epoch = torch.load(self.path, map_location="cpu", weights_only=True).get("epoch", "?")
        except Exception as error:  # noqa: BLE001 - describing a fault must not raise a second one over it
            return f"the checkpoint {self.path} is unreadable ({type(error).__name__}); a rerun starts from scratch"
        return f"the last good checkpoint is {self.path} (epoch {epoch}); a rerun resumes from it"

    def clear(self) -> None:
        if Path(self.folder).exists():
            shutil.rmtree(self.folder)


def clone_state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def rng_state(generator: torch.Generator) -> Tensor:
    return generator.get_state()


def restore_rng(generator: torch.Generator, state: Tensor) -> None:
    generator.set_state(state.to(torch.uint8).cpu())


def check_finite(
    stage: str, epoch: int, batch_losses: Tensor, parameters: Iterable[Tensor], checkpointing: Checkpointing | None
) -> None:
    """Raise NonFiniteLossError naming the first bad batch; parameters are checked too (one sync per epoch)."""
    finite = torch.isfinite(batch_losses)
    params_finite = torch.stack([torch.isfinite(p).all() for p in parameters]).all()
    if bool(finite.all()) and bool(params_finite):
        return
    where = checkpointing.last_good() if checkpointing is not None else "no checkpointing was configured"
    hint = f"lower the learning rate or set {stage}.max_grad_norm"
    if not bool(finite.all()):
        batch = int((~finite).nonzero()[0, 0]) + 1
        value = float(batch_losses[batch - 1])
        raise NonFiniteLossError(
            f"{stage} stage: loss became {value} at epoch {epoch}, batch {batch} of {batch_losses.numel()}; "
            f"{where}; {hint}"
        )
    raise NonFiniteLossError(f"{stage} stage: parameters became non-finite during epoch {epoch}; {where}; {hint}")
