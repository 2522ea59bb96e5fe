"""--archive: --out as one .tar.gz, since the device tool brings back at most 8 files from a call."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from dhns.gpu_suite.settings import Settings


def write_archive(settings: Settings) -> None:
    """--out as a .tar.gz, replaced atomically (a call cut off mid-write keeps the last whole one).

    summary.md and summary.json also go beside it, to be read without unpacking.
    """
    if settings.archive is None:
        return
    settings.archive.parent.mkdir(parents=True, exist_ok=True)
    partial = settings.archive.with_name(settings.archive.name + ".partial")
    skipped = {partial.name, settings.archive.name}  # where --archive lies inside --out
    with tarfile.open(partial, "w:gz") as archive:
        archive.add(settings.out, arcname=settings.out.name,
                    filter=lambda info: None if Path(info.name).name in skipped else info)
    os.replace(partial, settings.archive)
    if settings.archive.parent != settings.out:
        for name in ("summary.md", "summary.json"):
            shutil.copy(settings.out / name, settings.archive.parent / name)
