"""The parts in turn, each under its own deadline and what is left of --budget; the summary after each.

Why nothing here raises past a part: one call on the device is all there is, so a broken part becomes a
status in the summary and the next part still runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import traceback
from typing import Any

from dhns.gpu_suite.archive import write_archive
from dhns.gpu_suite.commands import PartRun, PartStopped
from dhns.gpu_suite.environment import child_env, needs_stand_in, probe_machine, write_import_shims
from dhns.gpu_suite.registry import PARTS, PartSpec, part_timeouts
from dhns.gpu_suite.report import write_summary
from dhns.gpu_suite.settings import Settings

EXIT_NO_PART_RUN = 2  # the machine cannot run any part (no torch, or no CUDA where --device asked for it)


def run_part(spec: PartSpec, settings: Settings, env: dict[str, str], machine: dict[str, Any],
             budget_left: float) -> dict[str, Any]:
    """One part under its deadline; whatever goes wrong becomes its status, never an exception."""
    folder = settings.out / f"{spec.number}-{spec.name}"
    shutil.rmtree(folder, ignore_errors=True)  # a rerun into the same --out starts the part afresh
    folder.mkdir(parents=True)
    timeouts = part_timeouts(spec, settings)
    limit = min(timeouts.part, budget_left)
    record = {"number": spec.number, "name": spec.name, "title": spec.title, "folder": folder.name,
              "timeout_seconds": round(limit, 1), "figures": {}, "error": None}
    began = time.monotonic()
    run = PartRun(settings, folder, began + limit, env, timeouts.command)
    run.note(f"part {spec.number} {spec.name}: {spec.title}; timeout {limit:.0f} s, per command {timeouts.command:.0f} s")
    try:
        if limit < 5:
            record.update(status="skipped", error=f"{budget_left:.0f} s of the --budget left, too little to start")
        else:
            record["figures"] = spec.run(run, machine)
            record["status"] = "ok"
    except PartStopped as error:
        record.update(status=error.status, error=str(error), figures=error.figures)
    except Exception:  # a bug in the suite or an unexpected JSON: the part fails, the suite goes on
        record.update(status="failed", error=traceback.format_exc())
    record["seconds"] = round(time.monotonic() - began, 1)
    record["commands"] = [{"name": o.name, "status": o.status, "seconds": round(o.seconds, 1), "log": o.log.name}
                          for o in run.outcomes]
    run.note(f"part {spec.name}: {record['status']} in {record['seconds']:.1f} s"
             + (f"\n{record['error']}" if record["error"] else ""))
    return record


def probe_or_explain(settings: Settings, env: dict[str, str]) -> dict[str, Any] | None:
    """The machine's torch and GPU, or None (with the reason on stderr) where no part could run."""
    try:
        machine = probe_machine(settings, env)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        print(f"gpu_suite: the machine probe failed, no part was run: {error}", file=sys.stderr)
        return None
    if settings.on_cuda and not machine["cuda_available"]:
        print(f"gpu_suite: --device {settings.device}, but torch {machine['torch']} sees no CUDA device",
              file=sys.stderr)
        return None
    return machine


def run_suite(settings: Settings) -> int:
    """0 when every chosen part is ok, 1 when one is not, 2 when none could run."""
    began = time.monotonic()
    settings.out.mkdir(parents=True, exist_ok=True)
    shims = write_import_shims(settings.work / "shims") if needs_stand_in(settings.as_gpu_machine) else None
    env = child_env(settings, shims)
    machine = probe_or_explain(settings, env)
    if machine is None:
        return EXIT_NO_PART_RUN
    records: list[dict[str, Any]] = []
    for spec in PARTS:
        if spec.name not in settings.parts:
            continue
        record = run_part(spec, settings, env, machine, settings.budget - (time.monotonic() - began))
        records.append(record)
        print(f"gpu_suite: part {spec.number} {spec.name}: {record['status']} in {record['seconds']:.1f} s", flush=True)
        write_summary(settings, machine, records, began)
        write_archive(settings)
    print(write_summary(settings, machine, records, began))
    write_archive(settings)
    return 0 if all(record["status"] == "ok" for record in records) else 1
