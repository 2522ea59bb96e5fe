"""Part 1: the bench's reference config (DistMult 1024 + DHNS) and RotatE 512 in fp32, tf32 and bf16.

Last in the run order: it is the slowest part, and a timing is worth less than a correctness check.
"""

from __future__ import annotations

from typing import Any, Iterator

from dhns.gpu_suite.bench_calls import BenchCall, Row, bench_args, run_rows
from dhns.gpu_suite.commands import Outcome, PartRun
from dhns.gpu_suite.peaks import PEAK_SOURCE, share_of_peak, spec_card
from dhns.gpu_suite.settings import Scorer

PHASES = ("pretrain", "diffusion", "train")


def phase_peak(stages: dict[str, Any], key: str) -> float | None:
    """The largest of a memory figure over the timed phases; None where no phase reports it (e.g. CUDA on a CPU)."""
    values = [stages[phase][key] for phase in PHASES if phase in stages and stages[phase].get(key) is not None]
    return max(values) if values else None


def bench_row(result: dict[str, Any], precision: str, gpu: str | None) -> Row:
    """The summary's row from one bench JSON: seconds per epoch, the reverse chain's FLOP/s and peak memory."""
    config, stages = result["config"], result["stages"]
    generation = stages["generation"]
    return {
        "model": config["model"], "dim": config["dim"], "precision": precision, "dataset": config["dataset"],
        "batch_size": config["batch_size"], "num_negatives": config["num_negatives"],
        "diffusion_steps": config["diffusion_steps"], "modalities": config["modalities"],
        "timed_batches": stages["train"]["measured_batches"], "extrapolated": stages["train"]["extrapolated"],
        "reverse_chain": stages["train"].get("chain", "full"),  # the bench's own label of the chain it timed
        "seconds_per_epoch": {phase: stages[phase]["seconds_per_epoch"] for phase in PHASES},
        "chain_flops_per_second": generation["flops_per_second"],
        "chain_share_of_spec_peak": share_of_peak(generation["flops_per_second"], gpu, precision),
        "chain_seconds_per_batch": generation["seconds_per_batch"],
        "denoiser_training_flops_per_second": stages["diffusion"]["flops_per_second"],
        "peak_cuda_mib": phase_peak(stages, "peak_cuda_mib"),
        "peak_host_rss_mib": phase_peak(stages, "peak_host_rss_mib"),
        "measured_matmul_peaks": result.get("peaks", {}),
    }


def bench_call(run: PartRun, scorer: Scorer, precision: str, gpu: str | None) -> BenchCall:
    shape = run.settings.shape
    args = bench_args(shape, scorer, shape.dataset) + ["--precision", precision, "--batches", str(run.settings.batches)]

    def failed_row(outcome: Outcome) -> Row:
        return {"model": scorer.model or "distmult", "dim": scorer.dim, "precision": precision,
                "status": outcome.status, "log": outcome.log.name}

    return BenchCall(f"{scorer.label}-{precision}", args, lambda result: bench_row(result, precision, gpu), failed_row)


def part_bench(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    """Every scorer in each of its precisions; a failed row is listed and the others still run."""
    gpu = machine.get("gpu")
    calls: Iterator[BenchCall] = (bench_call(run, scorer, precision, gpu)
                                  for scorer in run.settings.shape.scorers for precision in scorer.precisions)
    return run_rows(run, calls, {"spec_card": spec_card(gpu), "peak_source": PEAK_SOURCE})
