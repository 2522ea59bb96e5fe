"""The features stage's output folder: one parquet table per available modality plus a manifest.

A modality the dataset lacks has no table and is listed under `absent` with the reason, so later stages
skip it instead of training on fabricated vectors. Each present modality's entry names its `encoder` and
the `weights` it ran with, so features from a randomly initialised encoder are visible in review.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dhns.features.store import FeatureTable, read_feature_table, write_feature_table
from dhns.io import atomic_directory, read_json, require_files, stage_hint, write_json

MANIFEST = "manifest.json"


def write_feature_bundle(out_dir: str | Path, tables: dict[str, FeatureTable], absent: dict[str, str]) -> None:
    """All tables plus the manifest, all or nothing; the manifest records per modality the encoder, the weights
    it ran with, and how many input files were skipped as unreadable, so random weights or a dataset with
    many broken images show up in review, not only in a log. `source` still repeats `encoder`, so readers
    written before `encoder` and `weights` existed keep working."""
    with atomic_directory(out_dir) as staging:
        for name, table in tables.items():
            write_feature_table(staging / f"{name}.parquet", table)
        write_json(
            staging / MANIFEST,
            {
                "modalities": {
                    name: {
                        "dim": table.dim,
                        "num_present": int(table.present.sum()),
                        "encoder": table.source,
                        "weights": table.weights,
                        "source": table.source,
                        "num_unreadable_files": table.num_unreadable_files,
                    }
                    for name, table in tables.items()
                },
                "absent": absent,
            },
        )


def read_feature_bundle(folder: str | Path, num_entities: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Modality name -> (vectors (N, d), present (N,)), checked against the graph's entity count."""
    folder = Path(folder)
    hint = stage_hint("features")
    require_files(folder, (MANIFEST,), hint)
    manifest = read_json(folder / MANIFEST)
    modalities = manifest.get("modalities") if isinstance(manifest, dict) else None
    if not isinstance(modalities, dict):
        raise ValueError(f"{folder / MANIFEST}: expected an object with a 'modalities' mapping; {hint}")
    require_files(folder, [f"{name}.parquet" for name in modalities], hint)
    features = {}
    for name in modalities:
        path = folder / f"{name}.parquet"
        table = read_feature_table(path)
        if table.num_entities != num_entities:
            raise ValueError(
                f"{path}: {table.num_entities} rows but the graph has {num_entities} entities "
                f"(features of another dataset or an older prepare?); {hint}"
            )
        features[name] = (table.vectors, table.present)
    return features
