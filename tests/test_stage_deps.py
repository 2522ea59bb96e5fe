"""dvc.yaml lists exactly the code each stage runs: its script's import closure within the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from dhns.stage_deps import (DynamicImportError, check_stages, covers, import_closure, load_stages, minimal_deps,
                             stage_script)

REPO = Path(__file__).resolve().parents[1]


def test_every_stage_lists_exactly_the_project_files_it_imports() -> None:
    results = check_stages(REPO, load_stages(REPO / "dvc.yaml"))
    assert {result.stage for result in results} >= {"prepare", "features", "pretrain", "diffusion", "train", "evaluate"}
    problems = [f"{result.stage}: missing {list(result.missing)}, superfluous {list(result.superfluous)}"
                for result in results if result.missing or result.superfluous]
    assert not problems, "dvc.yaml deps differ from the stages' imports (`python -m dhns.stage_deps` lists them):\n" + \
        "\n".join(problems)


def test_stages_that_only_load_a_model_do_not_depend_on_the_training_loop() -> None:
    needed = {result.stage: set(result.needed) for result in check_stages(REPO, load_stages(REPO / "dvc.yaml"))}
    assert "src/dhns/training/kgc.py" not in needed["evaluate"] | needed["diffusion"] | needed["features"]
    assert not any(path.startswith("src/dhns/features/") and "bundle" not in path and "store" not in path
                   and not path.endswith("__init__.py") for path in needed["pretrain"])  # no encoders for training


def write_package(src: Path) -> Path:
    """A package exercising each way a module can be reached, and a script using it."""
    pkg = src / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""top"""\n')
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")  # relative import of a submodule
    (pkg / "sub" / "leaf.py").write_text("from ..util import helper\n")  # two levels up
    (pkg / "util.py").write_text("def helper():\n    from pkg import lazy  # a lazy import still runs\n")
    (pkg / "lazy.py").write_text("KERNEL = 'kernel.c'\n")
    (pkg / "kernel.c").write_text("int f(void);\n")  # read by lazy.py, which names it
    (pkg / "unused.py").write_text("import pkg.sub\n")
    (pkg / "notes.txt").write_text("not named by any module\n")
    script = src.parent / "stages" / "run.py"
    script.parent.mkdir()
    script.write_text("import json\nfrom pkg.sub import leaf\n")
    return script


def test_closure_follows_relative_lazy_and_submodule_imports_and_named_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    script = write_package(src)
    names = sorted(path.relative_to(src).as_posix() for path in import_closure(script, src, package="pkg"))
    assert names == ["pkg/__init__.py", "pkg/kernel.c", "pkg/lazy.py", "pkg/sub/__init__.py", "pkg/sub/leaf.py",
                     "pkg/util.py"]


def test_a_dep_list_missing_a_module_or_listing_an_unused_one_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_package(src)
    stages = {"run": {"cmd": "python stages/run.py --fast", "deps": ["stages/run.py", "src/pkg/sub", "src/pkg/unused.py",
                                                                      "data/${x}"]}}
    (result,) = check_stages(tmp_path, stages, package="pkg")
    assert result.missing == ("src/pkg/__init__.py", "src/pkg/kernel.c", "src/pkg/lazy.py", "src/pkg/util.py")
    assert result.superfluous == ("src/pkg/unused.py",)
    wanted = minimal_deps(result.needed, tmp_path, package="pkg")
    assert wanted[0] == "stages/run.py" and "src/pkg/sub" in wanted  # a folder whose files are all needed
    assert "src/pkg/unused.py" not in wanted and not any(covers(dep, "src/pkg/notes.txt") for dep in wanted)


def test_stage_script_is_read_from_the_command() -> None:
    assert stage_script("python stages/train.py") == "stages/train.py"
    assert stage_script("python3 -u stages/x.py --a b") == "stages/x.py"
    assert stage_script("make thing") is None


def write_dynamic_package(src: Path, loader: str) -> Path:
    """A package whose only way to `pkg.plugin` (and on to `pkg.deep`) is `loader`, a line of `pkg/load.py`."""
    pkg = src / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "plugin.py").write_text("import importlib as il\n\nDEEP = il.import_module('pkg.deep')\n")
    (pkg / "deep.py").write_text("")
    (pkg / "unused.py").write_text("import importlib\nimportlib.import_module(__name__ + '.x')  # never reached\n")
    (pkg / "load.py").write_text(f"import importlib\nfrom importlib import import_module as load\n\n\ndef f(name):\n"
                                 f"    return {loader}\n")
    script = src.parent / "stages" / "run.py"
    script.parent.mkdir()
    script.write_text("from pkg import load\n")
    return script


@pytest.mark.parametrize("loader", [
    'importlib.import_module("pkg.sub.plugin")',
    'load("pkg.sub.plugin")',
    'importlib.import_module(".plugin", package="pkg.sub")',
    '__import__("pkg.sub.plugin")',
    '__import__("pkg.sub", fromlist=["plugin"])',
])
def test_closure_follows_dynamic_imports_of_a_literal_name(tmp_path: Path, loader: str) -> None:
    src = tmp_path / "src"
    script = write_dynamic_package(src, loader)
    names = sorted(path.relative_to(src).as_posix() for path in import_closure(script, src, package="pkg"))
    assert names == ["pkg/__init__.py", "pkg/deep.py", "pkg/load.py", "pkg/sub/__init__.py", "pkg/sub/plugin.py"]


@pytest.mark.parametrize("loader", [
    "importlib.import_module(name)",
    'load(f"pkg.{name}")',
    'importlib.import_module(".plugin", package=name)',
    "__import__(name)",
    '__import__("pkg", fromlist=[name])',
])
def test_closure_refuses_a_dynamic_import_of_a_computed_name(tmp_path: Path, loader: str) -> None:
    src = tmp_path / "src"
    script = write_dynamic_package(src, loader)
    with pytest.raises(DynamicImportError, match=rf"{src / 'pkg' / 'load.py'}, line 6: .*computed at run time"):
        import_closure(script, src, package="pkg")
