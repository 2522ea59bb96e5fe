"""Timing and the machine's limits: the epoch timer, memory peaks, matmul peaks, copy bandwidth, hardware."""

from __future__ import annotations

import math
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any, Callable

import torch

from dhns.host import hardware  # noqa: F401  (re-exported: the bench reports it)

Tensor = torch.Tensor
# Dense peaks in TFLOP/s (bf16 tensor core, fp32 non-tensor) by device-name fragment; first match wins.
KNOWN_CUDA_PEAKS = (
    ("H100 PCIe", 756.0, 51.0),
    ("H100", 989.0, 67.0),  # SXM
    ("H200", 989.0, 67.0),
    ("A100", 312.0, 19.5),
)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peaks(device: torch.device) -> None:
    """Start a fresh peak for host RSS (Linux: clear_refs 5) and for CUDA memory."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # no reset available: the host peak stays the process's peak so far
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def host_peak_mib() -> float:
    """Peak resident set size since the last reset (VmHWM), else since start (ru_maxrss, kB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_peaks(device: torch.device) -> dict[str, float | None]:
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_host_rss_mib": host_peak_mib(), "peak_cuda_mib": cuda}


Step = Callable[[Tensor, torch.Generator], Any]


def time_epoch(step: Step, triples: Tensor, batch_size: int, batches: int | None, warmup: int,
               device: torch.device, seed: int = 0) -> dict[str, Any]:
    """Time `step(batch, rng)` over one shuffled epoch, or over its first `batches` batches and extrapolate.

    `warmup` batches of another shuffle run first, untimed. The shuffles depend only on `seed`, so two
    calls with one seed time the same batches. The epoch estimate scales the measured time by epoch
    triples / measured triples (the last batch of an epoch is short). A step returning a tensor (a loss)
    must keep it finite.
    """
    shuffle = torch.Generator(device=device).manual_seed(seed)
    warm_order = torch.randperm(triples.shape[0], device=device, generator=shuffle)
    order = torch.randperm(triples.shape[0], device=device, generator=shuffle)
    rng = torch.Generator(device=device).manual_seed(seed + 1)  # the steps' sampling and noise
    num = triples.shape[0]
    starts = list(range(0, num, batch_size))
    for index in range(warmup):
        start = starts[index % len(starts)]
        step(triples[warm_order[start : start + batch_size]], rng)
    measured = len(starts) if batches is None else min(batches, len(starts))
    batch_list = [triples[order[start : start + batch_size]] for start in starts[:measured]]
    losses = []
    synchronize(device)
    began = time.perf_counter()
    for batch in batch_list:
        loss = step(batch, rng)
        if isinstance(loss, Tensor):
            losses.append(loss)
    synchronize(device)
    seconds = time.perf_counter() - began
    mean_loss = float(torch.stack(losses).float().mean()) if losses else None  # the only host sync of the losses
    if mean_loss is not None and not math.isfinite(mean_loss):
        raise FloatingPointError(f"the timed step's loss became {mean_loss}")
    measured_triples = sum(batch.shape[0] for batch in batch_list)
    return {
        "epoch_triples": num,
        "batches_per_epoch": len(starts),
        "measured_batches": measured,
        "measured_triples": measured_triples,
        "measured_seconds": seconds,
        "seconds_per_batch": seconds / measured,
        "seconds_per_epoch": seconds * num / measured_triples,
        "extrapolated": measured < len(starts),
        "triples_per_second": measured_triples / seconds,
        "mean_loss": mean_loss,
    }


def matmul_peak(device: torch.device, size: int | None = None, reps: int = 5,
                dtype: torch.dtype = torch.float32) -> float:
    """Measured FLOP/s of a square matmul (2048 on CPU, 8192 on CUDA by default)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    began = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * size**3 * reps / (time.perf_counter() - began)


def memory_bandwidth(device: torch.device, mib: int | None = None, reps: int = 5) -> dict[str, float]:
    """Measured bytes per second (read + written) of `copy_` and of an out-of-place `add` on fp32 tensors.

    The tensors (256 MiB on CPU, 1 GiB on CUDA by default) are far larger than any cache, so this is the
    memory system's rate, the ceiling of a step that only moves data. The best of `reps` is kept: a busy
    machine can only make a rep slower, never faster. `bytes_per_second` is the larger of the two rates.
    """
    mib = mib or (1024 if device.type == "cuda" else 256)
    numel = mib * 2**20 // 4
    source, other, target = (torch.rand(numel, device=device) for _ in range(3))

    def best_rate(operation: Callable[[], Any], bytes_moved: int) -> float:
        operation()  # first touch of the output pages is not part of the rate
        best = math.inf
        for _ in range(reps):
            synchronize(device)
            began = time.perf_counter()
            operation()
            synchronize(device)
            best = min(best, time.perf_counter() - began)
        return bytes_moved / best

    copy = best_rate(lambda: target.copy_(source), 2 * 4 * numel)  # read source, write target
    add = best_rate(lambda: torch.add(source, other, out=target), 3 * 4 * numel)  # read two, write one
    return {"copy_bytes_per_second": copy, "add_bytes_per_second": add, "bytes_per_second": max(copy, add),
            "tensor_mib": mib}


def device_peaks(device: torch.device) -> dict[str, Any]:
    """Known dense peaks for a CUDA card (if listed) and the measured fp32 matmul peak on any device."""
    peaks: dict[str, Any] = {"measured_fp32_matmul_flops": matmul_peak(device)}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, bf16, fp32 in KNOWN_CUDA_PEAKS:
            if fragment in name:
                peaks.update(spec_bf16_flops=bf16 * 1e12, spec_fp32_flops=fp32 * 1e12, spec_source=fragment)
                break
        peaks["measured_bf16_matmul_flops"] = matmul_peak(device, dtype=torch.bfloat16)
    return peaks


