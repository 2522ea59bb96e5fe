"""dhns.tune: grid cells from --set axes, one line per finished cell, finished cells never rerun."""

from __future__ import annotations

import json
import pytest
import yaml

from configs import deep_merge, model_config, repo_raw
from dhns import tune
from stage_project import write_stage_project


def test_grid_cells_are_the_product_of_the_axes_with_yaml_values():
    cells = list(tune.grid_cells(["pretrain.kgc_lr=0.01,0.02", "pretrain.regularizer=l2,n3"]))
    assert cells == [
        {"pretrain.kgc_lr": 0.01, "pretrain.regularizer": "l2"}, {"pretrain.kgc_lr": 0.01, "pretrain.regularizer": "n3"},
        {"pretrain.kgc_lr": 0.02, "pretrain.regularizer": "l2"}, {"pretrain.kgc_lr": 0.02, "pretrain.regularizer": "n3"},
    ]
    with pytest.raises(ValueError, match="expected section.key=value"):
        list(tune.grid_cells(["kgc_lr=0.1"]))


def test_a_cell_gets_the_scorers_preset_under_its_overrides():
    raw = deep_merge(repo_raw(), {"model": {"name": "transe"}, "pretrain": {"patience": 1},
                                  "scorers": {"distmult": {"pretrain": {"kgc_lr": 0.02, "regularizer": "n3"}}}})
    params = tune.cell_params(raw, "distmult", {"pretrain.regularization": 0.5})
    assert params.model.name == "distmult"
    assert (params.pretrain.kgc_lr, params.pretrain.regularizer, params.pretrain.regularization) == (0.02, "n3", 0.5)
    assert params.pretrain.patience == 1
    assert raw["model"]["name"] == "transe"  # the caller's mapping is untouched


def test_a_cell_goes_through_the_stages_complete_params_check():
    """A tuning cell must be refused exactly where a stage would be: no setting left to a default in code."""
    raw = repo_raw()
    del raw["scorers"]["rotate"]["pretrain"]["adversarial_temperature"]
    tune.cell_params(raw, "transe", {})  # transe's settings are all there
    with pytest.raises(ValueError, match=r"missing setting\(s\) pretrain.adversarial_temperature \(for model.name 'rotate'\)"):
        tune.cell_params(raw, "rotate", {})


def test_cells_land_as_lines_and_a_rerun_skips_them(tmp_path, monkeypatch):
    write_stage_project(tmp_path, {"num_epochs": 4, "eval_every": 2, "patience": 0, "batch_size": 8,
                                   "num_negatives": 2})
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["data"]["dataset"] = "STAR"  # the name write_stage_project gives its graph
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "grid.jsonl"
    argv = ["--scorer", "transe", "--set", "pretrain.kgc_lr=0.01,0.05", "--out", str(out), "--threads", "1"]
    tune.main(argv)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["overrides"] for r in records] == [{"pretrain.kgc_lr": 0.01}, {"pretrain.kgc_lr": 0.05}]
    for record in records:
        assert record["epochs_run"] == 4 and len(record["curve"]) == 2
        assert record["valid_mrr"] == pytest.approx(max(record["curve"]), abs=1e-4)
        assert record["pretrain"]["kgc_lr"] == record["overrides"]["pretrain.kgc_lr"]
    tune.main(argv + ["--set", "pretrain.num_negatives=2"])  # a new axis makes new cells; old ones stay
    tune.main(argv)  # nothing new: both cells are in the file
    assert len(out.read_text().splitlines()) == 4


def test_train_stage_cells_start_from_the_stage_outputs(tmp_path, monkeypatch):
    """--stage train fine-tunes models/pretrain with the generator in models/diffusion, per cell."""
    import torch

    from dhns.diffusion.generator import build_generator, save_generator
    from dhns.models.kgc import KGCModel, save_model
    from stage_project import NUM_ENTITIES, NUM_RELATIONS

    write_stage_project(tmp_path, {})
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["data"]["dataset"] = "STAR"
    params["train"].update(num_epochs=2, eval_every=1, patience=0, batch_size=8, num_negatives=2,
                           hardness_levels=[{"step": 1, "weight": 1.0, "margin": 0.5}])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=8, use_features=False), NUM_ENTITIES, NUM_RELATIONS)
    save_model(model, tmp_path / "models" / "pretrain")
    save_generator(build_generator(model, 3, 1e-4, 0.02), tmp_path / "models" / "diffusion")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "train.jsonl"
    built = []  # every cell with a DHNS sampler, Bernoulli-sided too, trains with the generator's negatives
    import dhns.training.ntat as ntat  # the one builder tune shares with the train stage

    real_objective = ntat.HardNegativeObjective
    monkeypatch.setattr(ntat, "HardNegativeObjective", lambda *a, **k: built.append(k["hard_loss"]) or real_objective(*a, **k))
    tune.main(["--stage", "train", "--scorer", "transe", "--set", "train.hard_loss=reference,per_view",
               "--set", "train.sampler=dhns,bernoulli_dhns", "--out", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["train"]["hard_loss"], r["train"]["sampler"]) for r in records] == [
        ("reference", "dhns"), ("reference", "bernoulli_dhns"), ("per_view", "dhns"), ("per_view", "bernoulli_dhns")]
    assert built == ["reference", "reference", "per_view", "per_view"]
    assert all(r["epochs_run"] == 2 and len(r["curve"]) == 2 for r in records)
    with pytest.raises(SystemExit, match="holds a transe model, not distmult"):
        tune.main(["--stage", "train", "--scorer", "distmult", "--out", str(out)])
