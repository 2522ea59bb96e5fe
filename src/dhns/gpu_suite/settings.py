"""What one run of the suite is asked to do, and the sizes the bench and evaluation parts run at.

Frozen and shared: every part, the runner and the report read the same settings, so a part cannot drift
from what the summary says was run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]  # src/dhns/gpu_suite/ -> the checkout whose stages and tests are checked
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class Scorer:
    """One bench row's model and width; None leaves the bench's default (the reference DistMult 1024)."""

    model: str | None = None
    dim: int | None = None
    precisions: tuple[str, ...] = PRECISIONS

    @property
    def label(self) -> str:
        return self.model or "reference"


@dataclass(frozen=True)
class BenchShape:
    """What parts 1 and 2 hand `python -m dhns.bench`; None leaves the bench's default (the reference config)."""

    dataset: str | None
    scorers: tuple[Scorer, ...]
    eval_datasets: tuple[str, ...]
    eval_scorers: tuple[Scorer, ...]
    batch_size: int | None = None
    num_negatives: int | None = None
    diffusion_steps: int | None = None
    modalities: str | None = None
    threads: int | None = None
    eval_test_triples: int | None = None  # tiny form: the test split cut to this many triples


REFERENCE = BenchShape(dataset=None, scorers=(Scorer(), Scorer("rotate", 512)),
                       eval_datasets=("data/raw/MKG-Y", "data/raw/DB15K"), eval_scorers=(Scorer(), Scorer("rotate", 512)))
TINY = BenchShape(dataset="synthetic:2000:500:10", scorers=(Scorer("distmult", 16), Scorer("rotate", 8, ("fp32",))),
                  eval_datasets=("data/raw/MKG-Y", "data/raw/DB15K"), eval_scorers=(Scorer("distmult", 16),),
                  batch_size=128, num_negatives=4, diffusion_steps=4, modalities="text:8,image:7", threads=1,
                  eval_test_triples=100)


@dataclass(frozen=True)
class Settings:
    """The parsed command line; `tiny` picks the CPU form's sizes for every part at once."""

    device: str
    tiny: bool
    out: Path
    work: Path  # temp projects and data slices (not archived)
    python: str
    batches: int
    budget: float
    as_gpu_machine: bool  # hide what the GPU machine lacks, even where it is installed
    archive: Path | None
    parts: tuple[str, ...]

    @property
    def shape(self) -> BenchShape:
        return TINY if self.tiny else REFERENCE

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")
