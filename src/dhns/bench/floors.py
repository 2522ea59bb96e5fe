"""The least memory traffic a training step and a filtered evaluation must cause, and how far a time is from it.

A step that only moves data can go no faster than bytes / measured copy bandwidth. These floors count
bytes any implementation must move (fp32, nothing materialised twice), so `times_floor` says how much of
a measured time is overhead, whoever's it is. The peer comparison leaves optimiser state out (both sides
run dense Adam); the entity sweep adds the table update (`optimizer_floor_bytes`), since what grows with the
entity count there is exactly the rows an optimiser must move.
"""

from __future__ import annotations

import math
from typing import Any

FP32_BYTES = 4
ENTITY_WIDTH_FACTOR = {"transe": 1, "distmult": 1, "rotate": 2}  # reals per entity per dimension: RotatE is complex


def entity_width(model: str, dim: int) -> int:
    """Real numbers per entity row: d for TransE and DistMult, 2d ([real | imaginary]) for RotatE."""
    return ENTITY_WIDTH_FACTOR[model] * dim


def training_floor_bytes(batch: int, negatives: int, width: int, relation_width: int,
                         value_bytes: int = FP32_BYTES) -> int:
    """Bytes of one training step: the (batch x negatives x width) candidate rows read in the forward pass and
    their gradient written in the backward pass, plus each positive's head, relation and tail rows read and
    their gradients written."""
    candidates = batch * negatives * width
    positives = batch * (2 * width + relation_width)
    return 2 * value_bytes * (candidates + positives)


# Values of optimizer state moved per touched entity row, beyond the row itself: the gradient read, the row read
# and written, and the state read and written (Adam: two moments of the row's width; row-wise Adagrad: one
# scalar per row, counted apart).
ROW_VALUES_PER_OPTIMIZER = {"adam": 7, "lazy_adam": 7, "row_adagrad": 3}


def optimizer_floor_bytes(optimizer: str, touched_rows: int, num_entities: int, width: int,
                          value_bytes: int = FP32_BYTES) -> int:
    """Bytes the entity table's update must move: every row under dense Adam (it moves untouched rows along
    their momentum too), only the rows a batch touched under lazy Adam and row-wise Adagrad."""
    rows = num_entities if optimizer == "adam" else touched_rows
    accumulators = 2 * touched_rows if optimizer == "row_adagrad" else 0  # one scalar per row, read and written
    return value_bytes * (ROW_VALUES_PER_OPTIMIZER[optimizer] * rows * width + accumulators)


def evaluation_floor_bytes(test_triples: int, num_entities: int, width: int, chunk: int,
                           value_bytes: int = FP32_BYTES) -> int:
    """Bytes of a filtered evaluation of both sides: the entity table read once per chunk of `chunk` queries,
    and one score per (query, entity) written, which the rank comparison needs."""
    chunks = 2 * math.ceil(test_triples / chunk)  # head and tail queries are separate chunks
    return value_bytes * (chunks * num_entities * width + 2 * test_triples * num_entities)


def against_floor(seconds: float, floor_bytes: int, bytes_per_second: float) -> dict[str, Any]:
    """A measured time next to the floor's time at the measured bandwidth."""
    floor_seconds = floor_bytes / bytes_per_second
    return {"floor_bytes": floor_bytes, "floor_seconds": floor_seconds, "times_floor": seconds / floor_seconds,
            "achieved_bytes_per_second": floor_bytes / seconds}
