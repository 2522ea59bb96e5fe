"""How a stage script runs: logging, its exit code, and, when it fails under DVC, its old outputs put back.

DVC deletes a stage's outputs before it runs the command. When the command then stops (bad input, bad
params, a crash), the outputs are gone: the cached ones until the user runs `dvc checkout`, and the
`cache: false` metrics for good. So a stage that fails under `dvc repro` or `dvc exp run` (DVC sets
`DVC_STAGE`) puts back exactly what `dvc.lock` records for it before it exits, from DVC's cache (where the
run cache also keeps each run's `cache: false` outputs) or, for a file never run here, from git's `HEAD`
when its bytes still match the lock. Every restored file is checked against the md5 in `dvc.lock`, so a
restore never brings back anything DVC would call changed. Run directly (`python stages/X.py`), the
stages write their outputs atomically and never touch them on failure, so there is nothing to restore.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, NoReturn

import yaml

from dhns.io import file_md5

log = logging.getLogger("dhns.stage")

DIR_SUFFIX = ".dir"

# The project's errors meant for the user, as (module, class): bad params, bad input data, a run whose loss
# diverged. Their messages name the setting, file and line, or epoch, so a traceback would only bury them.
USER_ERRORS = (("dhns.config", "ParamsError"), ("dhns.data", "DataFormatError"),
               ("dhns.training.checkpoint", "NonFiniteLossError"))


def user_error_classes() -> tuple[type[BaseException], ...]:
    """The classes of `USER_ERRORS` whose modules this process has loaded.

    Looked up, not imported: a stage that never loaded a module cannot raise its error, and an import here
    would put those modules (and torch, pyarrow) into every stage's code deps.
    """
    classes = (getattr(sys.modules[module], name, None) for module, name in USER_ERRORS if module in sys.modules)
    return tuple(cls for cls in classes if isinstance(cls, type) and issubclass(cls, BaseException))


def run_stage(main: Callable[[], int | None]) -> NoReturn:
    """Run a stage's `main` and exit with its code; on failure under DVC, restore the stage's outputs first.

    A user error (`USER_ERRORS`) ends the stage with exit status 1 and one line, `ERROR <message>`; any other
    exception is a bug and keeps its traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        code = main() or 0
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: DVC has deleted the outputs either way
        _restore_if_under_dvc()
        if isinstance(error, user_error_classes()):
            log.error("%s", error)
            raise SystemExit(1) from None
        raise
    if code:
        _restore_if_under_dvc()
    sys.exit(code)


def _restore_if_under_dvc() -> None:
    stage, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not stage or not root or "LOCAL_RANK" in os.environ:  # torchrun's workers: their launcher restores once
        return
    try:
        restored = restore_outputs(Path(root), stage.rsplit(":", 1)[-1])
    except Exception as error:  # never hide the stage's own error behind one of ours
        log.warning("could not restore the outputs of stage %s: %s", stage, error)
        return
    for path, outcome in restored.items():
        log.warning("stage %s failed: %s %s", stage, path, outcome)


def locked_outputs(root: Path, stage: str) -> list[dict]:
    """The `outs` that `dvc.lock` records for `stage` (path, md5, ...); empty before its first run."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return []
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return list((stages.get(stage) or {}).get("outs", []))


def cache_objects(root: Path) -> Path:
    """DVC's local object store (`<cache dir>/files/md5`), wherever `cache.dir` puts it."""
    try:
        from dvc.repo import Repo  # heavy, and absent on machines that call the stages directly

        with Repo(str(root)) as repo:
            return Path(repo.cache.local.path)
    except Exception:  # noqa: BLE001 - no DVC here: its default layout
        return root / ".dvc" / "cache" / "files" / "md5"


def object_path(objects: Path, md5: str) -> Path:
    return objects / md5[:2] / md5[2:]


def restore_outputs(root: Path, stage: str) -> dict[str, str]:
    """Make each output of `stage` what `dvc.lock` records; returns what happened to each one that differed."""
    outcomes: dict[str, str] = {}
    outputs = [out for out in locked_outputs(root, stage) if out.get("md5")]
    if not outputs:
        return outcomes
    objects = cache_objects(root)
    for out in outputs:
        path, md5 = root / out["path"], str(out["md5"])
        if md5.endswith(DIR_SUFFIX):
            outcomes.update(_restore_folder(root, path, md5, objects))
        elif not (path.is_file() and file_md5(path) == md5):
            outcomes[out["path"]] = _restore_file(root, path, md5, objects)
    return outcomes


def _restore_file(root: Path, path: Path, md5: str, objects: Path) -> str:
    cached = object_path(objects, md5)
    if cached.is_file() and file_md5(cached) == md5:
        _place(path, cached.read_bytes())
        return "restored from the DVC cache"
    committed = _git_head_bytes(root, path)
    if committed is not None and hashlib.md5(committed).hexdigest() == md5:
        _place(path, committed)
        return "restored from git HEAD"
    return "NOT restored: neither the DVC cache nor git HEAD holds the version dvc.lock records"


def _restore_folder(root: Path, folder: Path, md5: str, objects: Path) -> dict[str, str]:
    """A folder output: its manifest (`<md5>.dir` in the cache) lists every file's md5.

    The manifest and every file are checked against their md5 (the manifest's is the lock's md5 without
    `.dir`: DVC names each object after its own md5) before anything is put in place; one corrupted
    object leaves the folder as it is, since a half-restored folder is worse than a stale one.
    """
    rel = folder.relative_to(root).as_posix()
    manifest = object_path(objects, md5)
    if not manifest.is_file():
        return {rel: "NOT restored: its manifest is not in the DVC cache (run `dvc pull` or rerun it)"}
    manifest_md5 = file_md5(manifest)
    if manifest_md5 != md5.removesuffix(DIR_SUFFIX):
        return {rel: f"NOT restored: its cached manifest {md5} is corrupted (md5 {manifest_md5})"}
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    current = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
    wanted = {entry["relpath"]: entry["md5"] for entry in entries}
    if set(current) == set(wanted) and all(file_md5(current[name]) == wanted[name] for name in wanted):
        return {}
    missing = [name for name, digest in wanted.items() if not object_path(objects, digest).is_file()]
    if missing:
        return {rel: f"NOT restored: {len(missing)} of its files are not in the DVC cache (e.g. {missing[0]})"}
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent if folder.parent.is_dir() else root))
    try:
        corrupted = _stage_verified_files(staging, wanted, objects)
        if corrupted:
            return {rel: f"NOT restored: {corrupted}"}
        if folder.exists():
            shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone once it became the folder; else nothing of it is kept
    return {rel: f"restored from the DVC cache ({len(wanted)} files)"}


def _stage_verified_files(staging: Path, wanted: dict[str, str], objects: Path) -> str:
    """Copy each cached object to `staging/<relpath>` and check the copy's md5; the first mismatch, or ""."""
    for name, digest in wanted.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(object_path(objects, digest), target)
        found = file_md5(target)
        if found != digest:
            return f"cached object for {name} is corrupted (md5 {found}, expected {digest})"
    return ""


def _place(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.rmtree(path)
    tmp = path.with_name(f".{path.name}.restoring")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _git_head_bytes(root: Path, path: Path) -> bytes | None:
    shown = subprocess.run(["git", "show", f"HEAD:{path.relative_to(root).as_posix()}"], cwd=root,
                           capture_output=True, check=False)
    return shown.stdout if shown.returncode == 0 else None
