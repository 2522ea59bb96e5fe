"""What one benchmark run measures: its config (the reference "anchor" run by default) and its parsers."""

from __future__ import annotations

from dataclasses import dataclass

from dhns.config import MODEL_NAMES, OPTIMIZERS, PRECISIONS

STAGES = ("pretrain", "diffusion", "train")
SYNTHETIC_PREFIX = "synthetic:"
DEFAULT_SWEEP_SIZES = (10_000, 100_000, 1_000_000)


@dataclass(frozen=True)
class BenchConfig:
    dataset: str = "data/raw/MKG-Y"  # OpenKE folder, or "synthetic:N[:entities[:relations]]"
    model: str = "distmult"  # transe | distmult | rotate
    dim: int = 1024  # embedding_dim (RotatE entities are 2 * dim wide)
    batch_size: int = 2000
    num_negatives: int = 64
    diffusion_steps: int = 50  # T
    modalities: tuple[tuple[str, int], ...] = (("text", 384), ("image", 383))  # random stand-in features
    device: str = "auto"
    batches: int | None = None  # timed batches per phase; None = the whole epoch
    warmup: int = 1  # untimed batches before each phase's timing
    stages: tuple[str, ...] = STAGES
    eval: bool = False  # time filtered evaluation of the test split
    eval_batch_size: int = 256
    sweep: bool = False
    sweep_sizes: tuple[int, ...] = DEFAULT_SWEEP_SIZES
    sweep_entities: tuple[int, ...] = (15_000,)  # entity counts of the sweep's graphs; each runs every size
    sweep_relations: int = 30
    sweep_batches: int | None = None  # timed batches per sweep size; None = the whole epoch
    sweep_dhns: bool = False  # also time the dhns step in the sweep
    threads: int | None = None  # torch CPU threads; None = torch's default
    seed: int = 0
    params: str = "params.yaml"  # every setting the flags below leave unset: what `dvc repro` runs
    margin: float | None = None  # gamma; None = params' (the peer comparison sets the one both sides use)
    precision: str | None = None  # fp32 | tf32 | bf16 | auto for every timed step; None = each section's in params
    optimizer: str | None = None  # the KGC steps' optimizer (adam | lazy_adam | row_adagrad); None = params'
    chain_stride: int | None = None  # the dhns step's reverse chain: 1 = full, 0 = kept steps only; None = params'
    chain_eta: float | None = None  # None = params' train.chain_eta
    keep_freed_memory: bool = True  # on CPU, as the stages do: glibc keeps freed large buffers (dhns.host)

    def __post_init__(self) -> None:
        parse_synthetic(self.dataset)  # a malformed synthetic spec fails here, before any work
        if self.model not in MODEL_NAMES:
            raise ValueError(f"--model {self.model!r}: expected one of {', '.join(MODEL_NAMES)}")
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"--stages {','.join(unknown)}: expected a subset of {','.join(STAGES)} or 'none'")
        if not self.sweep_entities or min(self.sweep_entities) < 1:
            raise ValueError(f"--sweep-entities must be positive entity counts, got {list(self.sweep_entities)}")
        for key in ("dim", "batch_size", "num_negatives", "diffusion_steps", "eval_batch_size", "sweep_relations"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        for key in ("batches", "sweep_batches", "threads"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
        if self.precision not in (None,) + PRECISIONS:
            raise ValueError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.optimizer not in (None,) + OPTIMIZERS:
            raise ValueError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if (self.chain_stride is not None and self.chain_stride < 0) or \
                (self.chain_eta is not None and not 0.0 <= self.chain_eta <= 1.0):
            raise ValueError(f"--chain-stride must be >= 0 and --chain-eta in [0, 1], got {self.chain_stride}, "
                             f"{self.chain_eta}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")
        if self.sweep and (not self.sweep_sizes or min(self.sweep_sizes) < 1):
            raise ValueError(f"--sweep-sizes must be positive triple counts, got {list(self.sweep_sizes)}")


def parse_modalities(spec: str) -> tuple[tuple[str, int], ...]:
    """'text:384,image:383' -> (('text', 384), ('image', 383)); '' or 'none' -> ()."""
    if spec.strip().lower() in ("", "none"):
        return ()
    result = []
    for item in spec.split(","):
        name, _, width = item.strip().partition(":")
        if not name or not width.isdigit() or int(width) < 1:
            raise ValueError(f"--modalities item {item!r}: expected name:width, e.g. text:384")
        result.append((name, int(width)))
    if len({name for name, _ in result}) != len(result):
        raise ValueError(f"--modalities {spec!r}: a modality is named twice")
    return tuple(result)


def parse_synthetic(spec: str) -> tuple[int, int, int] | None:
    """'synthetic:N[:entities[:relations]]' -> (N, entities, relations), defaults 15000 and 30; a folder -> None."""
    if not spec.startswith(SYNTHETIC_PREFIX):
        return None
    parts = spec[len(SYNTHETIC_PREFIX):].split(":")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--dataset {spec!r}: expected synthetic:N[:entities[:relations]] with positive integers")
    num_triples, num_entities, num_relations = [int(part) for part in parts] + [15_000, 30][len(parts) - 1:]
    return num_triples, num_entities, num_relations
