"""The parts: their numbers, names, titles, bodies, run order and timeouts, in one table.

Why a table: the CLI's --parts choices, the run order and the summary's numbering all read it, so a new
part is one row here and one module beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dhns.gpu_suite.commands import PartRun
from dhns.gpu_suite.part_bench import part_bench
from dhns.gpu_suite.part_cuda_tests import part_cuda_tests
from dhns.gpu_suite.part_eval import part_eval
from dhns.gpu_suite.part_stages import part_stages
from dhns.gpu_suite.part_torchrun import part_torchrun
from dhns.gpu_suite.settings import Settings


@dataclass(frozen=True)
class Timeouts:
    """Seconds: the whole part, and each command in it (a command never outlives its part)."""

    part: float
    command: float


@dataclass(frozen=True)
class PartSpec:
    """One part; `gpu` and `tiny` are its timeouts on the device and in the CPU form."""

    number: int
    name: str
    title: str
    run: Callable[[PartRun, dict[str, Any]], dict[str, Any]]
    gpu: Timeouts
    tiny: Timeouts


PARTS = (  # run order: the quick correctness checks first
    PartSpec(5, "cuda-tests", "CUDA-only tests (pytest -m cuda)", part_cuda_tests, Timeouts(120, 110), Timeouts(60, 55)),
    PartSpec(3, "stages", "stage scripts end to end, kill and resume", part_stages, Timeouts(240, 90), Timeouts(150, 60)),
    PartSpec(4, "torchrun", "pretrain and train under torchrun", part_torchrun, Timeouts(120, 90), Timeouts(90, 60)),
    PartSpec(2, "eval", "filtered evaluation, MKG-Y and DB15K", part_eval, Timeouts(150, 75), Timeouts(60, 40)),
    PartSpec(1, "bench", "benchmark reference config, fp32/tf32/bf16", part_bench, Timeouts(360, 90), Timeouts(120, 40)),
)
PART_NAMES = tuple(spec.name for spec in PARTS)


def part_timeouts(spec: PartSpec, settings: Settings) -> Timeouts:
    return spec.tiny if settings.tiny else spec.gpu
