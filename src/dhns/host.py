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

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # bytes of free heap top tolerated before giving memory back (an int's maximum)


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed large blocks; returns whether the allocator accepted it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    accepted = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
    log.debug("glibc keeps freed memory: %s", accepted)
    return accepted
