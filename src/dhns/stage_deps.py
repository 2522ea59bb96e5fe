"""What each DVC stage's code is: the project files its script imports, directly or not.

DVC reruns a stage only when one of its `deps` changes, so a library module that a stage imports but
`dvc.yaml` does not list is a stale cache waiting to happen: edit a default in it and every cached model
stays "up to date". The imports are read statically (the `ast` of every module reached, imports inside
functions included, since a lazy import still runs), so the closure is a superset of what a run executes
and never misses a file. `importlib.import_module("dhns.x")` and `__import__("dhns.x")` count as imports
when they name the module by a string literal; with a computed name the closure cannot know the module,
so it refuses the file (`DynamicImportError`, naming the file and line) rather than silently missing it.
Files a module reads next to itself (the C kernels of `dhns.native`) are part of it when the module's
source names them.

`python -m dhns.stage_deps` prints, per stage of `dvc.yaml`, the deps its code needs and what is missing
or superfluous; `tests/test_stage_deps.py` fails while they differ.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import yaml

PACKAGE = "dhns"
SCRIPT_PATTERN = re.compile(r"python3?\s+(?:-\S+\s+)*(\S+\.py)")


def module_path(name: str, src: Path) -> Path | None:
    """The file that defines module `name` under `src` (a package's `__init__.py`), or None if not ours."""
    base = src.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class DynamicImportError(ValueError):
    """A module imports another by a name computed at run time, which no static closure can follow."""


def imported_names(path: Path, own_name: str | None) -> set[str]:
    """Every module `path` may import: `import a.b`, `from a import b` (b may be a submodule), relative ones,
    and `importlib.import_module` / `__import__` calls on a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    importers = _import_module_aliases(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_base(node, own_name, is_package)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func, importers):
            names.update(_dynamic_import_names(node, path))
    return names


def _import_module_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names a module binds to `importlib` itself and to `importlib.import_module`, however aliased."""
    modules, functions = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name for alias in node.names if alias.name == "importlib")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "importlib":
            functions.update(alias.asname or alias.name for alias in node.names if alias.name == "import_module")
    return modules, functions


def _is_dynamic_import(func: ast.expr, importers: tuple[set[str], set[str]]) -> bool:
    modules, functions = importers
    if isinstance(func, ast.Name):
        return func.id == "__import__" or func.id in functions
    return (isinstance(func, ast.Attribute) and func.attr == "import_module"
            and isinstance(func.value, ast.Name) and func.value.id in modules)


def _call_argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((item.value for item in call.keywords if item.arg == keyword), None)


_NOT_LITERAL = object()


def _literal(node: ast.expr | None) -> object:
    """The value of a literal argument, None when it is absent, `_NOT_LITERAL` when it is computed."""
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return _NOT_LITERAL


def _dynamic_import_names(call: ast.Call, path: Path) -> set[str]:
    """The modules an `import_module(...)` or `__import__(...)` call may load; refused unless named literally."""
    is_builtin = isinstance(call.func, ast.Name) and call.func.id == "__import__"
    names = _builtin_import_names(call) if is_builtin else _import_module_names(call)
    if names is None:
        what = "__import__" if is_builtin else "importlib.import_module"
        raise DynamicImportError(
            f"{path}, line {call.lineno}: {what}(...) loads a module whose name is computed at run time, so the "
            f"stage dependency closure cannot see it; name the module by a string literal "
            f"(e.g. {what}(\"dhns.module\")) or use an import statement")
    return names


def _import_module_names(call: ast.Call) -> set[str] | None:
    """`import_module(name, package=None)`: a literal absolute name, or a relative one with a literal package."""
    name, package = _literal(_call_argument(call, 0, "name")), _literal(_call_argument(call, 1, "package"))
    if not isinstance(name, str) or not name:
        return None
    if name.startswith("."):
        return {importlib.util.resolve_name(name, package)} if isinstance(package, str) else None
    return {name}


def _builtin_import_names(call: ast.Call) -> set[str] | None:
    """`__import__(name, globals, locals, fromlist, level)`: a literal absolute name; fromlist items may be
    submodules, as in `from name import item`."""
    name, level = _literal(_call_argument(call, 0, "name")), _literal(_call_argument(call, 4, "level"))
    items = _literal(_call_argument(call, 3, "fromlist")) or ()
    if (not isinstance(name, str) or not name or level not in (None, 0) or not isinstance(items, (list, tuple))
            or not all(isinstance(item, str) for item in items)):
        return None
    return {name} | {f"{name}.{item}" for item in items if item != "*"}


