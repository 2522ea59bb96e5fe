"""Data parallelism over processes: torchrun starts them, DistributedDataParallel averages gradients.

One process is the default and takes none of these paths. With `num_processes > 1` a stage relaunches
itself under `torch.distributed.run`; a user may also launch a stage with torchrun directly (several
GPUs, several machines). Every rank holds the whole model and the whole graph; each global batch is
split across ranks and the losses are scaled so the averaged gradient is the global batch's gradient.
NCCL carries the gradients between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

Tensor = torch.Tensor


@dataclass(frozen=True)
class Parallel:
    """This process's place among the data-parallel ranks."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = Parallel()


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch_under_torchrun(num_processes: int, script: str) -> int:
    """Run `script` as `num_processes` ranks on this machine; returns torchrun's exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={num_processes}",
               script, *sys.argv[1:]]
    return subprocess.call(command)


def init_parallel(device: torch.device) -> tuple[Parallel, torch.device]:
    """Join the process group torchrun set up; each rank takes the GPU matching its local rank."""
    if not launched_by_torchrun():
        return SINGLE_PROCESS, device
    parallel = Parallel(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        device = torch.device("cuda", parallel.local_rank)
        torch.cuda.set_device(device)
    if parallel.active and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return parallel, device


def shutdown_parallel() -> None:
    """Leave the process group together: a rank that tears gloo down while a peer is still connected can abort.

    Call it only when every rank got here; after a failure the launcher takes the ranks down.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(rows: Tensor, parallel: Parallel) -> Tensor:
    """This rank's contiguous share of a global batch (sizes differ by at most one row)."""
    if not parallel.active:
        return rows
    return torch.tensor_split(rows, parallel.world_size)[parallel.rank]


def mean_over_ranks(values: Tensor, parallel: Parallel) -> Tensor:
    if not parallel.active:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / parallel.world_size


def gather_objects(value: Any, parallel: Parallel) -> list[Any]:
    """Every rank's `value`, in rank order (e.g. each rank's random generator state for a checkpoint)."""
    if not parallel.active:
        return [value]
    gathered: list[Any] = [None] * parallel.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_from_main(value: Any, parallel: Parallel) -> Any:
    """Rank 0's `value` on every rank (e.g. a resume snapshot that only rank 0's machine has on disk)."""
    if not parallel.active:
        return value
    holder = [value if parallel.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
