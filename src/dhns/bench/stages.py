"""Each stage's step timed through the library's own step functions, plus generation and evaluation alone."""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from dhns.bench.config import BenchConfig
from dhns.bench.flops import chain_calls, chain_flops, executed_chain_flops, generator_step_flops
from dhns.bench.inputs import stand_in_features
from dhns.bench.settings import (bench_params, cache_settings, classic_settings, dhns_settings, diffusion_settings,
                                 joint_settings, pretrain_settings)
from dhns.bench.timing import matmul_peak, memory_peaks, reset_peaks, synchronize, time_epoch
from dhns.config import DiffusionConfig, Params, PretrainConfig, TrainConfig, preset_of
from dhns.data import KnowledgeGraph
from dhns.diffusion.generator import HierarchicalGenerator, build_generator
from dhns.host import resolve_precision
from dhns.training.diffusion import generator_step
from dhns.evaluation import build_filter_index, evaluate_link_prediction
from dhns.models.kgc import KGCModel
from dhns.training.ntat import build_train_objective
from dhns.training.step import adam, precision_context
from dhns.training.kgc import kgc_optimizer, train_step

Tensor = torch.Tensor


def build_model(config: BenchConfig, params: Params, graph: KnowledgeGraph, device: torch.device) -> KGCModel:
    """The stages' model as `params` (the bench's `bench_params`) describes it, with stand-in features."""
    features = stand_in_features(graph.num_entities, config.modalities, config.seed)
    torch.manual_seed(config.seed)
    return KGCModel(params.model, graph.num_entities, graph.num_relations, features).to(device)


def make_generator(model: KGCModel, diffusion: DiffusionConfig) -> HierarchicalGenerator:
    """The diffusion stage's generator as params.yaml builds it, at the bench's T."""
    return build_generator(model, diffusion.num_diffusion_steps, diffusion.beta_start, diffusion.beta_end,
                           diffusion.hidden_multiplier)


def kgc_phase(config: BenchConfig, model: KGCModel, train: Tensor, stage: PretrainConfig, batches: int | None,
              generator: HierarchicalGenerator | None = None, timed: Tensor | None = None) -> dict[str, Any]:
    """Time `train_step` with the negatives the stage's settings build and Adam; building them is timed apart.

    The objective comes from the train stage's own builder (`build_train_objective`), with the bench's number of
    negatives. The sampler knows `train` (its false-negative filter); the batches walk `timed`, by default
    `train` too; the peer comparison passes the stream of triples it also gives the peer.
    """
    device = model.device
    began = time.perf_counter()
    objective = build_train_objective(stage, train, model.num_entities, model.num_relations, generator).to(device)
    synchronize(device)
    setup = time.perf_counter() - began
    optimizer = kgc_optimizer(model, stage)  # dense Adam, or lazy Adam on sparse entity gradients
    model.train()

    def step(batch: Tensor, rng: torch.Generator) -> Tensor:
        return train_step(model, optimizer, objective, batch, rng)

    walked = train if timed is None else timed
    timing = time_epoch(step, walked, config.batch_size, batches, config.warmup, device, config.seed)
    steps = {"hardness_steps": list(objective.extra.steps)} if objective.extra is not None else {}
    sampler = preset_of(stage.negatives) or stage.sampler  # the preset its axes amount to
    return {**timing, "sampler": sampler, "sampler_setup_seconds": setup, **steps}


def time_validation(config: BenchConfig, model: KGCModel, graph: KnowledgeGraph) -> dict[str, Any]:
    """One filtered evaluation of the valid split, as the train stage runs after each epoch."""
    device = model.device
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    valid = graph.valid.to(device)
    model.eval()
    synchronize(device)
    began = time.perf_counter()
    evaluate_link_prediction(model, valid, filter_index, batch_size=config.eval_batch_size)
    synchronize(device)
    seconds = time.perf_counter() - began
    model.train()
    return {"valid_triples": int(valid.shape[0]), "seconds": seconds}


def over_classic(classic: dict[str, Any], other: dict[str, Any], validation: dict[str, Any]) -> dict[str, float]:
    """A step's and an epoch's (validation included on both sides) cost as a multiple of the classic one's."""
    return {"step": other["seconds_per_batch"] / classic["seconds_per_batch"],
            "epoch_with_validation": (other["seconds_per_epoch"] + validation["seconds"])
            / (classic["seconds_per_epoch"] + validation["seconds"])}


