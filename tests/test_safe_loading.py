"""Nothing the project reads can run code: every unpickling load is `weights_only=True`.

Checkpoints and imported feature files (`DB15K-visual.pth`) come from disk, and a `.pth` from a paper's
release page is as trusted as a stranger's download. `torch.load` without `weights_only=True` runs
whatever a pickle's `__reduce__` names, so two checks guard it: a static one that reads every module of
src/, stages/ and scripts/ with `ast` (however torch.load is imported or aliased), and behavioural ones
that hand the real loaders a pickle which, if unpickled unsafely, leaves a marker file behind.

torch >= 2.6 already defaults to `weights_only=True`, so a call that lost the argument would still be
safe here, yet unsafe under an older torch or for a user who sets `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`.
The behavioural tests set that variable, so they fail as soon as a loader stops passing it explicitly.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from dhns.training.checkpoint import Checkpointing
from dhns.features.importing import find_import_files, load_feature_file

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "stages", "scripts")

# Loads that unpickle and are safe only with a literal `weights_only=True`.
WEIGHTS_ONLY_LOADS = frozenset({"torch.load", "torch.serialization.load"})
# Loads that unpickle with no safe mode at all.
UNPICKLERS = frozenset(
    {f"{module}.{name}" for module in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
     for name in ("load", "loads", "Unpickler")}
    | {"joblib.load", "pandas.read_pickle", "shelve.open"}
)
# Calls that widen what `weights_only=True` lets through, so each one needs a reviewer's eye.
ALLOWLIST_WIDENERS = frozenset({"torch.serialization.add_safe_globals", "torch.serialization.safe_globals"})
# Setting this makes every torch.load without an explicit weights_only unsafe again.
UNSAFE_ENVIRONMENT = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


# --------------------------------------------------------------------------------------------------
# The static check


def imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name it stands for, from every import in the module (function-level ones too).

    `import torch.serialization` binds `torch`; `from torch import load as read` binds `read` to
    `torch.load`. Relative imports name project modules, which are scanned themselves.
    """
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def dotted_name(node: ast.AST, names: dict[str, str]) -> str | None:
    """What a `Name` or `Attribute` chain refers to, through the imports; None if not an imported name."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value, names)
        return None if base is None else f"{base}.{node.attr}"
    return None


def is_literal(node: ast.Call, keyword: str, value: object) -> bool:
    """Whether `keyword=value` is passed literally; `**options` or a variable cannot be checked, so they fail."""
    return any(kw.arg == keyword and isinstance(kw.value, ast.Constant) and kw.value.value is value
               for kw in node.keywords)


def call_problem(call: ast.Call, name: str) -> str | None:
    """Why this call of `name` may unpickle arbitrary code, or None if it cannot."""
    if name in WEIGHTS_ONLY_LOADS and not is_literal(call, "weights_only", True):
        return f"{name}(...) without a literal weights_only=True can run code from the file"
    if name in UNPICKLERS:
        return f"{name}(...) unpickles, which can run code from the file; store tensors as safetensors"
    if name in ALLOWLIST_WIDENERS:
        return f"{name}(...) widens what weights_only=True accepts"
    pickle_allowed = any(kw.arg in ("allow_pickle", None) for kw in call.keywords)  # None: **options
    if name == "numpy.load" and pickle_allowed and not is_literal(call, "allow_pickle", False):
        return "numpy.load(...) with allow_pickle not literally False can run code from the file"
    return None


def unsafe_loads(source: str, filename: str) -> list[str]:
    """`filename:line: problem` for each unsafe load in `source`.

    A loader referenced without being called (`reader = torch.load`, `partial(torch.load, ...)`) is
    reported too: its eventual call cannot be checked.
    """
    tree = ast.parse(source, filename=filename)
    names = imported_names(tree)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    problems: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        problem = node_problem(node, names, called)
        if problem is not None:
            problems.append((node.lineno, f"{filename}:{node.lineno}: {problem}"))
    return [text for _, text in sorted(problems)]


def node_problem(node: ast.AST, names: dict[str, str], called: set[int]) -> str | None:
    """The problem with one syntax node: an unsafe call, an uncalled loader, or the unsafe environment variable."""
    if isinstance(node, ast.Call):
        name = dotted_name(node.func, names)
        return None if name is None else call_problem(node, name)
    if isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in called:
        name = dotted_name(node, names)
        if name in WEIGHTS_ONLY_LOADS or name in UNPICKLERS:
            return f"{name} is referenced without being called, so its arguments cannot be checked"
    if isinstance(node, ast.Constant) and node.value == UNSAFE_ENVIRONMENT:
        return f"{UNSAFE_ENVIRONMENT} makes torch.load unpickle arbitrary code"
    return None


def python_files() -> Iterator[Path]:
    for folder in SCANNED:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_every_load_in_the_project_is_weights_only() -> None:
    problems: list[str] = []
    checked = 0
    for path in python_files():
        source = path.read_text(encoding="utf-8")
        problems += unsafe_loads(source, str(path.relative_to(ROOT)))
        checked += source.count("torch.load(")
    assert not problems, "unsafe loads:\n" + "\n".join(problems)
    assert checked > 0, f"no torch.load call found under {SCANNED}: is ROOT ({ROOT}) right?"


UNSAFE_SNIPPETS = {
    "no weights_only": "import torch\ntorch.load(path)",
    "weights_only=False": "import torch\ntorch.load(path, map_location='cpu', weights_only=False)",
    "weights_only from a variable": "import torch\ntorch.load(path, weights_only=flag)",
    "weights_only hidden in **options": "import torch\ntorch.load(path, **options)",
    "aliased module": "import torch as th\nth.load(path)",
    "from-import": "from torch import load\nload(path)",
    "renamed from-import": "from torch import load as read_weights\nread_weights(path)",
    "torch.serialization.load": "import torch\ntorch.serialization.load(path)",
    "from torch.serialization": "from torch.serialization import load\nload(path)",
    "aliased submodule": "import torch.serialization as ser\nser.load(path)",
    "import inside a function": "def read(path):\n    import torch\n    return torch.load(path)",
    "inside a lambda": "import torch\nread = lambda: torch.load(path)",
    "passed around uncalled": "import functools, torch\nread = functools.partial(torch.load, weights_only=False)",
    "pickle.loads": "import pickle\npickle.loads(data)",
    "from pickle import load": "from pickle import load\nload(handle)",
    "pickle.Unpickler": "import pickle\npickle.Unpickler(handle).load()",
    "pandas.read_pickle": "import pandas as pd\npd.read_pickle(path)",
    "numpy allow_pickle=True": "import numpy as np\nnp.load(path, allow_pickle=True)",
    "allowlist widened": "import torch\ntorch.serialization.add_safe_globals([Thing])",
    "environment override": "import os\nos.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'",
}

SAFE_SNIPPETS = {
    "weights_only=True": "import torch\ntorch.load(path, map_location='cpu', weights_only=True)",
    "from-import with weights_only=True": "from torch import load\nload(path, weights_only=True)",
    "in a lambda with weights_only=True": "import torch\nread = lambda: torch.load(path, weights_only=True)",
    "safetensors": "from safetensors.torch import load_file\nload_file(path)",
    "numpy default": "import numpy as np\nnp.load(path)",
    "numpy allow_pickle=False": "import numpy as np\nnp.load(path, allow_pickle=False)",
    "json.load": "import json\njson.load(handle)",
    "torch.save": "import torch\ntorch.save(state, path)",
    "an unrelated load": "from dhns.models.kgc import load_model\nload_model(folder, None)",
}


@pytest.mark.parametrize("source", UNSAFE_SNIPPETS.values(), ids=UNSAFE_SNIPPETS.keys())
def test_the_static_check_catches(source: str) -> None:
    problems = unsafe_loads(source, "snippet.py")
    assert problems and all(problem.startswith("snippet.py:") for problem in problems), problems


@pytest.mark.parametrize("source", SAFE_SNIPPETS.values(), ids=SAFE_SNIPPETS.keys())
def test_the_static_check_accepts(source: str) -> None:
    assert unsafe_loads(source, "snippet.py") == []


def test_the_static_check_names_file_and_line() -> None:
    assert unsafe_loads("import torch\n\nx = 1\ntorch.load(p)\n", "stages/x.py") == [
        "stages/x.py:4: torch.load(...) without a literal weights_only=True can run code from the file"
    ]


# --------------------------------------------------------------------------------------------------
# The behavioural checks: the real loaders, a live payload


def plant_marker(marker: str, rows: int) -> torch.Tensor:
    """What the payload runs when unpickled unsafely: leave a marker, then return a plausible matrix."""
    Path(marker).write_text("the pickle ran code\n")
    return torch.ones(rows, 4)


class Payload:
    """Pickles as "call plant_marker(marker, rows)": an unsafe load runs it, a weights-only load refuses."""

    def __init__(self, marker: Path, rows: int) -> None:
        self.marker, self.rows = marker, rows

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return plant_marker, (str(self.marker), self.rows)


@pytest.fixture
def unsafe_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torch.load unsafe unless the call says `weights_only=True`, as before torch 2.6."""
    monkeypatch.setenv(UNSAFE_ENVIRONMENT, "1")
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)


