"""params.yaml is validated: unknown keys, wrong types and bad values are errors that say what is allowed."""

from pathlib import Path

import pytest
import yaml

from dhns.config import Params, from_mapping, load_params

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
    ],
)
def test_bad_params_are_rejected_with_a_clear_message(raw, message):
    with pytest.raises(ValueError, match=message):
        from_mapping(Params, raw)


def test_integers_are_accepted_for_float_fields(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"model": {"margin": 6}, "pretrain": {"kgc_lr": 1}}))
    params = load_params(path)
    assert params.model.margin == 6.0 and isinstance(params.model.margin, float)
