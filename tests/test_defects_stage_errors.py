"""A stage stopped by a user's mistake (a bad param, a bad input file, a diverged run) prints one line
naming it, and exits 1; a bug keeps its traceback. Either way the outputs are restored first under DVC."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import dhns.stage
from dhns.config import ParamsError
from dhns.data import DataFormatError
from dhns.stage import run_stage
from dhns.training.checkpoint import NonFiniteLossError
from test_data import TINY, write_benchmark

REPO = Path(__file__).resolve().parents[1]


def run_prepare(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    for name in ("DVC_STAGE", "DVC_ROOT"):  # run directly, as `python stages/prepare.py`
        env.pop(name, None)
    return subprocess.run([sys.executable, str(REPO / "stages" / "prepare.py")], cwd=root, env=env,
                          capture_output=True, text=True)


def write_params(root: Path, **sections: dict) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_a_bad_param_value_ends_the_stage_with_one_line(tmp_path: Path) -> None:
    write_params(tmp_path, evaluate={"batch_size": -1})
    line = assert_one_error_line(run_prepare(tmp_path), "params evaluate.batch_size: -1 must be > 0")
    assert line.startswith("ERROR ")


def test_unreadable_yaml_ends_the_stage_with_one_line_naming_where(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("data: {dataset: TINY\ntrain: [1, 2\n", encoding="utf-8")
    line = assert_one_error_line(run_prepare(tmp_path), "params.yaml, line 2, column", "not valid YAML")
    assert line.startswith("ERROR ")


def test_a_bad_data_file_still_ends_the_stage_with_one_line(tmp_path: Path) -> None:
    write_params(tmp_path, data={"dataset": "TINY"})
    bad_train = TINY["train2id.txt"].replace("3 1 2", "3 x12 2")
    write_benchmark(tmp_path / "data" / "raw", {"train2id.txt": bad_train})
    assert_one_error_line(run_prepare(tmp_path), "data/raw/TINY/train2id.txt, line 3: field 2 (tail)")


@pytest.mark.parametrize("error", [ParamsError("params train.lr: 0 must be > 0"),
                                   DataFormatError("data/raw/X/train2id.txt, line 7: field 2 (tail) 'x' ..."),
                                   NonFiniteLossError("train stage: loss became nan at epoch 3, batch 2 of 9")])
def test_a_user_error_is_logged_as_one_line_after_the_restore(
        error: Exception, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(dhns.stage, "_restore_if_under_dvc", lambda: logging.getLogger("test").warning("restored"))

    def main() -> None:
        raise error

    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exited:
        run_stage(main)
    assert exited.value.code == 1
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "restored"), ("ERROR", str(error))]


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    restored = []
    monkeypatch.setattr(dhns.stage, "_restore_if_under_dvc", lambda: restored.append(True))

    def main() -> None:
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError, match="a bug"):
        run_stage(main)
    assert restored == [True]