def test_the_payload_runs_code_when_loaded_unsafely(tmp_path: Path, unsafe_default: None) -> None:
    # the control: without it, the tests below could pass because the payload never worked
    path, marker = tmp_path / "payload.pth", tmp_path / "marker"
    torch.save(Payload(marker, 3), path)
    assert not marker.exists()
    with pytest.warns(UserWarning, match=UNSAFE_ENVIRONMENT):  # torch honours the variable: loads are unsafe
        assert torch.equal(torch.load(path), torch.ones(3, 4))
    assert marker.exists()


def save_checkpoint_payload(tmp_path: Path, key: str) -> tuple[Checkpointing, Path]:
    """A snapshot with the right fingerprint, so only the unpickling itself can stop it."""
    checkpointing = Checkpointing(tmp_path / "checkpoints" / "train")
    checkpointing.path.parent.mkdir(parents=True)
    marker = tmp_path / "marker"
    torch.save({"fingerprint": key, "epoch": 3, "model": Payload(marker, 2)}, checkpointing.path)
    return checkpointing, marker


def test_checkpoint_load_ignores_a_code_running_pickle(
    tmp_path: Path, unsafe_default: None, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointing, marker = save_checkpoint_payload(tmp_path, "run-key")
    with caplog.at_level(logging.WARNING, logger="dhns.training.checkpoint"):
        assert checkpointing.load("run-key") is None
    assert not marker.exists(), "Checkpointing.load unpickled code from the checkpoint"
    assert f"ignoring unreadable checkpoint {checkpointing.path}" in caplog.text


def test_checkpoint_last_good_never_runs_a_code_running_pickle(tmp_path: Path, unsafe_default: None) -> None:
    checkpointing, marker = save_checkpoint_payload(tmp_path, "run-key")
    try:
        checkpointing.last_good()
    except Exception:  # noqa: BLE001 - refusing is fine here; what it says is the next test's concern
        pass
    assert not marker.exists(), "Checkpointing.last_good unpickled code from the checkpoint"


def test_checkpoint_last_good_describes_an_unreadable_checkpoint(tmp_path: Path, unsafe_default: None) -> None:
    checkpointing, _ = save_checkpoint_payload(tmp_path, "run-key")
    description = checkpointing.last_good()  # inside check_finite: must not hide the NonFiniteLossError
    assert str(checkpointing.path) in description and "unreadable" in description


def test_imported_pth_feature_file_refuses_a_code_running_pickle(tmp_path: Path, unsafe_default: None) -> None:
    marker = tmp_path / "marker"
    torch.save(Payload(marker, 5), tmp_path / "DB15K-visual.pth")
    path = find_import_files(tmp_path, "DB15K")["image"]
    with pytest.raises(ValueError) as caught:
        load_feature_file(path, num_entities=5)
    assert not marker.exists(), "load_feature_file unpickled code from the feature file"
    message = str(caught.value)
    assert f"feature file {path} could not be read as a tensor" in message and "UnpicklingError" in message


def test_imported_npy_feature_file_refuses_a_pickled_object_array(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    objects = np.empty(1, dtype=object)
    objects[0] = Payload(marker, 5)
    np.save(tmp_path / "DB15K-textual.npy", objects, allow_pickle=True)
    path = find_import_files(tmp_path, "DB15K")["text"]
    with pytest.raises(ValueError, match=rf"feature file {path} could not be read as a tensor"):
        load_feature_file(path, num_entities=5)
    assert not marker.exists(), "load_feature_file unpickled code from the feature file"
