"""Where each stage reads and writes: the one copy of the layout dvc.yaml declares."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
FEATURE_INPUTS_FILE = Path("data/feature_inputs.json")
FEATURES_DIR = Path("data/features")
PARAMS_FILE = Path("params.yaml")
DATA_METRICS_FILE = Path("metrics/data.json")
EVAL_FILE = Path("metrics/eval.json")  # the evaluate stage's headline
EVAL_BREAKDOWNS_FILE = Path("metrics/eval_breakdowns.json")  # ... and the rest of its report


def raw_dir(dataset: str) -> Path:
    return RAW_DIR / dataset


def model_dir(stage: str) -> Path:
    """models/<stage>: the pretrained model, the generator (diffusion) or the NTAT model (train)."""
    return Path("models") / stage


def checkpoint_dir(stage: str) -> Path:
    """A stage's resumable snapshot, outside DVC's outputs so that a killed run finds it again."""
    return Path("checkpoints") / stage


def metrics_file(stage: str) -> Path:
    return Path("metrics") / f"{stage}.json"


def plots_dir(stage: str) -> Path:
    """dvclive's folder of a stage: curves in `metrics/`, tables in `custom/`."""
    return Path("plots") / stage
