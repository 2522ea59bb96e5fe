"""Choose a scorer's settings on validation: a grid of overrides, one finished cell per line.

Usage (after `dvc repro features`, which writes the prepared graph and its features):

    python -m dhns.tune --scorer distmult --set pretrain.kgc_lr=0.001,0.005 --set pretrain.regularization=0,0.01
    python -m dhns.tune --stage train --scorer transe --set train.hard_loss_weight=0.01,0.1 --set train.hard_loss=reference,per_view

Each cell is params.yaml with `model.name` set to the scorer, that scorer's `scorers.<name>` settings and the
cell's overrides applied (the same merge the stages use). `--stage pretrain` runs the pretrain stage's
training from scratch; `--stage train` runs NTAT from `models/pretrain` (with the generator in
`models/diffusion` when the sampler is dhns), which must hold this scorer's model: run `dvc repro diffusion`
with the same settings first. Both validate every `eval_every` epochs and stop early. One JSON line per cell
is appended to `docs/tuning/<dataset>/<scorer>[-train].jsonl`: the overrides, best validation MRR, best
epoch, epochs run, seconds and the validation curve. Cells already in the file are skipped, so a grid grows
across sessions instead of rerunning. Only validation is ever evaluated here: test numbers choose nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import yaml

from dhns.config import Params, resolve_params, with_overrides
from dhns.data import load_prepared
from dhns.evaluation import build_filter_index
from dhns.features.bundle import read_feature_bundle
from dhns.models.kgc import KGCModel
from dhns.pipeline.starting_point import train_starting_point
from dhns.pipeline.paths import FEATURES_DIR, PREPARED_DIR
from dhns.training.ntat import build_train_objective
from dhns.host import resolve_device, seed_everything
from dhns.training.kgc import train_kgc

log = logging.getLogger("dhns.tune")


def parse_value(text: str) -> Any:
    """A YAML scalar: 0.005 -> float, 3 -> int, true -> bool, l2 -> str."""
    return yaml.safe_load(text)


def grid_cells(options: Sequence[str]) -> Iterator[dict[str, Any]]:
    """`section.key=v1,v2` options -> every combination, as {dotted key: value}."""
    axes = []
    for option in options:
        key, _, values = option.partition("=")
        if not key or "." not in key or not values:
            raise ValueError(f"--set {option!r}: expected section.key=value[,value...]")
        axes.append([(key, parse_value(value)) for value in values.split(",")])
    for combination in itertools.product(*axes):
        yield dict(combination)


def cell_params(raw: dict, scorer: str, overrides: dict[str, Any], source: str = "params.yaml") -> Params:
    """params.yaml as the stages would read it with `-S model.name=<scorer>` plus each override, through the
    stages' own check (every setting present)."""
    return resolve_params(with_overrides(raw, {"model.name": scorer, **overrides}), source)


def cell_key(overrides: dict[str, Any]) -> str:
    return json.dumps(overrides, sort_keys=True)


def finished_cells(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {cell_key(json.loads(line)["overrides"]) for line in path.read_text().splitlines() if line.strip()}


def starting_point(stage: str, params: Params, graph, features, device: torch.device):
    """The model a cell starts from, and the generator for DHNS: fresh for pretrain; for train, what the train
    stage starts from under `train.protocol` (the stage outputs for finetune, fresh ones for joint)."""
    if stage == "pretrain":
        return KGCModel(params.model, graph.num_entities, graph.num_relations, features).to(device), None
    try:
        return train_starting_point(params, graph.num_entities, graph.num_relations, features, device)
    except ValueError as error:
        raise SystemExit(f"tune: {error}") from None


def run_cell(stage: str, params: Params, graph, features, device: torch.device) -> dict[str, Any]:
    """One cell of the stage's training; returns what the results file records."""
    seed_everything(params.seed)
    model, generator = starting_point(stage, params, graph, features, device)
    config = params.pretrain if stage == "pretrain" else params.train  # exactly what the stages build from them
    objective = build_train_objective(config, graph.train, graph.num_entities, graph.num_relations, generator)
    filter_index = build_filter_index(graph.all_triples().to(device), graph.num_entities)
    started = time.perf_counter()
    result = train_kgc(model, graph.train, graph.valid, filter_index, objective, config,
                       tie_policy=params.evaluate.tie_policy, seed=params.seed, stage="tune")
    return {
        "valid_mrr": round(result.best_valid_metric, 5),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds": round(time.perf_counter() - started, 1),
        "curve": [round(row["valid_mrr"], 4) for row in result.history if "valid_mrr" in row],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", required=True, choices=("transe", "distmult", "rotate"))
    parser.add_argument("--stage", default="pretrain", choices=("pretrain", "train"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                        help="an axis of the grid; repeat for more axes")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=None, help="results file (default docs/tuning/<dataset>/<scorer>.jsonl)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    raw = yaml.safe_load(Path(args.params).read_text())
    cells = list(grid_cells(args.set)) or [{}]
    try:
        first = cell_params(raw, args.scorer, cells[0], args.params)
    except ValueError as error:  # a bad params file or cell: one line, as a stage says it
        raise SystemExit(f"tune: {error}") from None
    graph = load_prepared(PREPARED_DIR)
    if graph.name != first.data.dataset:
        raise SystemExit(f"tune: data/prepared holds {graph.name} but params say {first.data.dataset}; "
                         "run `dvc repro features` first")
    features = read_feature_bundle(FEATURES_DIR, graph.num_entities)
    device = resolve_device(first.device)
    suffix = "" if args.stage == "pretrain" else "-train"
    out = Path(args.out or f"docs/tuning/{graph.name}/{args.scorer}{suffix}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = finished_cells(out)
    for overrides in cells:
        if cell_key(overrides) in done:
            log.info("skip (already in %s): %s", out, overrides)
            continue
        try:
            params = cell_params(raw, args.scorer, overrides, args.params)
        except ValueError as error:
            raise SystemExit(f"tune: {error}") from None
        log.info("cell %s", overrides)
        config = params.pretrain if args.stage == "pretrain" else params.train
        record = {"overrides": overrides, **run_cell(args.stage, params, graph, features, device),
                  "model": params.model.__dict__, args.stage: dataclasses.asdict(config), "seed": params.seed}
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        log.info("valid mrr %.4f at epoch %d of %d (%.0f s)", record["valid_mrr"], record["best_epoch"],
                 record["epochs_run"], record["seconds"])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    main()
