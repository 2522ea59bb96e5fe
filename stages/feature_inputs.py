"""Stage feature_inputs: digests of the files the features stage reads because a param names them.

It always runs (DVC cannot see files named by params); the features stage depends on its small output, so
DVC reruns features exactly when one of those files changed (`dhns.features.inputs`).
"""

import logging

from dhns.config import load_params
from dhns.features.inputs import feature_inputs
from dhns.io import write_json
from dhns.pipeline.paths import FEATURE_INPUTS_FILE, raw_dir
from dhns.stage import run_stage


def main() -> None:
    params = load_params()
    dataset = params.data.dataset
    record = feature_inputs(params.features, dataset, raw_dir(dataset))
    write_json(FEATURE_INPUTS_FILE, record)
    logging.info("feature inputs: %s", ", ".join(key for key in record if key != "dataset") or "none")


if __name__ == "__main__":
    run_stage(main)
