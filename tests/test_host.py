"""The CPU allocator tuning the stages apply: accepted by glibc, harmless elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_keeping_freed_memory_and_torch_still_works() -> None:
    code = ("import torch; from dhns.host import keep_freed_memory; ok = keep_freed_memory(); "
            "x = torch.ones(64, 1 << 20); del x; y = torch.ones(64, 1 << 20); print(ok, float(y.sum()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", str(float(64 << 20))]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_defaults_come_back_and_the_freed_heap_is_returned() -> None:
    """After keeping 256 MiB of freed heap, going back to the defaults hands it to the OS (RSS drops)."""
    code = ("import torch; from dhns.host import keep_freed_memory, return_freed_memory\n"
            "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20\n"
            "keep_freed_memory(); x = torch.ones(64, 1 << 20); x += 1; del x; kept = rss()\n"
            "ok = return_freed_memory(); print(ok, kept - rss())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ok, released = result.stdout.split()
    assert ok == "True" and int(released) > 200, result.stdout
