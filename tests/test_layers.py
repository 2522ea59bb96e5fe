"""Data flows one way: the library below the stage layer never reaches back up into it.

`dhns.training` (the loop, the objective, NTAT) and the modules it builds on must run without the stage
layer (`dhns.pipeline`, `dhns.stage`, `dhns.live`) and without dvclive or DVC: the benchmark, `dhns.tune`,
the GPU suite and a user's own script train through it directly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dhns.stage_deps import import_closure

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
STAGE_LAYER = ("src/dhns/pipeline", "src/dhns/stage.py", "src/dhns/live.py")
LIBRARY = sorted((SRC / "dhns" / "training").glob("*.py")) + [SRC / "dhns" / "models" / "kgc.py",
                                                              SRC / "dhns" / "sampling" / "negatives.py"]


def third_party_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def reached_from(module: Path) -> set[Path]:
    return {module, *import_closure(module, SRC)}


@pytest.mark.parametrize("module", LIBRARY, ids=lambda path: path.relative_to(SRC).as_posix())
def test_the_library_imports_nothing_from_the_stage_layer_nor_dvclive(module: Path):
    reached = reached_from(module)
    upward = [path.relative_to(REPO).as_posix() for path in reached
              if path.relative_to(REPO).as_posix().startswith(STAGE_LAYER)]
    assert upward == []
    assert not any({"dvclive", "dvc"} & third_party_roots(path) for path in reached if path.suffix == ".py")


def test_the_check_sees_an_upward_import(tmp_path: Path):
    """The closure this test relies on does follow an import into the stage layer."""
    assert any(path.name == "live.py" for path in reached_from(SRC / "dhns" / "pipeline" / "kgc.py"))
