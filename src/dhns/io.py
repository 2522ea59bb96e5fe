"""Atomic file and directory writes, so a crash or a bad input never leaves a half-written output;
and reads that, when an input is missing or damaged, name the file and the command that produces it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    import torch


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `target`; on success it replaces `target` in one rename.

    On an exception the temporary folder is removed and whatever `target` held before stays untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's private 0o700 would leak into the final output
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        if backup.exists():
            shutil.rmtree(backup) if backup.is_dir() else backup.unlink()
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup) if backup.is_dir() else backup.unlink()


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed onto `target` with the umask's mode.

    The mode is set again after the writer is done, because a writer may replace the path rather than
    write into it: safetensors' `save_file` writes its own private temporary file and renames it onto
    `tmp`, so without this `model.safetensors` would end up 0600 instead of, say, 0644.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    mode = 0o666 & ~_umask()
    tmp.chmod(mode)
    try:
        yield tmp
        tmp.chmod(mode)  # mkstemp's private 0o600 (or a replacing writer's) would leak into the output
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | Path, payload: Any) -> None:
    """Write `payload` as indented JSON atomically (metrics files are diffed by DVC, so keep them stable)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a damaged file is reported by name, since json's own message only gives a position."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a valid JSON file ({error})") from None


def stage_hint(stage: str) -> str:
    """The remedy for a missing or damaged output of DVC stage `stage`, for `require_files` and friends."""
    return f"run `dvc repro {stage}` to produce it"


def require_files(folder: str | Path, names: Iterable[str], hint: str) -> None:
    """Fail early, naming the folder, the missing file and how to produce it.

    A stage that starts before its inputs exist would otherwise stop deep inside a loader with a bare
    `[Errno 2]`, which says nothing about which earlier stage has not run. `hint` is the remedy, usually
    `stage_hint(stage)`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{folder} {what}; {hint}")
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is incomplete: {name} is missing ({folder / name}); {hint}")


def read_safetensors(path: str | Path, hint: str) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a truncated or foreign file is reported by name, with `hint` saying how to redo it.

    safetensors' own error ("header too large") names neither the file nor the cure.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file  # heavy import, only where weights are read

    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({type(error).__name__}: {error}); {hint}") from None


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
