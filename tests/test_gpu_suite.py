"""scripts/gpu_suite.py (a thin wrapper of dhns.gpu_suite) in its CPU form: every part runs, reports ok, and
leaves its summary and logs.

The suite exists for the rare call on a lent GPU; CI has none, so this runs the same script shrunk
(`--device cpu --tiny`) importing as on the GPU machine (no dvc), so the script cannot rot unseen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PARTS = {1: "bench", 2: "eval", 3: "stages", 4: "torchrun", 5: "cuda-tests"}
OPTIONS = ["--help", "--out", "--device", "--tiny", "--parts", "--batches", "--budget", "--archive", "--as-gpu-machine",
           "--keep-work", "--python"]


def help_options(argv: list[str], env: dict[str, str]) -> list[str]:
    """The options `--help` lists, run with `-S`: no site-packages, so no installed dhns to fall back on."""
    result = subprocess.run([sys.executable, "-S", *argv, "--help"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return re.findall(r"^  (?:-h, )?(--[\w-]+)", result.stdout, flags=re.MULTILINE)


def test_script_and_module_start_from_a_bare_checkout_with_the_same_options() -> None:
    """The GPU machine has nothing of ours installed: the script must find src/ itself, and both entry points agree."""
    bare = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    script = help_options([str(REPO / "scripts" / "gpu_suite.py")], bare)
    module = help_options(["-m", "dhns.gpu_suite"], dict(bare, PYTHONPATH=str(REPO / "src")))
    assert script == module == OPTIONS


def test_tiny_cpu_suite_runs_every_part_ok(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_suite.py"), "--device", "cpu", "--tiny",
                             "--as-gpu-machine", "--out", str(out), "--archive", str(tmp_path / "suite.tar.gz")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    summary = json.loads((out / "summary.json").read_text())
    statuses = {part["name"]: (part["status"], part["error"]) for part in summary["parts"]}
    assert result.returncode == 0, (statuses, result.stdout[-3000:], result.stderr[-3000:])
    assert (out / "summary.md").is_file() and (tmp_path / "suite.tar.gz").is_file()
    assert (tmp_path / "summary.md").is_file()  # beside the archive, as the device tool brings it back
    assert summary["suite"]["dvclive"].startswith("stand-in; refusing to import: dvc")
    assert [part["number"] for part in summary["parts"]] == sorted(PARTS)
    for part in summary["parts"]:
        assert part["name"] == PARTS[part["number"]] and part["status"] == "ok", part
        folder = out / part["folder"]
        assert (folder / "part.log").stat().st_size > 0 and part["commands"], part["name"]
        assert all((folder / command["log"]).is_file() for command in part["commands"]), part["name"]

    figures = {part["name"]: part["figures"] for part in summary["parts"]}
    assert len(figures["bench"]["rows"]) == 4 and {row["precision"] for row in figures["bench"]["rows"]} == {
        "fp32", "tf32", "bf16"}
    assert all(row["chain_flops_per_second"] > 0 and row["chain_share_of_spec_peak"] is None
               for row in figures["bench"]["rows"])  # no spec peak on a CPU: "n/a"
    params = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    assert params["chain_stride"] == 0  # the pipeline's default chain, which the bench times and names
    assert {row["reverse_chain"] for row in figures["bench"]["rows"]} == {f"stride_0_eta_{params['chain_eta']:g}"}
    assert "Reverse chain timed (params.yaml's" in (out / "summary.md").read_text()
    assert {row["dataset"] for row in figures["eval"]["rows"]} == {"MKG-Y-slice", "DB15K-slice"}
    assert figures["stages"]["resume"]["bytes_identical"]
    assert figures["torchrun"]["pretrain_vs_plain_run"]["bytes_identical"]
    cuda = figures["cuda-tests"]
    assert cuda["failures"] == cuda["errors"] == cuda["run"] == 0 and cuda["skipped"] >= 1