def _absolute_base(node: ast.ImportFrom, own_name: str | None, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    if own_name is None:
        return ""
    parts = own_name.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def with_parents(name: str) -> list[str]:
    """Importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` first."""
    parts = name.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


def companion_files(module: Path) -> set[Path]:
    """Non-Python files beside `module` that its source names (read or compiled at run time)."""
    text = module.read_text(encoding="utf-8")
    return {sibling for sibling in module.parent.iterdir()
            if sibling.is_file() and sibling.suffix not in (".py", ".pyc") and sibling.name in text}


def import_closure(script: Path, src: Path, package: str = PACKAGE) -> set[Path]:
    """The project files (under `src/<package>`) that running `script` may execute or read."""
    seen: set[Path] = set()
    pending: list[tuple[Path, str | None]] = [(script, None)]
    while pending:
        path, own_name = pending.pop()
        for name in imported_names(path, own_name):
            if name.split(".")[0] != package:
                continue
            for parent in with_parents(name):
                found = module_path(parent, src)
                if found is not None and found not in seen:
                    seen.add(found)
                    seen.update(companion_files(found))
                    pending.append((found, parent))
    return seen


def stage_script(command: str) -> str | None:
    """`python stages/train.py --x` -> `stages/train.py`; None for commands that run no project script."""
    match = SCRIPT_PATTERN.search(command)
    return match.group(1) if match else None


@dataclass(frozen=True)
class StageCode:
    stage: str
    script: str
    needed: tuple[str, ...]  # repo-relative files the script may run, the script itself first
    missing: tuple[str, ...]  # needed files no dep covers
    superfluous: tuple[str, ...]  # code deps (under stages/ or src/) that cover no needed file


def covers(dep: str, path: str) -> bool:
    dep = dep.rstrip("/")
    return path == dep or path.startswith(dep + "/")


def check_stages(root: Path, stages: Mapping[str, Mapping], package: str = PACKAGE) -> list[StageCode]:
    """Each stage that runs a project script, against the code paths among its deps."""
    src = root / "src"
    results = []
    for name, stage in stages.items():
        script = stage_script(str(stage.get("cmd", "")))
        if script is None:
            continue
        files = [root / script, *sorted(import_closure(root / script, src, package))]
        needed = tuple(path.relative_to(root).as_posix() for path in files)
        deps = [str(dep) for dep in stage.get("deps", []) if isinstance(dep, str) and "${" not in dep]
        code_deps = [dep for dep in deps if dep.startswith(("src/", "stages/"))]
        missing = tuple(path for path in needed if not any(covers(dep, path) for dep in deps))
        superfluous = tuple(dep for dep in code_deps if not any(covers(dep, path) for path in needed))
        results.append(StageCode(name, script, needed, missing, superfluous))
    return results


def minimal_deps(needed: Iterable[str], root: Path, package: str = PACKAGE) -> list[str]:
    """`needed` with every folder whose files are all needed written as the folder (as dvc.yaml lists them)."""
    needed = set(needed)
    folders = sorted({str(Path(path).parent) for path in needed if path.startswith("src/")}, key=len)
    chosen: list[str] = []
    for folder in folders:
        if any(covers(parent, folder) for parent in chosen):
            continue
        files = [p.relative_to(root).as_posix() for p in (root / folder).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts]
        if folder != f"src/{package}" and files and all(path in needed for path in files):
            chosen.append(folder)
    singles = [path for path in sorted(needed) if not any(covers(folder, path) for folder in chosen)]
    return sorted(chosen + singles, key=lambda path: (not path.startswith("stages/"), path))


def load_stages(dvc_yaml: Path) -> Mapping[str, Mapping]:
    return (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare each dvc.yaml stage's code deps with its imports.")
    parser.add_argument("--root", default=".", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for result in check_stages(args.root, load_stages(args.root / "dvc.yaml")):
        print(f"{result.stage}: {result.script} imports {len(result.needed) - 1} project files; deps it needs:")
        for path in minimal_deps(result.needed, args.root):
            print(f"      - {path}")
        for path in result.missing:
            print(f"  MISSING from deps: {path}")
        for path in result.superfluous:
            print(f"  SUPERFLUOUS dep (not imported): {path}")
        failed = failed or bool(result.missing or result.superfluous)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
