"""Host-side tuning for CPU training: keep freed large buffers mapped instead of returning them to the OS.

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
import logging
import os
import platform
from pathlib import Path
from typing import Any

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

