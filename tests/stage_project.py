"""A tiny learnable graph and a stage-ready project folder (prepared data, empty feature bundle, params)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from dhns.data import KnowledgeGraph, write_prepared
from dhns.features.bundle import write_feature_bundle

REPO = Path(__file__).resolve().parents[1]
NUM_SOURCES, NUM_RELATIONS = 12, 2
NUM_ENTITIES = NUM_SOURCES * (1 + NUM_RELATIONS)


def star_triples() -> torch.Tensor:
    """Each relation sends every source entity to its own target: learnable by every scorer."""
    return torch.tensor([(s, r, NUM_SOURCES * (r + 1) + s) for r in range(NUM_RELATIONS) for s in range(NUM_SOURCES)])


def write_stage_project(root: Path, pretrain: dict, fit_check: bool = False) -> None:
    """Prepared star graph, no modalities, and the repository's params with `pretrain` overrides.

    With `fit_check` the validation split is a sample of the training triples, so its MRR measures the
    fit (a held-out star edge cannot be inferred, which makes a tiny validation split a coin toss).
    """
    triples = star_triples()
    valid = triples[2:14] if fit_check else triples[:1]
    graph = KnowledgeGraph(
        name="STAR",
        entity_names=tuple(f"e{i}" for i in range(NUM_ENTITIES)),
        entity_texts=tuple(f"entity {i}" for i in range(NUM_ENTITIES)),
        relation_names=tuple(f"r{i}" for i in range(NUM_RELATIONS)),
        train=triples[2:], valid=valid, test=triples[1:2],
    )
    write_prepared(graph, root / "data" / "prepared")
    write_feature_bundle(root / "data" / "features", {}, {"text": "none in this test", "image": "none"})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["device"] = "cpu"
    params["model"].update(embedding_dim=8, use_features=False)
    params["pretrain"].update(pretrain)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def start_stage(root: Path, stage: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(REPO / "stages" / f"{stage}.py")], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