def run_stages(config: BenchConfig, graph: KnowledgeGraph, device: torch.device) -> dict[str, Any]:
    """Pretrain, diffusion and dhns train steps on one model, then `generate` alone; each with its peaks."""
    results: dict[str, Any] = {}
    params = bench_params(config)
    model = build_model(config, params, graph, device)
    train = graph.train.to(device)
    results["model_parameters"] = sum(p.numel() for p in model.parameters())
    results["settings"] = {"params": config.params}
    if "pretrain" in config.stages:
        reset_peaks(device)
        pretrain = pretrain_settings(config, params)
        results["pretrain"] = kgc_phase(config, model, train, pretrain, config.batches) | memory_peaks(device)
        results["settings"]["pretrain_precision"] = resolve_precision(pretrain.precision, device)
    if not {"diffusion", "train"} & set(config.stages):
        return results
    diffusion = diffusion_settings(config, params)
    generator = make_generator(model, diffusion)
    results["generator_parameters"] = sum(p.numel() for p in generator.parameters())
    results["levels"] = list(generator.levels)
    if "diffusion" in config.stages:
        reset_peaks(device)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model.eval()
        generator.train()
        optimizer = adam(generator.parameters(), diffusion.generator_lr)

        def diffusion_step(batch: Tensor, rng: torch.Generator) -> Tensor:
            return generator_step(generator, model, optimizer, batch, diffusion.loss, rng,
                                  precision=diffusion.precision)

        timing = time_epoch(diffusion_step, train, config.batch_size, config.batches, config.warmup, device,
                            config.seed)
        flops = generator_step_flops(generator, config.batch_size)
        results["diffusion"] = timing | memory_peaks(device) | {
            "flops_per_full_batch": flops,
            "flops_per_second": flops * timing["measured_triples"] / config.batch_size / timing["measured_seconds"],
        }
        results["settings"]["diffusion_precision"] = resolve_precision(diffusion.precision, device)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    if "train" in config.stages:
        settings = dhns_settings(config, params)
        reset_peaks(device)
        results["classic"] = kgc_phase(config, model, train, classic_settings(settings), config.batches) \
            | memory_peaks(device)
        reset_peaks(device)
        results["train"] = kgc_phase(config, model, train, settings, config.batches, generator) | memory_peaks(device)
        results["train"]["chain"] = settings.chain.label
        reset_peaks(device)
        results["cache"] = kgc_phase(config, model, train, cache_settings(settings), config.batches) \
            | memory_peaks(device)
        reset_peaks(device)
        results["joint"] = kgc_phase(config, model, train, joint_settings(settings), config.batches, generator) \
            | memory_peaks(device)
        results["settings"]["train_precision"] = resolve_precision(settings.precision, device)
        results["settings"]["chain"] = settings.chain.label
        results["validation"] = time_validation(config, model, graph)
        results["dhns_over_classic"] = over_classic(results["classic"], results["train"], results["validation"])
        results["cache_over_classic"] = over_classic(results["classic"], results["cache"], results["validation"])
        results["joint_over_classic"] = over_classic(results["classic"], results["joint"], results["validation"])
        results["generation"] = time_generation(config, generator, model, train, results["train"]["hardness_steps"],
                                                settings)
        results["dhns_over_classic_floor"] = over_classic_at_generation_floor(
            results["classic"], results["train"], results["generation"], results["validation"])
    return results


def time_generation(config: BenchConfig, generator: HierarchicalGenerator, model: KGCModel, train: Tensor,
                    keep_steps: Sequence[int], settings: TrainConfig) -> dict[str, Any]:
    """`generate` alone on the train phase's batches; achieved FLOP/s from the analytic chain FLOPs."""
    device = model.device
    model.eval()
    generator.eval()
    def generate(batch: Tensor, rng: torch.Generator) -> Any:
        with precision_context(settings.precision, device):
            return generator.generate(model, batch, keep_steps, generator=rng, chain=settings.chain)

    timing = time_epoch(generate, train, config.batch_size, config.batches, config.warmup, device, config.seed)
    model.train()
    flops = chain_flops(generator, config.batch_size, keep_steps, settings.chain)
    # Every batch but possibly the last is full; FLOPs scale with rows, so use triples measured.
    achieved = flops * timing["measured_triples"] / config.batch_size / timing["measured_seconds"]
    calls = chain_calls(generator.diffusion.num_steps, keep_steps, settings.chain)
    executed = executed_chain_flops(generator, config.batch_size, keep_steps, settings.chain)
    precision = resolve_precision(settings.precision, device)
    peak = matmul_peak(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float32)
    return {"executed_flops_per_full_batch": executed, "matmul_peak_flops": peak, "matmul_precision": precision,
            "floor_seconds_per_batch": executed / peak,
            "seconds_per_batch": timing["seconds_per_batch"], "measured_batches": timing["measured_batches"],
            "seconds_per_epoch": timing["seconds_per_epoch"], "extrapolated": timing["extrapolated"],
            "denoiser_calls_per_chain": calls, "rows_per_call": 2 * config.batch_size,
            "flops_per_full_batch": flops, "flops_per_second": achieved}


def over_classic_at_generation_floor(classic: dict[str, Any], dhns: dict[str, Any], generation: dict[str, Any],
                                     validation: dict[str, Any]) -> dict[str, float]:
    """The least DHNS / classic ratios this machine allows in this layout: the classic step plus generation at its
    matmul floor (the executed FLOPs at the measured matmul peak), everything else of DHNS free. A target below
    these cannot be met by overhead work alone on this machine."""
    floor = generation["floor_seconds_per_batch"]
    batches = dhns["seconds_per_epoch"] / dhns["seconds_per_batch"]  # batches per epoch, the last one partial
    return {"step": (classic["seconds_per_batch"] + floor) / classic["seconds_per_batch"],
            "epoch_with_validation": (classic["seconds_per_epoch"] + batches * floor + validation["seconds"])
            / (classic["seconds_per_epoch"] + validation["seconds"]),
            "generation_over_floor": generation["seconds_per_batch"] / floor}


def time_evaluation(config: BenchConfig, graph: KnowledgeGraph, device: torch.device) -> dict[str, Any]:
    """Filter index build and filtered ranking of the test split (both sides) on a fresh model."""
    model = build_model(config, bench_params(config), graph, device).eval()
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
