"""Benchmark: seconds per epoch of each stage's step, denoiser FLOP/s, evaluation time, memory, and a size sweep.

Usage: `python -m dhns.bench [options]` (or `make bench BENCH_ARGS="..."`); `--help` lists the options.
The defaults are the reference ("anchor") config: DistMult + DHNS on MKG-Y, dim 1024, batch 2000,
64 negatives, T = 50, structural + text (384-d) + image (383-d) views. Modality features are random
stand-ins of the given widths for every entity (timing does not depend on their values).

What is timed, always through the library's own step functions (no copy of a training loop):
- pretrain: `dhns.training.kgc.train_step` with the self-adversarial sampler;
- diffusion: `dhns.training.diffusion.generator_step` on the frozen model;
- classic: `train_step` with the train stage's settings but no generated negatives (its self-adversarial
  base), timed right before the dhns step on the same batches, so their ratio is one run's;
- train: `train_step` with the dhns sampler and `dhns.training.ntat.HardNegativeObjective` (the reverse chains,
  full or strided: `--chain-stride`, `--chain-eta`);
- cache: `train_step` with the classic settings drawing from NSCaching's cache (params' cache_size, cache_pool and
  cache_refresh), its refresh after each step included: what real hard negatives cost beside generated ones;
- generation: `HierarchicalGenerator.generate` alone on the same batches, for the denoiser's FLOP/s;
- validation (with train): `evaluate_link_prediction` on the valid split, as the train stage runs it after
  each epoch; the DHNS / classic epoch ratio counts it on both sides;
- evaluation (`--eval`): `evaluate_link_prediction` on the test split, both sides, filtered by all splits.
With `--batches N` only N batches are timed and the epoch is extrapolated from seconds per triple; the
report labels every figure as measured or extrapolated. The sweep (`--sweep`) times the pretrain step
(and with `--sweep-dhns` the dhns step) on synthetic graphs of growing size: seconds per 1k triples
should stay roughly constant.

The peer comparison (`--peer pykeen`, `make bench-peers`) runs instead of the stages: PyKEEN's and our
training step (TransE and RotatE, dim 200, batch 2000, 64 negatives, self-adversarial loss) on the same
MKG-Y triples, then both filtered evaluations with our weights, each against the memory-bandwidth floor.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from dhns.bench.comparison import run_peer_comparison
from dhns.bench.config import DEFAULT_SWEEP_SIZES, STAGES, BenchConfig, parse_modalities
from dhns.bench.inputs import load_graph
from dhns.bench.peer_report import format_peer_report
from dhns.bench.peers import PEER_HAS_MODELS, PEER_MODELS, PEERS, PeerConfig, PeerUnavailable
from dhns.bench.report import format_report
from dhns.bench.stages import run_stages, time_evaluation
from dhns.bench.sweep import run_sweep, write_sweep_csv, write_sweep_svg
from dhns.bench.timing import device_peaks, hardware
from dhns.config import MODEL_NAMES, OPTIMIZERS, PRECISIONS
from dhns.host import keep_freed_memory, resolve_device


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


def _optional_int(value: str) -> int | None:
    return None if value.lower() in ("", "all", "none") else int(value)


# Options of the stages, the evaluation and the sweep: given with --peer they would be silently ignored.
STAGE_ONLY_OPTIONS = ("model", "dim", "batch_size", "num_negatives", "diffusion_steps", "modalities", "stages", "eval",
                      "sweep", "sweep_sizes", "sweep_entities", "sweep_relations", "sweep_batches", "sweep_dhns",
                      "precision", "plot", "chain_stride", "chain_eta", "optimizer", "params")


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchConfig | PeerConfig, Path | None, Path | None]:
    """The config (a PeerConfig with --peer), the --json path and the --plot path; bad values raise ValueError."""
    defaults, peer_defaults = BenchConfig(), PeerConfig()
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
    parser.add_argument("--sweep-entities", default=",".join(map(str, defaults.sweep_entities)),
                        help="entity counts, e.g. 15000,150000,1500000,5000000: the step's cost against the table's size")
    parser.add_argument("--sweep-relations", type=int, default=defaults.sweep_relations)
    parser.add_argument("--sweep-batches", type=_optional_int, default=None, help="timed batches per size")
    parser.add_argument("--sweep-dhns", action="store_true", help="also time the dhns step in the sweep")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as is (the stages make it keep freed memory on CPU)")
    parser.add_argument("--params", default=defaults.params,
                        help="params file whose settings every timed step uses (default: the pipeline's)")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="fp32 | tf32 | bf16 | auto for every timed step (default: each stage's in --params)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer,
                        help="the KGC steps' optimizer: adam | lazy_adam | row_adagrad (default: --params')")
    parser.add_argument("--chain-stride", type=int, default=defaults.chain_stride,
                        help="the dhns step's reverse chain: 1 = every DDPM step, 0 = only the kept steps "
                             "(default: --params' train.chain_stride)")
    parser.add_argument("--chain-eta", type=float, default=defaults.chain_eta,
                        help="the strided chain's noise (0..1; default: --params' train.chain_eta)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write the sweep here: .svg a log-log chart, else CSV (for dvc plots)")
    peer = parser.add_argument_group(
        "peer comparison", "--peer runs it instead of the stages; it also reads --dataset, --device, --threads, "
        "--warmup, --seed, --batches (timed batches per side and model), --eval-batch-size and --json")
    peer.add_argument("--peer", choices=tuple(PEERS), default=None, help="compare with this library (pip install -e .[peers])")
    peer.add_argument("--peer-models", default=None,
                      help="subset of " + ",".join(PEER_MODELS) + " (default: every one the peer has)")
    peer.add_argument("--peer-dim", type=int, default=peer_defaults.dim)
    peer.add_argument("--peer-batch-size", type=int, default=peer_defaults.batch_size)
    peer.add_argument("--peer-negatives", type=int, default=peer_defaults.num_negatives, help="per positive")
    peer.add_argument("--peer-epochs", type=int, default=peer_defaults.epochs,
                      help="timed epochs per side and model, unless --batches is given")
    peer.add_argument("--peer-eval-triples", type=_optional_int, default=None,
                      help="test triples both sides rank (default: the whole split; 0: no evaluation)")
    args = parser.parse_args(argv)
    if args.peer is not None:
        return _peer_config(args, parser), args.json, None
    stages = () if args.stages.strip().lower() in ("", "none") else tuple(s.strip() for s in args.stages.split(","))
    config = BenchConfig(
        dataset=args.dataset, model=args.model, dim=args.dim, batch_size=args.batch_size,
        num_negatives=args.num_negatives, diffusion_steps=args.diffusion_steps,
        modalities=parse_modalities(args.modalities), device=args.device, batches=args.batches, warmup=args.warmup,
        stages=stages, eval=args.eval, eval_batch_size=args.eval_batch_size, sweep=args.sweep,
        sweep_sizes=tuple(int(size) for size in args.sweep_sizes.split(",")), sweep_entities=tuple(int(n) for n in args.sweep_entities.split(",")),
        sweep_relations=args.sweep_relations, sweep_batches=args.sweep_batches, sweep_dhns=args.sweep_dhns,
        threads=args.threads, seed=args.seed, params=args.params, precision=args.precision,
        optimizer=args.optimizer, chain_stride=args.chain_stride, chain_eta=args.chain_eta, keep_freed_memory=not args.default_allocator,
    )
    return config, args.json, args.plot


def peer_models(peer: str, spec: str | None) -> tuple[str, ...]:
    """--peer-models as given, or every model of PEER_MODELS the peer library has."""
    if spec is None:
        return tuple(model for model in PEER_MODELS if model in PEER_HAS_MODELS.get(peer, PEER_MODELS))
    return tuple(model.strip() for model in spec.split(",") if model.strip())


def _peer_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> PeerConfig:
    changed = [name for name in STAGE_ONLY_OPTIONS if getattr(args, name) != parser.get_default(name)]
    if changed:
        raise ValueError(f"--peer: {', '.join('--' + name.replace('_', '-') for name in changed)} apply to the stages, "
                         "not to the peer comparison (its own options are --peer-dim, --peer-batch-size, ...)")
    return PeerConfig(
        peer=args.peer, dataset=args.dataset, models=peer_models(args.peer, args.peer_models),
        dim=args.peer_dim, batch_size=args.peer_batch_size, num_negatives=args.peer_negatives, epochs=args.peer_epochs,
        batches=args.batches, warmup=args.warmup, eval_triples=args.peer_eval_triples,
        eval_batch_size=args.eval_batch_size, device=args.device, threads=args.threads, seed=args.seed,
        keep_freed_memory=not args.default_allocator)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def run_peers(config: PeerConfig, json_path: Path | None) -> int:
    """The peer comparison's report and JSON; a missing peer library is reported like a bad option."""
    try:
        result = run_peer_comparison(config)
    except PeerUnavailable as err:
        print(f"dhns.bench: {err}", file=sys.stderr)
        return 2
    print(format_peer_report(result))
    if json_path is not None:
        write_json(json_path, result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, json_path, plot_path = parse_args(argv)
    except ValueError as err:
        print(f"dhns.bench: {err}", file=sys.stderr)
        return 2
    if isinstance(config, PeerConfig):
        return run_peers(config, json_path)  # each side under its own allocator policy (bench.comparison)
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
        write_json(json_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
