"""Benchmark: seconds per epoch of each stage's step, denoiser FLOP/s, evaluation time, memory, and a size sweep.

Usage: `python -m dhns.bench [options]` (or `make bench BENCH_ARGS="..."`); `--help` lists the options.
The defaults are the reference ("anchor") config: DistMult + DHNS on MKG-Y, dim 1024, batch 2000,
64 negatives, T = 50, structural + text (384-d) + image (383-d) views. Modality features are random
stand-ins of the given widths for every entity (timing does not depend on their values).

What is timed, always through the library's own step functions (no copy of a training loop):
- pretrain: `dhns.training.train_step` with the self-adversarial sampler;
- diffusion: `dhns.diffusion.training.generator_step` on the frozen model;
- train: `train_step` with the dhns sampler and `dhns.ntat.HardNegativeObjective` (the reverse chains);
- generation: `HierarchicalGenerator.generate` alone on the same batches, for the denoiser's FLOP/s;
- evaluation (`--eval`): `evaluate_link_prediction` on the test split, both sides, filtered by all splits.
With `--batches N` only N batches are timed and the epoch is extrapolated from seconds per triple; the
report labels every figure as measured or extrapolated. The sweep (`--sweep`) times the pretrain step
(and with `--sweep-dhns` the dhns step) on synthetic graphs of growing size: seconds per 1k triples
should stay roughly constant.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from dhns.config import (
    MODEL_NAMES,
    PRECISIONS,
    DiffusionConfig,
    HardnessLevel,
    ModelConfig,
    PretrainConfig,
    TrainConfig,
)
from dhns.data import KnowledgeGraph, read_openke_benchmark
from dhns.diffusion.generator import HierarchicalGenerator, build_generator
from dhns.diffusion.training import generator_step
from dhns.evaluation import build_filter_index, evaluate_link_prediction
from dhns.host import keep_freed_memory
from dhns.models.kgc import KGCModel
from dhns.ntat import HardNegativeObjective
from dhns.sampling import make_sampler
from dhns.training import ADVERSARIAL_SAMPLERS, precision_context, resolve_device, train_step

Tensor = torch.Tensor
STAGES = ("pretrain", "diffusion", "train")
SYNTHETIC_PREFIX = "synthetic:"
DEFAULT_SWEEP_SIZES = (10_000, 100_000, 1_000_000)
LINEARITY_TOLERANCE = 1.5  # max / min seconds per 1k triples over the sweep still called linear
# Dense peaks in TFLOP/s (bf16 tensor core, fp32 non-tensor) by device-name fragment; first match wins.
KNOWN_CUDA_PEAKS = (
    ("H100 PCIe", 756.0, 51.0),
    ("H100", 989.0, 67.0),  # SXM
    ("H200", 989.0, 67.0),
    ("A100", 312.0, 19.5),
)


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
    sweep_entities: int = 15_000  # fixed entity count of the sweep's graphs, so only the triple count grows
    sweep_relations: int = 30
    sweep_batches: int | None = None  # timed batches per sweep size; None = the whole epoch
    sweep_dhns: bool = False  # also time the dhns step in the sweep
    threads: int | None = None  # torch CPU threads; None = torch's default
    seed: int = 0
    precision: str = "fp32"  # fp32 | tf32 | bf16: the training steps' and the chain's precision (params' `precision`)
    keep_freed_memory: bool = True  # on CPU, as the stages do: glibc keeps freed large buffers (dhns.host)

    def __post_init__(self) -> None:
        parse_synthetic(self.dataset)  # a malformed synthetic spec fails here, before any work
        if self.model not in MODEL_NAMES:
            raise ValueError(f"--model {self.model!r}: expected one of {', '.join(MODEL_NAMES)}")
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"--stages {','.join(unknown)}: expected a subset of {','.join(STAGES)} or 'none'")
        for key in ("dim", "batch_size", "num_negatives", "diffusion_steps", "eval_batch_size", "sweep_entities",
                    "sweep_relations"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        for key in ("batches", "sweep_batches", "threads"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")
        if self.sweep and (not self.sweep_sizes or min(self.sweep_sizes) < 1):
            raise ValueError(f"--sweep-sizes must be positive triple counts, got {list(self.sweep_sizes)}")


# ----- inputs -----------------------------------------------------------------------------------------

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


def synthetic_graph(num_triples: int, num_entities: int, num_relations: int, seed: int = 0,
                    holdout: int | None = None) -> KnowledgeGraph:
    """Exactly `num_triples` distinct random training triples, plus disjoint valid and test splits.

    Valid and test get `holdout` triples each (default: a tenth of train, between 1 and 5000).
    """
    holdout = min(max(num_triples // 10, 1), 5000) if holdout is None else holdout
    total = num_triples + 2 * holdout
    capacity = num_entities * num_relations * num_entities
    if total > capacity:
        raise ValueError(f"{total} distinct triples do not fit {num_entities} entities x {num_relations} relations")
    rng = torch.Generator().manual_seed(seed)
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < total:  # a few rounds at most: collisions are rare unless the graph is dense
        draw = torch.randint(capacity, (total - keys.numel() + 1024,), generator=rng)
        keys = torch.unique(torch.cat([keys, draw]))
    keys = keys[torch.randperm(keys.numel(), generator=rng)[:total]]
    heads = keys // (num_relations * num_entities)
    relations = keys // num_entities % num_relations
    tails = keys % num_entities
    triples = torch.stack([heads, relations, tails], dim=1)  # (total, 3) (h, r, t)
    names = tuple(f"e{i}" for i in range(num_entities))
    return KnowledgeGraph(
        name=f"synthetic-{num_triples}",
        entity_names=names,
        entity_texts=names,
        relation_names=tuple(f"r{i}" for i in range(num_relations)),
        train=triples[:num_triples],
        valid=triples[num_triples : num_triples + holdout],
        test=triples[num_triples + holdout :],
    )


def parse_synthetic(spec: str) -> tuple[int, int, int] | None:
    """'synthetic:N[:entities[:relations]]' -> (N, entities, relations), defaults 15000 and 30; a folder -> None."""
    if not spec.startswith(SYNTHETIC_PREFIX):
        return None
    parts = spec[len(SYNTHETIC_PREFIX):].split(":")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--dataset {spec!r}: expected synthetic:N[:entities[:relations]] with positive integers")
    num_triples, num_entities, num_relations = [int(part) for part in parts] + [15_000, 30][len(parts) - 1:]
    return num_triples, num_entities, num_relations


def load_graph(spec: str, seed: int = 0) -> KnowledgeGraph:
    """An OpenKE folder, or a synthetic graph (see `parse_synthetic`)."""
    synthetic = parse_synthetic(spec)
    if synthetic is None:
        return read_openke_benchmark(Path(spec))
    return synthetic_graph(*synthetic, seed=seed)


def stand_in_features(num_entities: int, modalities: Sequence[tuple[str, int]],
                      seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """Modality -> (random unit-scale vectors (N, d), all-present mask (N,)), as read_feature_bundle shapes it."""
    rng = torch.Generator().manual_seed(seed)
    return {
        name: (torch.randn(num_entities, width, generator=rng) / math.sqrt(width),
               torch.ones(num_entities, dtype=torch.bool))
        for name, width in modalities
    }


def hardness_levels_for(num_steps: int) -> tuple[HardnessLevel, ...]:
    """The reference's levels at steps [0, T/10, T/8, T/4, T/2] (its weights and margins) for any T."""
    steps = (0, num_steps // 10, num_steps // 8, num_steps // 4, num_steps // 2)
    reference = TrainConfig().hardness_levels
    return tuple(dataclasses.replace(level, step=step) for level, step in zip(reference, steps))


# ----- measuring --------------------------------------------------------------------------------------

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


def denoiser_flops_per_row(width: int, hidden_multiplier: int) -> tuple[int, int]:
    """Matmul FLOPs of one ConditionalDenoiser call: (per row of the net, per call of the time MLP).

    Layout (dhns.diffusion.denoiser): time MLP Linear(w, w) -> Linear(w, w) on the step's embedding, then
    Linear(3w, h) -> Linear(h, w) -> Linear(w, w) with h = hidden_multiplier * w; 2 * in * out per Linear.
    """
    hidden = hidden_multiplier * width
    net = 2 * (3 * width * hidden + hidden * width + width * width)
    time_mlp = 2 * (width * width + width * width)
    return net, time_mlp


def chain_flops(generator: HierarchicalGenerator, batch: int, keep_steps: Sequence[int]) -> int:
    """Matmul FLOPs of `generate` on `batch` triples in the design's layer layout: every level, both sides,
    T - min(k) calls. The time MLP is counted once per call: its input, the step, is the same for every row.

    The sampler may execute fewer (the restructured chain of `PreparedDenoisers` folds the condition term
    and the last two Linears), so FLOPs / seconds is an equivalent rate, comparable across implementations.
    """
    net, time_mlp = denoiser_flops_per_row(generator.width, generator.hidden_multiplier)
    calls = generator.diffusion.num_steps - min(keep_steps)
    return len(generator.levels) * calls * (2 * batch * net + time_mlp)


def generator_step_flops(generator: HierarchicalGenerator, batch: int) -> int:
    """Matmul FLOPs of one `generator_step` (forward + backward ~ 3x forward; every row has its own step)."""
    net, time_mlp = denoiser_flops_per_row(generator.width, generator.hidden_multiplier)
    return 3 * len(generator.levels) * 2 * batch * (net + time_mlp)


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


def hardware() -> dict[str, Any]:
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


# ----- the benchmark ----------------------------------------------------------------------------------

def build_model(config: BenchConfig, graph: KnowledgeGraph, device: torch.device) -> KGCModel:
    features = stand_in_features(graph.num_entities, config.modalities, config.seed)
    model_config = ModelConfig(name=config.model, embedding_dim=config.dim, use_features=bool(features))
    torch.manual_seed(config.seed)
    return KGCModel(model_config, graph.num_entities, graph.num_relations, features).to(device)


def make_generator(model: KGCModel, num_steps: int) -> HierarchicalGenerator:
    """The diffusion stage's generator with params.yaml's defaults except T."""
    defaults = DiffusionConfig()
    return build_generator(model, num_steps, defaults.beta_start, defaults.beta_end, defaults.hidden_multiplier)


def kgc_phase(config: BenchConfig, model: KGCModel, train: Tensor, sampler_name: str, lr: float,
              batches: int | None, extra: HardNegativeObjective | None = None) -> dict[str, Any]:
    """Time `train_step` with a fresh sampler and Adam; the sampler's construction is timed apart."""
    device = model.device
    began = time.perf_counter()
    sampler = make_sampler(sampler_name, train, model.num_entities, model.num_relations, config.num_negatives)
    sampler.to(device)
    synchronize(device)
    setup = time.perf_counter() - began
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    temperature = PretrainConfig().adversarial_temperature if sampler_name in ADVERSARIAL_SAMPLERS else None
    regularization = PretrainConfig().regularization
    model.train()

    def step(batch: Tensor, rng: torch.Generator) -> Tensor:
        return train_step(model, optimizer, sampler, batch, rng, temperature, regularization, extra,
                          precision=config.precision)

    timing = time_epoch(step, train, config.batch_size, batches, config.warmup, device, config.seed)
    return {**timing, "sampler": sampler_name, "sampler_setup_seconds": setup}


def run_stages(config: BenchConfig, graph: KnowledgeGraph, device: torch.device) -> dict[str, Any]:
    """Pretrain, diffusion and dhns train steps on one model, then `generate` alone; each with its peaks."""
    results: dict[str, Any] = {}
    model = build_model(config, graph, device)
    train = graph.train.to(device)
    results["model_parameters"] = sum(p.numel() for p in model.parameters())
    if "pretrain" in config.stages:
        reset_peaks(device)
        results["pretrain"] = kgc_phase(config, model, train, "self_adversarial", PretrainConfig().kgc_lr,
                                        config.batches) | memory_peaks(device)
    if not {"diffusion", "train"} & set(config.stages):
        return results
    diffusion = DiffusionConfig()  # schedule ends, learning rate, loss and width; T comes from the bench config
    generator = make_generator(model, config.diffusion_steps)
    results["generator_parameters"] = sum(p.numel() for p in generator.parameters())
    results["levels"] = list(generator.levels)
    if "diffusion" in config.stages:
        reset_peaks(device)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model.eval()
        generator.train()
        optimizer = torch.optim.Adam(generator.parameters(), lr=diffusion.generator_lr)

        def diffusion_step(batch: Tensor, rng: torch.Generator) -> Tensor:
            return generator_step(generator, model, optimizer, batch, diffusion.loss, rng, precision=config.precision)

        timing = time_epoch(diffusion_step, train, config.batch_size, config.batches, config.warmup, device,
                            config.seed)
        flops = generator_step_flops(generator, config.batch_size)
        results["diffusion"] = timing | memory_peaks(device) | {
            "flops_per_full_batch": flops,
            "flops_per_second": flops * timing["measured_triples"] / config.batch_size / timing["measured_seconds"],
        }
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    if "train" in config.stages:
        train_config = TrainConfig()
        objective = HardNegativeObjective(generator, hardness_levels_for(config.diffusion_steps),
                                          train_config.hard_loss_weight)
        reset_peaks(device)
        results["train"] = kgc_phase(config, model, train, "dhns", train_config.kgc_lr, config.batches,
                                     objective) | memory_peaks(device)
        results["train"]["hardness_steps"] = list(objective.steps)
        results["generation"] = time_generation(config, generator, model, train, objective.steps)
    return results


def time_generation(config: BenchConfig, generator: HierarchicalGenerator, model: KGCModel, train: Tensor,
                    keep_steps: Sequence[int]) -> dict[str, Any]:
    """`generate` alone on the train phase's batches; achieved FLOP/s from the analytic chain FLOPs."""
    device = model.device
    model.eval()
    generator.eval()
    def generate(batch: Tensor, rng: torch.Generator) -> Any:
        with precision_context(config.precision, device):
            return generator.generate(model, batch, keep_steps, generator=rng)

    timing = time_epoch(generate, train, config.batch_size, config.batches, config.warmup, device, config.seed)
    model.train()
    flops = chain_flops(generator, config.batch_size, keep_steps)
    # Every batch but possibly the last is full; FLOPs scale with rows, so use triples measured.
    achieved = flops * timing["measured_triples"] / config.batch_size / timing["measured_seconds"]
    calls = generator.diffusion.num_steps - min(keep_steps)
    return {"seconds_per_batch": timing["seconds_per_batch"], "measured_batches": timing["measured_batches"],
            "seconds_per_epoch": timing["seconds_per_epoch"], "extrapolated": timing["extrapolated"],
            "denoiser_calls_per_chain": calls, "rows_per_call": 2 * config.batch_size,
            "flops_per_full_batch": flops, "flops_per_second": achieved}


def time_evaluation(config: BenchConfig, graph: KnowledgeGraph, device: torch.device) -> dict[str, Any]:
    """Filter index build and filtered ranking of the test split (both sides) on a fresh model."""
    model = build_model(config, graph, device).eval()
    test = graph.test.to(device)
    reset_peaks(device)
    synchronize(device)
    began = time.perf_counter()
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    synchronize(device)
    index_seconds = time.perf_counter() - began
    evaluate_link_prediction(model, test[: config.eval_batch_size], filter_index, batch_size=config.eval_batch_size)
    model.eval()  # drops the cached entity table, so the timed pass recomputes it as a real evaluation does
    synchronize(device)
    began = time.perf_counter()
    metrics = evaluate_link_prediction(model, test, filter_index, batch_size=config.eval_batch_size)
    synchronize(device)
    seconds = time.perf_counter() - began
    return {"test_triples": int(test.shape[0]), "queries": 2 * int(test.shape[0]), "batch_size": config.eval_batch_size,
            "filter_index_seconds": index_seconds, "seconds": seconds,
            "queries_per_second": 2 * test.shape[0] / seconds,
            "mrr_untrained": metrics["both"]["realistic"]["mrr"]} | memory_peaks(device)


def run_sweep(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Seconds per epoch of the pretrain step (and the dhns step) on synthetic graphs of each size."""
    rows = []
    for size in config.sweep_sizes:
        graph = synthetic_graph(size, config.sweep_entities, config.sweep_relations, config.seed)
        model = build_model(config, graph, device)
        train = graph.train.to(device)
        reset_peaks(device)
        pretrain = kgc_phase(config, model, train, "self_adversarial", PretrainConfig().kgc_lr, config.sweep_batches)
        row = {"triples": size, "entities": graph.num_entities, "relations": graph.num_relations,
               "batches_per_epoch": pretrain["batches_per_epoch"], "measured_batches": pretrain["measured_batches"],
               "extrapolated": pretrain["extrapolated"], "sampler_setup_seconds": pretrain["sampler_setup_seconds"],
               "seconds_per_epoch": pretrain["seconds_per_epoch"],
               "seconds_per_1k_triples": 1000 * pretrain["seconds_per_epoch"] / size}
        if config.sweep_dhns:
            generator = make_generator(model, config.diffusion_steps)
            objective = HardNegativeObjective(generator, hardness_levels_for(config.diffusion_steps),
                                              TrainConfig().hard_loss_weight)
            dhns = kgc_phase(config, model, train, "dhns", TrainConfig().kgc_lr, config.sweep_batches, objective)
            row.update(dhns_seconds_per_epoch=dhns["seconds_per_epoch"],
                       dhns_seconds_per_1k_triples=1000 * dhns["seconds_per_epoch"] / size)
        rows.append(row | memory_peaks(device))
    return {"rows": rows, **linearity(rows)}


def linearity(rows: Sequence[dict]) -> dict[str, Any]:
    """Spread (max / min) of seconds per 1k triples; within LINEARITY_TOLERANCE the growth is called linear.

    Judged on the pretrain step; the dhns step's spread is reported beside it when it was timed.
    """
    per_1k = [row["seconds_per_1k_triples"] for row in rows]
    spread = max(per_1k) / min(per_1k)
    result = {"spread": spread, "linear": spread <= LINEARITY_TOLERANCE, "tolerance": LINEARITY_TOLERANCE}
    dhns = [row["dhns_seconds_per_1k_triples"] for row in rows if "dhns_seconds_per_1k_triples" in row]
    if dhns:
        result["dhns_spread"] = max(dhns) / min(dhns)
    return result


def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    """Everything the report prints, as a JSON-ready dict."""
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run_benchmark(config, resolve_device(config.device))
    finally:
        torch.set_num_threads(threads)


def _run_benchmark(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    result: dict[str, Any] = {"config": dataclasses.asdict(config) | {"device": str(device)}, "hardware": hardware()}
    needs_graph = bool(config.stages) or config.eval
    if needs_graph:
        graph = load_graph(config.dataset, config.seed)
        result["graph"] = {"name": graph.name, "entities": graph.num_entities, "relations": graph.num_relations,
                           "train": int(graph.train.shape[0]), "valid": int(graph.valid.shape[0]),
                           "test": int(graph.test.shape[0])}
        if config.stages:
            result["stages"] = run_stages(config, graph, device)
        if config.eval:
            result["evaluation"] = time_evaluation(config, graph, device)
    if {"generation", "diffusion"} & set(result.get("stages", {})):
        result["peaks"] = device_peaks(device)
    if config.sweep:
        result["sweep"] = run_sweep(config, device)
    result["process_peak_host_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# ----- report -----------------------------------------------------------------------------------------

def _si(value: float, unit: str) -> str:
    """1.23e13, 'FLOP' -> '12.300 TFLOP'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {prefix}{unit}"
    return f"{value:.3f} {unit}"


def _flops(value: float) -> str:
    return _si(value, "FLOP/s")


def _memory(row: dict) -> str:
    cuda = row.get("peak_cuda_mib")
    text = f"peak host RSS {row['peak_host_rss_mib']:.0f} MiB"
    return text + (f", peak CUDA {cuda:.0f} MiB" if cuda is not None else "")


def _phase_lines(name: str, row: dict, peaks: dict) -> list[str]:
    label = "extrapolated" if row["extrapolated"] else "measured"
    lines = [f"{name}: {row['seconds_per_epoch']:.3f} s per epoch ({label}; {row['batches_per_epoch']} batches, "
             f"{row['epoch_triples']} triples)",
             f"  measured: {row['measured_batches']} batch(es), {row['measured_triples']} triples in "
             f"{row['measured_seconds']:.3f} s = {row['seconds_per_batch']:.3f} s per batch, "
             f"{row['triples_per_second']:.0f} triples/s"]
    if "sampler_setup_seconds" in row:
        lines.append(f"  sampler ({row['sampler']}) setup {row['sampler_setup_seconds']:.3f} s, not in the epoch")
    if "flops_per_second" in row:
        lines.append(f"  denoiser training {_si(row['flops_per_full_batch'], 'FLOP')} per batch "
                     f"(3x forward), {_flops(row['flops_per_second'])}, "
                     f"{100 * row['flops_per_second'] / peaks['measured_fp32_matmul_flops']:.1f}% of the measured fp32 "
                     f"matmul peak")
    lines.append("  " + _memory(row))
    return lines


def _peak_lines(generation: dict, peaks: dict) -> list[str]:
    achieved, measured = generation["flops_per_second"], peaks["measured_fp32_matmul_flops"]
    lines = [f"  achieved {_flops(achieved)} (design-layout FLOPs, an equivalent rate); "
             f"{100 * achieved / measured:.1f}% of the measured fp32 matmul peak ({_flops(measured)})"]
    if "spec_fp32_flops" in peaks:
        lines.append(f"  {100 * achieved / peaks['spec_fp32_flops']:.1f}% of the {peaks['spec_source']} fp32 dense "
                     f"peak ({_flops(peaks['spec_fp32_flops'])}), {100 * achieved / peaks['spec_bf16_flops']:.1f}% "
                     f"of its bf16 dense peak ({_flops(peaks['spec_bf16_flops'])})")
    if "measured_bf16_matmul_flops" in peaks:
        lines.append(f"  measured bf16 matmul peak {_flops(peaks['measured_bf16_matmul_flops'])}")
    return lines


def sweep_table(sweep: dict) -> str:
    """Markdown table, one row per size."""
    dhns = any("dhns_seconds_per_epoch" in row for row in sweep["rows"])
    header = ["triples", "entities", "batches", "timed batches", "s per epoch", "s per 1k triples", "sampler setup s"]
    header += ["dhns s per epoch", "dhns s per 1k"] if dhns else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sweep["rows"]:
        cells = [f"{row['triples']:,}", f"{row['entities']:,}", str(row["batches_per_epoch"]),
                 str(row["measured_batches"]), f"{row['seconds_per_epoch']:.3f}",
                 f"{row['seconds_per_1k_triples']:.4f}", f"{row['sampler_setup_seconds']:.3f}"]
        if dhns:
            cells += [f"{row['dhns_seconds_per_epoch']:.3f}", f"{row['dhns_seconds_per_1k_triples']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(result: dict[str, Any]) -> str:
    config, hw = result["config"], result["hardware"]
    modalities = ", ".join(f"{name} {width}-d" for name, width in config["modalities"]) or "none"
    lines = ["== dhns benchmark ==",
             f"hardware: {hw['cpu']}, {hw['cpu_cores']} cores ({hw['usable_cores']} usable), torch threads "
             f"{hw['torch_threads']}, torch {hw['torch']}, python {hw['python']}, GPU: {hw['gpu'] or 'none'}"
             + (f" ({hw['gpu_memory_gib']:.0f} GiB, CUDA {hw['cuda']})" if hw["gpu"] else ""),
             f"config: {config['model']} dim {config['dim']}, batch {config['batch_size']}, {config['num_negatives']} "
             f"negatives, T = {config['diffusion_steps']}, stand-in modalities: {modalities}; "
             f"device {config['device']}; timed batches: {config['batches'] or 'whole epoch'}, "
             f"warmup {config['warmup']}"]
    if "graph" in result:
        graph = result["graph"]
        lines.append(f"dataset: {config['dataset']} ({graph['entities']} entities, {graph['relations']} relations, "
                     f"train/valid/test {graph['train']}/{graph['valid']}/{graph['test']})")
    stages = result.get("stages", {})
    if stages:
        lines.append(f"model parameters: {stages['model_parameters']:,}"
                     + (f"; generator parameters: {stages['generator_parameters']:,} (levels "
                        f"{', '.join(stages['levels'])})" if "generator_parameters" in stages else ""))
    for name, title in (("pretrain", "pretrain (self-adversarial)"), ("diffusion", "diffusion (generator_step)"),
                        ("train", "train (dhns)")):
        if name in stages:
            lines += _phase_lines(title, stages[name], result.get("peaks", {}))
    if "generation" in stages:
        gen = stages["generation"]
        lines.append(f"denoiser (generate alone): {gen['seconds_per_batch']:.3f} s per batch over "
                     f"{gen['measured_batches']} batch(es); {gen['denoiser_calls_per_chain']} calls x "
                     f"{len(stages['levels'])} levels x {gen['rows_per_call']} rows = "
                     f"{_si(gen['flops_per_full_batch'], 'FLOP')} per batch")
        lines += _peak_lines(gen, result["peaks"])
        share = gen["seconds_per_batch"] / stages["train"]["seconds_per_batch"]
        lines.append(f"  generation is {100 * share:.0f}% of the dhns train step")
    if "evaluation" in result:
        ev = result["evaluation"]
        lines += [f"evaluation: {ev['seconds']:.3f} s for {ev['test_triples']} test triples x 2 sides, filtered, "
                  f"batch {ev['batch_size']} ({ev['queries_per_second']:.0f} queries/s); filter index "
                  f"{ev['filter_index_seconds']:.3f} s", "  " + _memory(ev)]
    if "sweep" in result:
        sweep = result["sweep"]
        timed = config["sweep_batches"]
        steps = "pretrain and dhns steps" if "dhns_spread" in sweep else "pretrain step"
        lines += ["", f"scaling sweep: {steps}, {config['sweep_entities']} entities, "
                  + ("whole epochs timed" if timed is None else
                     f"first {timed} batches timed and extrapolated (linear by construction apart from per-batch "
                     f"costs that grow with the graph)"),
                  sweep_table(sweep),
                  f"seconds per 1k triples spread {sweep['spread']:.2f}x -> "
                  + ("linear" if sweep["linear"] else f"NOT linear (tolerance {sweep['tolerance']}x)")
                  + (f"; dhns step spread {sweep['dhns_spread']:.2f}x" if "dhns_spread" in sweep else "")]
    lines.append(f"process peak host RSS: {result['process_peak_host_rss_mib']:.0f} MiB")
    return "\n".join(lines)


def write_sweep_csv(path: Path, sweep: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["triples", "entities", "batches_per_epoch", "measured_batches", "seconds_per_epoch",
               "seconds_per_1k_triples", "sampler_setup_seconds", "dhns_seconds_per_epoch"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sweep["rows"])


def write_sweep_svg(path: Path, sweep: dict, width: int = 480, height: int = 320) -> None:
    """A log-log chart of seconds per epoch against training triples, with the linear-growth line.

    Hand-written SVG (no plotting dependency): measured points joined, and a dashed line of slope 1
    through the smallest size; points on that line mean time grows linearly with the graph.
    """
    rows = sorted(sweep["rows"], key=lambda row: row["triples"])
    xs = [math.log10(row["triples"]) for row in rows]
    ys = [math.log10(row["seconds_per_epoch"]) for row in rows]
    ideal = [ys[0] + (x - xs[0]) for x in xs]
    x_low, x_high = min(xs) - 0.2, max(xs) + 0.2
    y_low, y_high = min(ys + ideal) - 0.3, max(ys + ideal) + 0.3
    margin = 56

    def point(x: float, y: float) -> str:
        px = margin + (x - x_low) / (x_high - x_low) * (width - 2 * margin)
        py = height - margin - (y - y_low) / (y_high - y_low) * (height - 2 * margin)
        return f"{px:.1f},{py:.1f}"

    ticks = []
    for row, x, y in zip(rows, xs, ys):
        px, py = point(x, y).split(",")
        ticks.append(f'<circle cx="{px}" cy="{py}" r="4" fill="#1f77b4"/>'
                     f'<text x="{px}" y="{height - margin + 18}" text-anchor="middle" font-size="11">{row["triples"]:,}</text>'
                     f'<text x="{float(px) + 8:.1f}" y="{float(py) - 8:.1f}" font-size="11">{row["seconds_per_epoch"]:.2f} s</text>')
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="black"/>
<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>
<polyline points="{' '.join(point(x, y) for x, y in zip(xs, ideal))}" fill="none" stroke="gray" stroke-dasharray="5,4"/>
<polyline points="{' '.join(point(x, y) for x, y in zip(xs, ys))}" fill="none" stroke="#1f77b4" stroke-width="2"/>
{''.join(ticks)}
<text x="{width / 2}" y="{height - 12}" text-anchor="middle" font-size="12">training triples (log scale)</text>
<text x="16" y="{height / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {height / 2})">seconds per epoch (log)</text>
<text x="{width / 2}" y="22" text-anchor="middle" font-size="13">epoch time vs graph size; dashed: linear growth</text>
</svg>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")


# ----- command line -----------------------------------------------------------------------------------

def _optional_int(value: str) -> int | None:
    return None if value.lower() in ("", "all", "none") else int(value)


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchConfig, Path | None, Path | None]:
    """The config, the --json path and the --plot path; bad values raise ValueError."""
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(prog="python -m dhns.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=defaults.dataset,
                        help="OpenKE folder, or synthetic:N[:entities[:relations]]")
    parser.add_argument("--model", choices=MODEL_NAMES, default=defaults.model)
    parser.add_argument("--dim", type=int, default=defaults.dim)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--num-negatives", type=int, default=defaults.num_negatives)
    parser.add_argument("--diffusion-steps", type=int, default=defaults.diffusion_steps, help="T")
    parser.add_argument("--modalities", default="text:384,image:383", help="stand-in features name:width,...; 'none'")
    parser.add_argument("--device", default=defaults.device, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batches", type=_optional_int, default=None, help="timed batches per phase (default: epoch)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed batches before each phase")
    parser.add_argument("--stages", default=",".join(STAGES), help="subset of pretrain,diffusion,train, or 'none'")
    parser.add_argument("--eval", action="store_true", help="time filtered evaluation of the test split")
    parser.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    parser.add_argument("--sweep", action="store_true", help="time the pretrain step on synthetic graphs of each size")
    parser.add_argument("--sweep-sizes", default=",".join(map(str, DEFAULT_SWEEP_SIZES)), help="training triples")
    parser.add_argument("--sweep-entities", type=int, default=defaults.sweep_entities)
    parser.add_argument("--sweep-relations", type=int, default=defaults.sweep_relations)
    parser.add_argument("--sweep-batches", type=_optional_int, default=None, help="timed batches per size")
    parser.add_argument("--sweep-dhns", action="store_true", help="also time the dhns step in the sweep")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as is (the stages make it keep freed memory on CPU)")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="fp32 | tf32 | bf16 autocast for the training steps and the chain")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write the sweep here: .svg a log-log chart, else CSV (for dvc plots)")
    args = parser.parse_args(argv)
    stages = () if args.stages.strip().lower() in ("", "none") else tuple(s.strip() for s in args.stages.split(","))
    config = BenchConfig(
        dataset=args.dataset, model=args.model, dim=args.dim, batch_size=args.batch_size,
        num_negatives=args.num_negatives, diffusion_steps=args.diffusion_steps,
        modalities=parse_modalities(args.modalities), device=args.device, batches=args.batches, warmup=args.warmup,
        stages=stages, eval=args.eval, eval_batch_size=args.eval_batch_size, sweep=args.sweep,
        sweep_sizes=tuple(int(size) for size in args.sweep_sizes.split(",")), sweep_entities=args.sweep_entities,
        sweep_relations=args.sweep_relations, sweep_batches=args.sweep_batches, sweep_dhns=args.sweep_dhns,
        threads=args.threads, seed=args.seed, precision=args.precision,
        keep_freed_memory=not args.default_allocator,
    )
    return config, args.json, args.plot


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, json_path, plot_path = parse_args(argv)
    except ValueError as err:
        print(f"dhns.bench: {err}", file=sys.stderr)
        return 2
    if config.keep_freed_memory and (config.stages or config.sweep) and resolve_device(config.device).type == "cpu":
        keep_freed_memory()  # as the training loops do; irreversible for the process, hence here
    result = run_benchmark(config)
    print(format_report(result))
    if plot_path is not None:
        if "sweep" in result:
            (write_sweep_svg if plot_path.suffix == ".svg" else write_sweep_csv)(plot_path, result["sweep"])
        else:
            print("dhns.bench: --plot ignored: it writes the sweep, and --sweep was not given", file=sys.stderr)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
