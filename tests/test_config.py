"""params.yaml is validated: unknown keys, wrong types and bad values are errors that say what is allowed."""

from pathlib import Path

import pytest
import yaml

from configs import deep_merge, repo_raw
from dhns.config import Params, apply_scorer_settings, from_mapping, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_load_and_match_defaults_where_documented():
    params = load_params(REPO / "params.yaml")
    assert params.data.dataset in {p.name for p in (REPO / "data" / "raw").iterdir() if p.is_dir()}
    assert params.evaluate.tie_policy == "realistic"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"model": {"nmae": "transe"}}, r"model: unknown key\(s\) \['nmae'\]"),
        ({"modle": {}}, r"unknown key\(s\) \['modle'\]"),
        ({"model": {"name": "complex"}}, "model.name: 'complex' is not one of transe, distmult, rotate"),
        ({"pretrain": {"sampler": "dhns"}}, "pretrain.sampler: 'dhns' is not one of"),
        ({"pretrain": {"num_epochs": 0}}, "pretrain.num_epochs: 0 must be > 0"),
        ({"pretrain": {"kgc_lr": "fast"}}, "pretrain.kgc_lr: expected a number"),
        ({"pretrain": {"batch_size": 1.5}}, "pretrain.batch_size: expected an integer"),
        ({"data": {"drop_leaked": "yes"}}, "data.drop_leaked: expected true/false"),
        ({"evaluate": {"tie_policy": "random"}}, "evaluate.tie_policy: 'random' is not one of"),
        ({"features": {"image_backend": "resnet"}}, "features.image_backend: 'resnet' is not one of clip, vit"),
        ({"model": "transe"}, "params model: expected a mapping"),
        ({"model": {"name": "foo"}}, "model.name: 'foo' is not one of transe, distmult, rotate"),
        ({"train": {"sampler": "bar"}}, "train.sampler: 'bar' is not one of uniform, bernoulli, self_adversarial, bernoulli_self_adversarial, dhns"),
        ({"train": {"kgc_lr": -0.1}}, r"train.kgc_lr: -0.1 must be > 0"),
        ({"diffusion": {"generator_lr": -1}}, r"diffusion.generator_lr: -1.0 must be > 0"),
        ({"pretrain": {"kgc_lr": float("nan")}}, "pretrain.kgc_lr: expected a finite number, got nan"),
        ({"train": {"hard_loss_weight": float("inf")}}, "train.hard_loss_weight: expected a finite number, got inf"),
        ({"train": {"diffusion_loss": "huber"}}, "train.diffusion_loss: 'huber' is not one of l1, l2"),
        ({"seed": "zero"}, "params seed: expected an integer, got 'zero'"),
        ({"device": "gpu"}, "params device: 'gpu' is not one of auto, cpu, cuda, cuda:N, mps"),
        ({"features": {"text_encoder": 5}}, "features.text_encoder: expected a string"),
        ({"diffusion": {"report_steps": "0,5"}}, "diffusion.report_steps: expected a list"),
        ({"diffusion": {"report_steps": [0, "5"]}}, r"diffusion.report_steps\[1\]: expected an integer, got '5'"),
        ({"train": {"hardness_levels": {"step": 0}}}, "train.hardness_levels: expected a list"),
    ],
)
def test_bad_params_are_rejected_with_a_clear_message(raw, message):
    with pytest.raises(ValueError, match=message):
        from_mapping(Params, resolved_with(raw))


def resolved_with(changes: dict) -> dict:
    """The repository's params as the stages resolve them (scorer merged in), with `changes` laid over."""
    return deep_merge(apply_scorer_settings(repo_raw()), changes)


def test_integers_are_accepted_for_float_fields(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(deep_merge(repo_raw(), {"model": {"margin": 6}, "pretrain": {"kgc_lr": 1}})))
    params = load_params(path)
    assert params.model.margin == 6.0 and isinstance(params.model.margin, float)


LEVEL = {"step": 0, "weight": 1.0, "margin": 0.5}


