"""The benchmark, one module per concern; `python -m dhns.bench --help` lists the options.

config (what a run measures) -> inputs (graphs, stand-in features) -> timing (the epoch timer and the
machine's limits) -> flops / stages / sweep (what is timed) -> report -> cli (options, run, output).
peers, own_side and pykeen_side compare the same training step and evaluation with PyKEEN's (`--peer`).
"""

from dhns.bench.cli import main, parse_args, run_benchmark
from dhns.bench.config import BenchConfig, parse_modalities, parse_synthetic
from dhns.bench.flops import chain_flops, denoiser_flops_per_row, executed_chain_flops, generator_step_flops
from dhns.bench.inputs import load_graph, stand_in_features, synthetic_graph
from dhns.bench.settings import hardness_levels_for
from dhns.bench.report import format_report
from dhns.bench.sweep import linearity, write_sweep_csv, write_sweep_svg
from dhns.bench.timing import hardware, time_epoch

__all__ = [
    "BenchConfig", "chain_flops", "denoiser_flops_per_row", "executed_chain_flops", "format_report", "generator_step_flops", "hardness_levels_for",
    "hardware", "linearity", "load_graph", "main", "parse_args", "parse_modalities", "parse_synthetic", "run_benchmark",
    "stand_in_features", "synthetic_graph", "time_epoch", "write_sweep_csv", "write_sweep_svg",
]
