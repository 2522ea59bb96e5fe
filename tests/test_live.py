"""A stage's dvclive curves: one step per epoch, one continuous curve across a kill and a resume."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dhns.training.checkpoint import Checkpointing
from dhns.live import StageCurves
from stage_project import REPO, write_stage_project

EPOCHS, KILLED_AFTER = 4, 2
PRETRAIN = {"num_epochs": EPOCHS, "eval_every": 2, "patience": 0, "batch_size": 4, "num_negatives": 4}
DIFFUSION = {"num_epochs": EPOCHS, "num_diffusion_steps": 4, "report_steps": [0, 4], "batch_size": 8,
             "hidden_multiplier": 1}


@pytest.fixture(autouse=True)
def one_thread():
    """The stages run in this process: a tiny graph on many threads spends its time waiting for them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_curve(path: Path) -> list[tuple[int, float]]:
    """A dvclive TSV (`step<TAB>name` rows) as (step, value) pairs."""
    header, *rows = path.read_text().splitlines()
    assert header.split("\t")[0] == "step", header
    return [(int(step), float(value)) for step, value in (row.split("\t") for row in rows)]


def run_stage(root: Path, stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage's main() in this process, in `root` (as `dvc repro` runs it there)."""
    monkeypatch.chdir(root)
    runpy.run_path(str(REPO / "stages" / f"{stage}.py"), run_name="stage")["main"]()


def stage_project(root: Path, monkeypatch: pytest.MonkeyPatch, stage: str) -> Path:
    """The star graph; for the diffusion stage also its small params and the pretrained model it starts from."""
    write_stage_project(root, PRETRAIN)
    if stage == "diffusion":
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["diffusion"].update(DIFFUSION)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_stage(root, "pretrain", monkeypatch)
    return root


def kill_right_after_snapshot(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """The run dies as soon as the snapshot of `epoch` is on disk, before that epoch is logged."""
    original_save = Checkpointing.save

    def save_then_die(self: Checkpointing, state: dict, key: str) -> None:
        original_save(self, state, key)
        if state["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointing, "save", save_then_die)


@pytest.mark.parametrize("stage", ["pretrain", "diffusion"])
@pytest.mark.parametrize("outputs_removed", [True, False], ids=["outputs-removed", "outputs-left"])
def test_a_resumed_stage_continues_its_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog,
                                              stage: str, outputs_removed: bool) -> None:
    """`dvc repro` deletes a stage's outputs before it reruns it (outputs-removed); a direct rerun does not."""
    reference = stage_project(tmp_path / "reference", monkeypatch, stage)
    resumed = stage_project(tmp_path / "resumed", monkeypatch, stage)
    run_stage(reference, stage, monkeypatch)

    original_save = Checkpointing.save
    kill_right_after_snapshot(monkeypatch, KILLED_AFTER)
    with pytest.raises(KeyboardInterrupt):
        run_stage(resumed, stage, monkeypatch)
    monkeypatch.setattr(Checkpointing, "save", original_save)
    curves = resumed / "plots" / stage / "metrics"
    assert [step for step, _ in read_curve(curves / "loss.tsv")] == list(range(1, KILLED_AFTER))
    if outputs_removed:
        shutil.rmtree(resumed / "plots" / stage)
        (resumed / "metrics" / f"{stage}.json").unlink()

    with caplog.at_level("INFO"):
        run_stage(resumed, stage, monkeypatch)
    assert f"(epoch {KILLED_AFTER})" in caplog.text  # it resumed; a rerun from scratch would hide a broken replay
    expected = reference / "plots" / stage / "metrics"
    names = ("loss", "valid_mrr") if stage == "pretrain" else ("loss",)
    for name in names:
        assert read_curve(curves / f"{name}.tsv") == read_curve(expected / f"{name}.tsv")
    assert [step for step, _ in read_curve(curves / "epoch_seconds.tsv")] == list(range(1, EPOCHS + 1))
    summary = json.loads((resumed / "metrics" / f"{stage}.json").read_text())
    assert summary["step"] == EPOCHS


def test_curves_summary_and_table_land_where_dvc_yaml_declares(tmp_path: Path) -> None:
    with StageCurves("demo", root=tmp_path) as curves:
        curves.log_epoch({"epoch": 1, "loss": 2.0, "seconds": 0.5})
        curves.log_epoch({"epoch": 2, "loss": 1.5, "seconds": 0.25, "valid_mrr": 0.5})
        curves.log_table("densities", [{"view": "text/tail", "steps_left": 0, "score": -1.5, "density": 0.25}],
                         x="score", y="density", template="hardness")
        curves.set_summary({"seconds": 9.0, "best_epoch": 2})
    assert read_curve(tmp_path / "plots" / "demo" / "metrics" / "loss.tsv") == [(1, 2.0), (2, 1.5)]
    assert read_curve(tmp_path / "plots" / "demo" / "metrics" / "epoch_seconds.tsv") == [(1, 0.5), (2, 0.25)]
    assert read_curve(tmp_path / "plots" / "demo" / "metrics" / "valid_mrr.tsv") == [(2, 0.5)]
    table = json.loads((tmp_path / "plots" / "demo" / "custom" / "densities.json").read_text())
    assert table == [{"view": "text/tail", "steps_left": 0, "score": -1.5, "density": 0.25}]
    summary = json.loads((tmp_path / "metrics" / "demo.json").read_text())
    # the stage's total `seconds` is not the last epoch's, which is why the curve is `epoch_seconds`
    assert summary == {"loss": 1.5, "epoch_seconds": 0.25, "valid_mrr": 0.5, "step": 2, "seconds": 9.0,
                       "best_epoch": 2}
    leftovers = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file()}
    assert leftovers == {"metrics/demo.json", "plots/demo/metrics/loss.tsv", "plots/demo/metrics/epoch_seconds.tsv",
                         "plots/demo/metrics/valid_mrr.tsv", "plots/demo/custom/densities.json"}  # no dvc.yaml, report


def test_a_new_run_starts_a_new_curve_and_a_disabled_logger_writes_nothing(tmp_path: Path) -> None:
    for loss in (3.0, 1.0):
        with StageCurves("demo", root=tmp_path) as curves:
            curves.log_epoch({"epoch": 1, "loss": loss})
    assert read_curve(tmp_path / "plots" / "demo" / "metrics" / "loss.tsv") == [(1, 1.0)]

    other = tmp_path / "rank1"
    other.mkdir()
    with StageCurves("demo", enabled=False, root=other) as curves:
        curves.log_history([{"epoch": 1, "loss": 1.0}])
        curves.log_table("t", [{"a": 1}], x="a", y="a")
        curves.set_summary({"seconds": 1.0})
    assert not any(other.iterdir())