@pytest.mark.parametrize(
    "bad_level, message",
    [
        ({**LEVEL, "wieght": 2.0}, r"train.hardness_levels\[1\]: unknown key\(s\) \['wieght'\]; allowed: \['margin', 'step', 'weight'\]"),
        ({"step": 5}, r"train.hardness_levels\[1\]: missing key\(s\) \['margin', 'weight'\]"),
        ({**LEVEL, "step": "five"}, r"train.hardness_levels\[1\].step: expected an integer, got 'five'"),
        ({**LEVEL, "step": 2.5}, r"train.hardness_levels\[1\].step: expected an integer"),
        ({**LEVEL, "margin": "wide"}, r"train.hardness_levels\[1\].margin: expected a number"),
        ({**LEVEL, "weight": -1.0}, r"train.hardness_levels\[1\].weight: -1.0 must be >= 0"),
        ({**LEVEL, "step": -1}, r"train.hardness_levels\[1\].step: -1 must be >= 0"),
        (3, r"train.hardness_levels\[1\]: expected a mapping, got 3"),
    ],
)
def test_bad_hardness_level_entries_are_named_by_index(bad_level, message):
    """The second entry is the bad one, so the message must point at [1], not just at the list."""
    with pytest.raises(ValueError, match=message):
        from_mapping(Params, resolved_with({"train": {"hardness_levels": [LEVEL, bad_level]}}))


def test_dhns_without_hardness_levels_is_rejected():
    with pytest.raises(ValueError, match="generated negatives need at least one level"):
        from_mapping(Params, resolved_with({"train": {"sampler": "dhns", "hardness_levels": []}}))


def test_yaml_nan_is_rejected_when_loading_a_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(deep_merge(repo_raw(), {"train": {"kgc_lr": float("nan")}})))
    assert ".nan" in path.read_text()
    with pytest.raises(ValueError, match="train.kgc_lr: expected a finite number"):
        load_params(path)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_documented_devices_are_accepted(device):
    assert from_mapping(Params, resolved_with({"device": device})).device == device


