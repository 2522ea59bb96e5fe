"""The suite's command line: options, their checks, and the entry point behind scripts/gpu_suite.py.

Why signal handlers here: the device tool ends a call past its limit with SIGTERM, and the command then
running sits in its own process group, which only the suite can stop.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import dhns.gpu_suite
from dhns.gpu_suite.commands import stop_active
from dhns.gpu_suite.registry import PART_NAMES
from dhns.gpu_suite.settings import Settings
from dhns.gpu_suite.suite import run_suite


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options; the description is the first line of the package's docstring."""
    description = (dhns.gpu_suite.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", type=Path, required=True, help="folder for the summary and every log and figure")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--tiny", action="store_true", help="shrink every part (the CPU form; well under 2 minutes)")
    parser.add_argument("--parts", default=",".join(PART_NAMES), help=f"subset of {','.join(PART_NAMES)}")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per bench phase (default 3; tiny 1)")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for the whole suite; later parts are cut short or skipped past it (the device "
                             "tool allows 600 per command)")
    parser.add_argument("--archive", type=Path, default=None,
                        help="after every part, write --out as this .tar.gz and copy summary.md/.json beside it "
                             "(the device tool brings back at most 8 files)")
    parser.add_argument("--as-gpu-machine", action="store_true",
                        help="import as on the GPU machine: dvclive is the stand-in and dvc, open_clip, ... refuse "
                             "to import (automatic where dvclive is not installed)")
    parser.add_argument("--keep-work", action="store_true", help="keep the temp projects (printed at the end)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for every part")
    return parser


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> tuple[Settings, bool]:
    """Settings and --keep-work; bad --parts, --batches or --budget end here with argparse's usage error."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    unknown = sorted(set(parts) - set(PART_NAMES))
    if unknown:
        parser.error(f"--parts {','.join(unknown)}: expected a subset of {','.join(PART_NAMES)}")
    batches = args.batches if args.batches is not None else 1 if args.tiny else 3
    if batches < 1 or args.budget <= 0:
        parser.error("--batches and --budget must be positive")
    settings = Settings(device=args.device, tiny=args.tiny, out=args.out.resolve(),
                        work=Path(tempfile.mkdtemp(prefix="gpu-suite-")), python=args.python, batches=batches,
                        budget=args.budget, as_gpu_machine=args.as_gpu_machine,
                        archive=args.archive.resolve() if args.archive else None, parts=parts)
    return settings, args.keep_work


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the suite; the temp projects go afterwards unless --keep-work."""
    settings, keep_work = parse_args(argv, prog)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_active)
    try:
        return run_suite(settings)
    finally:
        if keep_work:
            print(f"gpu_suite: temp projects kept in {settings.work}")
        else:
            shutil.rmtree(settings.work, ignore_errors=True)
