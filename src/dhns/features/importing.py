"""Import community pre-extracted features (e.g. ``DB15K-visual.pth``, ``MKG-Y-textual.pth``).

Published multimodal KG benchmarks ship one float matrix per modality, rows in entity-id order, with an
all-zero row standing for "this entity has no image/text". Reusing them makes results comparable with
papers that used the same files, so they are turned into the same `FeatureTable` our encoders produce.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dhns.features.inputs import find_import_files  # noqa: F401  (where the stage looks for them)
from dhns.features.store import FeatureTable



def load_feature_file(path: Path, num_entities: int) -> FeatureTable:
    """Load a ``[num_entities, d]`` float matrix and mark all-zero rows as missing.

    Every way such a file can be wrong (another dataset's entity count, integer ids saved by mistake,
    NaNs from a failed extraction) is reported here with the file's name, because past this point the
    matrix is just numbers and the mistake would surface only as bad metrics.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist")
    raw = _load_array(path)
    if not isinstance(raw, torch.Tensor):
        raise ValueError(f"feature file {path} holds a {type(raw).__name__}, expected a 2-D float tensor")
    if raw.dim() != 2:
        raise ValueError(
            f"feature file {path} holds a {raw.dim()}-D tensor of shape {tuple(raw.shape)}, expected 2-D "
            f"[num_entities, dim]"
        )
    if raw.shape[0] != num_entities:
        raise ValueError(
            f"feature file {path} has {raw.shape[0]} rows but the dataset has {num_entities} entities "
            f"(expected {num_entities}, found {raw.shape[0]}); is it from another dataset?"
        )
    if raw.shape[1] < 1:
        raise ValueError(f"feature file {path} has zero columns")
    if not raw.is_floating_point():
        raise ValueError(f"feature file {path} has dtype {raw.dtype}, expected a floating-point tensor")
    if raw.layout != torch.strided:
        raw = raw.to_dense()  # a sparse dump is still one row per entity
    vectors = raw.detach().to(dtype=torch.float32, device="cpu").contiguous()  # (num_entities, dim)
    bad_rows = ~torch.isfinite(vectors).all(dim=1)  # (num_entities,); also catches float64 overflow
    if bool(bad_rows.any()):
        first = int(bad_rows.nonzero()[0, 0])
        raise ValueError(
            f"feature file {path} has {int(bad_rows.sum())} rows with NaN or inf values as float32 "
            f"(first: row {first}, entity id {first})"
        )
    present = (vectors != 0).any(dim=1)  # (num_entities,)
    return FeatureTable(vectors=vectors, present=present, source=f"import:{path.name}", weights=str(path))


def _load_array(path: Path) -> object:
    """Read a ``.npy`` with numpy and anything else with torch, without ever unpickling arbitrary code."""
    if path.suffix.lower() != ".npy":
        return _read_or_explain(path, lambda: torch.load(path, map_location="cpu", weights_only=True))
    array = _read_or_explain(path, lambda: np.load(path, allow_pickle=False))
    if not np.issubdtype(array.dtype, np.floating):
        # strings or records cannot become a tensor at all, so say what they are before torch tries
        raise ValueError(f"feature file {path} has dtype {array.dtype}, expected a floating-point matrix")
    return torch.from_numpy(array)


def _read_or_explain(path: Path, read: Callable[[], Any]) -> Any:
    """Run `read`, turning any failure into one line naming the file: corrupt files make unpicklers raise almost anything."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001
        first_line = (str(exc).splitlines() or [""])[0][:300]
        raise ValueError(f"feature file {path} could not be read as a tensor: {type(exc).__name__}: {first_line}") from exc