def write_params(tmp_path, raw: dict) -> Path:
    """The repository's params.yaml with `raw` laid over it (scorer presets merged key by key)."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(deep_merge(repo_raw(), raw)))
    return path


PRESETS = {
    "transe": {"model": {"margin": 9.0}, "pretrain": {"kgc_lr": 0.005, "num_epochs": 300},
               "train": {"hard_loss_weight": 0.01}},
    "distmult": {"model": {"margin": 0.0}, "pretrain": {"kgc_lr": 0.02, "regularizer": "n3", "regularization": 0.05},
                 "train": {"adversarial_temperature": 0.25}},
}


def test_model_name_alone_switches_every_scorer_setting(tmp_path):
    transe = load_params(write_params(tmp_path, {"model": {"name": "transe"}, "scorers": PRESETS}))
    distmult = load_params(write_params(tmp_path, {"model": {"name": "distmult"}, "scorers": PRESETS}))
    assert (transe.model.margin, transe.pretrain.kgc_lr, transe.pretrain.num_epochs) == (9.0, 0.005, 300)
    assert (transe.pretrain.regularizer, transe.train.adversarial_temperature) == ("l2", 1.0)
    assert (distmult.model.margin, distmult.pretrain.kgc_lr, distmult.pretrain.regularization) == (0.0, 0.02, 0.05)
    assert (distmult.pretrain.regularizer, distmult.train.adversarial_temperature) == ("n3", 0.25)
    # nothing inherited from transe's preset: distmult keeps its own budget
    assert distmult.pretrain.num_epochs == repo_raw()["scorers"]["distmult"]["pretrain"]["num_epochs"] != 300


def test_a_key_in_the_stage_section_overrides_the_preset(tmp_path):
    raw = {"model": {"name": "distmult"}, "pretrain": {"kgc_lr": 0.001}, "scorers": PRESETS}
    params = load_params(write_params(tmp_path, raw))
    assert params.pretrain.kgc_lr == 0.001
    assert params.pretrain.regularization == 0.05  # the rest of the preset still applies


FORM_PRESETS = {"transe": {"train": {"kgc_lr": 0.002, "reference": {"hard_loss_weight": 1.0},
                                     "per_view": {"hard_loss_weight": 0.01, "num_epochs": 7}}}}


@pytest.mark.parametrize("train, expected", [
    ({}, ("reference", 1.0, 15)),  # the selected form gets its own mu; num_epochs is the scorer's plain value
    ({"hard_loss": "per_view"}, ("per_view", 0.01, 7)),  # switching the form alone switches its settings
    ({"hard_loss": "per_view", "hard_loss_weight": 0.3}, ("per_view", 0.3, 7)),  # the section still wins
    ({"hard_loss_weight": 0.5}, ("reference", 0.5, 15)),
])
def test_each_hard_loss_form_has_its_own_preset_mu(tmp_path, train, expected):
    raw = {"model": {"name": "transe"}, "train": train, "scorers": FORM_PRESETS}
    config = load_params(write_params(tmp_path, raw)).train
    assert (config.hard_loss, config.hard_loss_weight, config.num_epochs) == expected
    assert config.kgc_lr == 0.002  # the form-free part of the preset applies to both forms


DATASET_PRESETS = {"transe": {"pretrain": {"kgc_lr": 0.005},
                              "train": {"kgc_lr": 0.001, "joint": {"kgc_lr": 0.005, "per_view": {"hard_loss_weight": 0.01}}},
                              "datasets": {"DB15K": {"pretrain": {"kgc_lr": 0.002},
                                                     "train": {"joint": {"kgc_lr": 0.001,
                                                                         "per_view": {"hard_loss_weight": 1.0}}}}}}}


@pytest.mark.parametrize("dataset, protocol, form, expected", [
    ("MKG-Y", "joint", "per_view", (0.005, 0.005, 0.01)),  # no block for MKG-Y: the scorer's own
    ("DB15K", "joint", "per_view", (0.002, 0.001, 1.0)),  # DB15K's rates and its joint per-view mu
    ("DB15K", "joint", "reference", (0.002, 0.001, 0.01)),  # the block names no reference mu: the section's
    ("DB15K", "finetune", "per_view", (0.002, 0.001, 0.01)),  # fine-tune: the scorer's train rate, untouched
])
def test_settings_chosen_on_one_dataset_apply_to_that_dataset_only(tmp_path, dataset, protocol, form, expected):
    raw = {"model": {"name": "transe"}, "data": {"dataset": dataset}, "scorers": DATASET_PRESETS,
           "train": {"protocol": protocol, "hard_loss": form, "hard_loss_weight": 0.01}}
    if (dataset, protocol, form) == ("DB15K", "joint", "per_view"):
        del raw["train"]["hard_loss_weight"]  # left to the presets: DB15K's joint per-view mu
    params = load_params(write_params(tmp_path, raw))
    expected_train_lr = 0.001 if protocol == "finetune" else expected[1]
    assert (params.pretrain.kgc_lr, params.train.kgc_lr, params.train.hard_loss_weight) == (
        expected[0], expected_train_lr, expected[2])


def test_a_stage_section_still_wins_over_a_dataset_preset(tmp_path):
    raw = {"model": {"name": "transe"}, "data": {"dataset": "DB15K"}, "scorers": DATASET_PRESETS,
           "pretrain": {"kgc_lr": 0.0005}}
    assert load_params(write_params(tmp_path, raw)).pretrain.kgc_lr == 0.0005


@pytest.mark.parametrize("scorers, message", [
    ({"transe": {"datasets": {"DB15K": {"pretrain": {"kgc_lr": -1}}}}},
     "scorers.transe.datasets.DB15K.pretrain.kgc_lr: -1.0 must be > 0"),
    ({"transe": {"datasets": {"DB15K": {"pretrian": {}}}}}, "scorers.transe.datasets.DB15K: expected sections"),
    ({"transe": {"datasets": [1]}}, "scorers.transe.datasets: expected a mapping"),
    ({"distmult": {"pretrain": {"kgc_rate": 0.1}}}, r"scorers.distmult.pretrain: unknown key\(s\) \['kgc_rate'\]"),
    ({"rotate": {"pretrain": {"kgc_lr": 0}}}, "scorers.rotate.pretrain.kgc_lr: 0.0 must be > 0"),
    ({"complex": {}}, "scorers.<name>: 'complex' is not one of transe, distmult, rotate"),
    ({"transe": {"evaluate": {}}}, "scorers.transe: expected sections among"),
    ({"transe": {"train": {"per_view": {"hard_loss_weight": -1.0}}}},
     "scorers.transe.train.per_view.hard_loss_weight: -1.0 must be >= 0"),
    ({"transe": {"train": {"reference": {"hard_loss": "per_view"}}}}, "scorers.transe.train.reference: expected"),
    ({"transe": {"train": {"per_view": {"mu": 1}}}}, r"scorers.transe.train.per_view: unknown key\(s\) \['mu'\]"),
])
def test_every_scorer_preset_is_validated_even_when_not_selected(tmp_path, scorers, message):
    with pytest.raises(ValueError, match=message):
        load_params(write_params(tmp_path, {"model": {"name": "transe"}, "scorers": scorers}))


def test_repository_presets_exist_for_every_scorer_and_keep_their_keys_out_of_the_stage_sections():
    """dvc.yaml tracks scorers.<name>.{model,pretrain,train}: each must exist, and a copy of a preset key in
    the stage section would silently win for every scorer."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for name in ("transe", "distmult", "rotate"):
        assert set(raw["scorers"][name]) == {"model", "pretrain", "train", "datasets"}
        for section, values in raw["scorers"][name].items():
            if section != "datasets":
                assert not set(values) & set(raw[section]), (name, section)


