"""What `dvc plots show` renders: the hardness-level score densities of the diffusion stage."""

from __future__ import annotations

import pytest
import torch

from dhns.diffusion.report import score_histogram_rows


def test_hardness_histogram_rows_are_densities_per_view_and_step() -> None:
    scores = {("text", "tail"): {0: torch.tensor([1.0, 2.0, 2.5]), 5: torch.tensor([-3.0, -1.0, 0.0, 0.5])}}
    rows = score_histogram_rows(scores, bins=8)
    assert {row["view"] for row in rows} == {"text/tail"} and len(rows) == 16
    width = (2.5 - -3.0) / 8
    for step in (0, 5):
        curve = [row for row in rows if row["steps_left"] == step]
        assert sum(row["density"] for row in curve) * width == pytest.approx(1.0, abs=1e-4)
    mean = {step: sum(r["score"] * r["density"] for r in rows if r["steps_left"] == step) * width for step in (0, 5)}
    assert mean[0] > mean[5]  # the hardest level's scores sit to the right
