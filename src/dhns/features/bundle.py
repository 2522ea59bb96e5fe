"""The features stage's output folder: one parquet table per available modality plus a manifest.

A modality the dataset lacks has no table and is listed under `absent` with the reason, so later stages
skip it instead of training on fabricated vectors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dhns.features.store import FeatureTable, read_feature_table, write_feature_table
from dhns.io import atomic_directory, read_json, write_json

MANIFEST = "manifest.json"


def write_feature_bundle(out_dir: str | Path, tables: dict[str, FeatureTable], absent: dict[str, str]) -> None:
    with atomic_directory(out_dir) as staging:
        for name, table in tables.items():
            write_feature_table(staging / f"{name}.parquet", table)
        write_json(
            staging / MANIFEST,
            {
                "modalities": {
                    name: {"dim": table.dim, "num_present": int(table.present.sum()), "source": table.source}
                    for name, table in tables.items()
                },
                "absent": absent,
            },
        )


def read_feature_bundle(folder: str | Path, num_entities: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Modality name -> (vectors (N, d), present (N,)), checked against the graph's entity count."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST)
    features = {}
    for name in manifest["modalities"]:
        table = read_feature_table(folder / f"{name}.parquet")
        if table.num_entities != num_entities:
            raise ValueError(
                f"{folder / (name + '.parquet')}: {table.num_entities} rows but the graph has {num_entities} entities"
            )
        features[name] = (table.vectors, table.present)
    return features
