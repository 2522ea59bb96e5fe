"""The machine a stage runs on: its device, seeds, precision and description, and one CPU allocator tweak.

Device, seed and precision helpers live here, not in the training loop, so stages that only need a device
(features, predict, the benchmark) do not import the training stack (and DVC does not rerun them when it
changes).

The allocator tweak: keep freed large buffers mapped instead of returning them to the OS.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on
free. A training step's large temporaries (the B x k x w negative-score tensors and their gradients, the
denoiser's activations) are therefore page-faulted afresh on every step: on the 2-core CPU that was about
half of a TransE step (system time 3.4 s of a 3.1 s wall epoch on two threads). Serving them from the
heap and never trimming it keeps those pages mapped, at the cost of a higher peak RSS (the reference
config's pretrain step: 2.9 -> 4.0 GiB). Linux with glibc only; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # bytes of free heap top tolerated before giving memory back (an int's maximum)
GLIBC_MMAP_MAX = 65536  # glibc's defaults, restored by return_freed_memory
GLIBC_TRIM_THRESHOLD = 128 * 1024


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed large blocks; returns whether the allocator accepted it."""
    return _set_malloc(0, NEVER_TRIM, trim=False)


def return_freed_memory() -> bool:
    """glibc's default policy again (large blocks mmapped, the heap top trimmed) and the free heap given back.

    For code that is not ours sharing the process, e.g. the peer library in `dhns.bench`: a heap that
    never shrinks grew PyKEEN's MKG-Y evaluation from 3.0 to 8.6 GB of resident memory (fragmentation
    across its differently sized chunks).
    """
    return _set_malloc(GLIBC_MMAP_MAX, GLIBC_TRIM_THRESHOLD, trim=True)


def _set_malloc(mmap_max: int, trim_threshold: int, trim: bool) -> bool:
    libc = _glibc()
    if libc is None:  # not glibc (musl, macOS): nothing to tune
        return False
    accepted = libc.mallopt(M_MMAP_MAX, mmap_max) == 1 and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    if trim:
        libc.malloc_trim(0)
    log.debug("glibc malloc: mmap_max %d, trim_threshold %d: %s", mmap_max, trim_threshold, accepted)
    return accepted


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def hardware() -> dict[str, Any]:
    """The machine a figure was measured on: seconds mean nothing without it."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "usable_cores": usable, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "gpu": None}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    gpu_memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30)
    return info


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; anything else is passed to torch and must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"params device: {name!r} asked for CUDA but no CUDA device is available")
    return device


def seed_everything(seed: int) -> None:
    """Seed every generator and ask torch for deterministic kernels.

    On the CPU this makes a rerun bit-identical (multi-threaded scatter-adds otherwise reorder float sums:
    same-seed MKG-Y runs differed in the 4th digit) at no measured cost. On CUDA, kernels without a
    deterministic version only warn, so GPU runs may still vary in the last bits.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic mode
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on a device with native bf16 arithmetic, else fp32; any other value as given.

    Why: bf16 autocast made the denoisers 3x faster on a Xeon with AMX, but on a CPU without AVX512-BF16
    or AMX (a 2-core AMD EPYC with AVX2 only) PyTorch emulates it and a bf16 matmul took 38x longer than
    fp32: the diffusion stage went from under a minute to about 25.
    """
    if precision != "auto":
        return precision
    return "bf16" if has_native_bf16(device.type) else "fp32"


@functools.lru_cache(maxsize=None)
def has_native_bf16(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up with care
        found = any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
        log.info("bf16 on this CPU: %s (precision auto -> %s)", "native" if found else "emulated",
                 "bf16" if found else "fp32")
        return found
    return False


def describe_hardware(device: torch.device) -> str:
    """One line for results tables, which compare seconds: the CPU or GPU, its cores and threads, bf16."""
    info = hardware()
    if device.type == "cuda" and info["gpu"]:
        return f"{info['gpu']} (CUDA {info['cuda']}), host {info['cpu']}"
    bf16 = "bf16 native" if has_native_bf16("cpu") else "bf16 emulated"
    return f"{info['cpu']}, {info['usable_cores']} cores, {info['torch_threads']} torch threads, {bf16}"
