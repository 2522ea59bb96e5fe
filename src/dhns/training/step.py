"""What every training loop shares: the precision scope, the optimiser step, Adam, and one pass over the data.

The KGC loop (`dhns.training.kgc`), the generator's trainer (`dhns.training.diffusion`) and NTAT's joint
generator step use the same few helpers; they live here so that the diffusion trainer does not import the
KGC trainer (and DVC does not rerun the diffusion stage when the KGC loop changes).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from dhns.host import resolve_precision

Tensor = torch.Tensor


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32 as is; tf32: CUDA matmuls on TF32 tensor cores; bf16: autocast (matmuls in bf16, sums in fp32).

    Scoped to the training step's forward pass, so evaluation always ranks with fp32 scores. auto is bf16
    where the device has bf16 arithmetic, fp32 elsewhere (`resolve_precision`).
    """
    if resolve_precision(precision, device) == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    elif precision == "tf32" and device.type == "cuda":
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
    else:
        yield


def apply_gradients(loss: Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[Tensor],
                    max_grad_norm: float = 0.0) -> None:
    """Backward, optional global-norm clipping, optimiser step (no host sync)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()


FUSED_ADAM_DEVICES = {"cpu", "cuda"}


def adam(parameters: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam, fused into one pass per tensor where PyTorch has that kernel (4x faster on MKG-Y's entity
    table on a CPU than the default multi-tensor form; the same update up to rounding)."""
    parameters = list(parameters)
    fused = bool(parameters) and all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


def run_epoch(
    triples: Tensor, batch_size: int, rng: torch.Generator, step: Callable[[Tensor], Tensor],
    progress: str | None = None,
) -> Tensor:
    """One pass over `triples` in a random order; returns the (num_batches,) detached batch losses.

    Losses stay on the device, so the inner loop never waits for the host. `progress` labels a batch
    bar (a DHNS epoch of a large config takes minutes on a CPU); it stays silent when not on a terminal.
    """
    order = torch.randperm(triples.shape[0], device=triples.device, generator=rng)
    starts = range(0, order.numel(), batch_size)
    if progress is not None:
        starts = tqdm(starts, desc=progress, unit="batch", leave=False, disable=None)
    return torch.stack([step(triples[order[start : start + batch_size]]) for start in starts])