@pytest.mark.parametrize("scorer", ["transe", "distmult", "rotate"])
def test_the_repository_params_set_every_value_a_stage_uses_for_every_scorer(tmp_path, scorer):
    """No stage may run on a default in code: DVC would not see it (DistMult's NTAT once ran at the
    dataclass's temperature 1.0 while params.yaml showed only pretraining's 0.5)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"]["name"] = scorer
    params = load_params(write_params(tmp_path, raw))
    assert params.model.name == scorer


def test_a_setting_left_to_its_default_in_code_is_refused_by_name(tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"]["name"] = "distmult"
    del raw["scorers"]["distmult"]["train"]["adversarial_temperature"]
    del raw["evaluate"]["batch_size"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))  # as it is: write_params would lay it over the full file
    with pytest.raises(ValueError, match=r"missing setting\(s\) train.adversarial_temperature, evaluate.batch_size "
                                         r"\(for model.name 'distmult'\)"):
        load_params(path)


def test_no_setting_has_a_default_in_code():
    """params.yaml is the one source: a dataclass default could disagree with it unseen (the bench once timed
    margin 9 and the full chain in fp32 where the pipeline ran margin 6, the strided chain, bf16)."""
    import dataclasses

    import dhns.config as config

    sections = [config.Params] + [field.type for field in dataclasses.fields(config.Params)
                                  if dataclasses.is_dataclass(getattr(config, str(field.type), None))]
    sections = [getattr(config, name) if isinstance(name, str) else name for name in sections]
    assert len(sections) == 8
    defaulted = [f"{cls.__name__}.{field.name}" for cls in sections for field in dataclasses.fields(cls)
                 if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING]
    assert defaulted == []


def test_overrides_set_values_by_dotted_name_as_dvc_exp_run_does():
    params = load_params(REPO / "params.yaml", overrides={"model.name": "distmult", "train.precision": "fp32"})
    raw = repo_raw()
    assert params.model.margin == raw["scorers"]["distmult"]["model"]["margin"]  # the scorer's preset follows the name
    assert params.pretrain.regularizer == raw["scorers"]["distmult"]["pretrain"]["regularizer"]
    assert params.train.precision == "fp32" != raw["train"]["precision"]
    with pytest.raises(ValueError, match="params model.name.x: name is not a section"):
        load_params(REPO / "params.yaml", overrides={"model.name.x": 1})

