"""What every training loop shares: the precision scope, the optimiser step, Adam, and one pass over the data.

The KGC loop (`dhns.training.kgc`), the generator's trainer (`dhns.training.diffusion`) and NTAT's joint
generator step use the same few helpers; they live here so that the diffusion trainer does not import the
KGC trainer (and DVC does not rerun the diffusion stage when the KGC loop changes).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from dhns import native
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
        clip_gradients(parameters, max_grad_norm)
    optimizer.step()


def clip_gradients(parameters: Iterable[Tensor], max_norm: float) -> None:
    """torch's `clip_grad_norm_` (global L2 norm, scaled by max_norm / (norm + 1e-6) when that is below 1),
    also over sparse row gradients (lazy_adam's entity table), which torch's cannot take.

    A sparse gradient's norm is that of its coalesced rows: the norm of the dense gradient it stands for,
    whose other rows are zero. So clipping sees the same global norm as under dense Adam.
    """
    parameters = [parameter for parameter in parameters if parameter.grad is not None]
    if not any(parameter.grad.is_sparse for parameter in parameters):
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    grads = []
    for parameter in parameters:
        if parameter.grad.is_sparse:
            parameter.grad = parameter.grad.coalesce()  # duplicate rows summed: their norm is the dense norm
            grads.append(parameter.grad._values())  # the coalesced tensor's own storage: scaling it scales the grad
        else:
            grads.append(parameter.grad)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grad.float()) for grad in grads]))
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grad in grads:
        grad.mul_(coefficient.to(grad.dtype))


FUSED_ADAM_DEVICES = {"cpu", "cuda"}


def adam(parameters: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam, fused into one pass per tensor where PyTorch has that kernel (4x faster on MKG-Y's entity
    table on a CPU than the default multi-tensor form; the same update up to rounding)."""
    parameters = list(parameters)
    fused = bool(parameters) and all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


def summed_rows(grad: Tensor) -> tuple[Tensor, Tensor]:
    """(rows, their summed gradients) of a sparse row gradient, duplicate rows (several lookups of one entity)
    summed. A lookup of distinct sorted ids (`KGCModel.score_corrupted`'s) has nothing to sum: its indices are
    used as they are, where `coalesce` would sort them and copy every value row (a third of a step at 1.5M)."""
    if not grad.is_coalesced():
        rows = grad._indices()[0]
        if rows.numel() > 1 and not bool((rows[1:] > rows[:-1]).all()):
            grad = grad.coalesce()
            return grad.indices()[0], grad.values()
        return rows, grad._values()
    return grad.indices()[0], grad.values()


class RowOptimizer(torch.optim.Optimizer):
    """An update on the rows a batch touched for parameters with sparse gradients (the entity table), dense
    Adam for the rest; subclasses give the row rule (`update_rows`).

    A step then costs what the batch touches, not the table's size. Written with gathers and `index_add_` on
    the touched rows rather than sparse-tensor arithmetic, and with its state written at creation (otherwise
    every step faults in the pages of the rows it touches for the first time, for an epoch or more).
    """

    def __init__(self, sparse: Iterable[torch.nn.Parameter], dense: Iterable[torch.nn.Parameter], lr: float,
                 dense_lr: float, **defaults) -> None:
        sparse, dense = list(sparse), list(dense)
        super().__init__(sparse, {"lr": lr, **defaults})
        self.dense = adam(dense, dense_lr) if dense else None

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                if not parameter.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__}: the entity table got a dense gradient; something used "
                                       "the whole table in training (a sparse optimizer needs lookups of the rows a "
                                       "batch touches)")
                rows, values = summed_rows(parameter.grad)
                self.update_rows(parameter, rows, values, group, self.state[parameter])
        if self.dense is not None:
            self.dense.step()

    def update_rows(self, parameter: Tensor, rows: Tensor, values: Tensor, group: dict, state: dict) -> None:
        """Move `parameter[rows]` given their summed gradients `values` (U, w); `state` starts empty."""
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        if self.dense is not None:
            self.dense.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"sparse": super().state_dict(), "dense": self.dense.state_dict() if self.dense else None}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict["sparse"])
        if self.dense is not None:
            self.dense.load_state_dict(state_dict["dense"])


class LazyAdam(RowOptimizer):
    """The "lazy" Adam of large-scale embedding training (torch's `SparseAdam` computes the same update).

    A row's first and second moments move only on steps whose batch used the row, and the bias corrections
    count the parameter's steps. It is not Adam: an untouched row keeps its value, where dense Adam keeps
    moving it along its decaying momentum. At 1.5M entities a step took 0.50 s against 0.58 s with
    `SparseAdam`.
    """

    def __init__(self, sparse: Iterable[torch.nn.Parameter], dense: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(sparse, dense, lr, lr, betas=betas, eps=eps)

    def update_rows(self, parameter: Tensor, rows: Tensor, values: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.empty_like(parameter).zero_()
            state["exp_avg_sq"] = torch.empty_like(parameter).zero_()
        state["step"] += 1
        step = state["step"]
        first = state["exp_avg"].index_select(0, rows).lerp_(values, 1 - beta1)  # (U, w)
        second = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, first)
        state["exp_avg_sq"].index_copy_(0, rows, second)
        # SparseAdam's form: eps is added to sqrt(v) before the bias correction, not after as in Adam
        step_size = group["lr"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        parameter.index_add_(0, rows, first.div_(second.sqrt_().add_(group["eps"])), alpha=-step_size)


class RowAdagrad(RowOptimizer):
    """Row-wise Adagrad (PyTorch-BigGraph's optimizer for embedding tables): one accumulator per row.

    s_r += mean_j g_rj^2, then row r moves by -lr g_r / (sqrt(s_r) + eps). One scalar of state per row
    instead of Adam's two rows of moments, so a step gathers and writes the touched rows of the parameter
    only. Adagrad's step sizes are Adagrad's (about 0.1), not Adam's: `row_adagrad_lr` sets the table's,
    `kgc_lr` stays the other parameters' (dense Adam).
    """

    def __init__(self, sparse: Iterable[torch.nn.Parameter], dense: Iterable[torch.nn.Parameter], lr: float,
                 dense_lr: float, eps: float = 1e-10) -> None:
        super().__init__(sparse, dense, lr, dense_lr, eps=eps)

    def update_rows(self, parameter: Tensor, rows: Tensor, values: Tensor, group: dict, state: dict) -> None:
        if not state:
            state["sum"] = parameter.new_empty(parameter.shape[0]).zero_()  # (N,)
        if native.usable(parameter, values) and parameter.is_contiguous():  # one pass, no (U, w) temporaries
            native.row_adagrad_(parameter.data, state["sum"], rows, values, group["lr"], group["eps"])
            return
        sums = state["sum"].index_select(0, rows).add_(values.square().mean(dim=1))  # (U,)
        state["sum"].index_copy_(0, rows, sums)
        parameter.index_add_(0, rows, values / sums.sqrt_().add_(group["eps"]).unsqueeze(1), alpha=-group["lr"])


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
