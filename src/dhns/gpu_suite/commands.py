"""A part's commands: each a subprocess in its own process group, logged, and stopped at its deadline.

Why process groups and deadlines: on the device machine a hung command would otherwise spend the one call's
10 minutes; ending its whole group (torchrun's workers too) lets the next part still run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhns.gpu_suite.settings import REPO, Settings

LOG_TAIL = 2000  # characters of a failed command's log quoted in the summary


class PartStopped(Exception):
    """A part ended early; `status` names how in the summary, `figures` keeps what it measured before that."""

    status = "failed"

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


class PartFailed(PartStopped):
    """A part stopped on a failed check; the message says which and why."""


class PartTimedOut(PartStopped):
    """A command ran past its timeout, or the part's deadline passed before a command could start."""

    status = "timed out"


@dataclass
class Outcome:
    """How one command ended, as the summary lists it."""

    name: str
    returncode: int | None
    seconds: float
    timed_out: bool
    log: Path
    started: bool = True  # False: the part's time was spent before it could start

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def status(self) -> str:
        if not self.started:
            return "not run"
        return "ok" if self.ok else "timed out" if self.timed_out else f"failed (exit {self.returncode})"


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the group this suite made for the command (PartRun.start), so its children get it too."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass  # nothing of it is left


def stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the command's process group (torchrun then stops its workers), then SIGKILL whatever is left."""
    signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    signal_group(process, signal.SIGKILL)
    process.wait()


ACTIVE: set[subprocess.Popen] = set()  # the commands running now: a signal handler has no other way to reach them


def stop_active(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT to the suite (e.g. the device tool's time limit): stop the running command's group too."""
    for process in list(ACTIVE):
        stop_group(process, grace=3.0)
    sys.exit(128 + signum)


def log_tail(path: Path, limit: int = LOG_TAIL) -> str:
    """The end of a log for an error message; empty where the command never wrote one."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def python(settings: Settings, *args: str | Path) -> list[str]:
    """An argv for the interpreter every part uses (--python), so no part picks its own."""
    return [settings.python, *map(str, args)]


@dataclass
class PartRun:
    """One part's folder, deadline and child environment; every command it runs is logged in part.log."""

    settings: Settings
    folder: Path
    deadline: float
    env: dict[str, str]
    command_timeout: float  # seconds, for a command that names none
    outcomes: list[Outcome] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def note(self, line: str) -> None:
        with (self.folder / "part.log").open("a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def start(self, name: str, argv: list[str], cwd: Path) -> tuple[subprocess.Popen, Path]:
        """Start a command in its own process group (same session, so a tool that ends the session ends it too)."""
        if self.remaining() < 1:
            raise PartTimedOut(f"no time left in the part for {name}")
        log = self.folder / f"{name}.log"
        self.note(f"$ (cd {cwd} && {' '.join(argv)})  > {log.name}")
        with log.open("w", encoding="utf-8") as handle:
            process = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=os.setpgrp)
        ACTIVE.add(process)
        return process, log

    def finish(self, name: str, process: subprocess.Popen, log: Path, began: float, timeout: float) -> Outcome:
        """Wait for a started command at most `timeout` (and the part's deadline); stop its group past that."""
        try:
            process.wait(timeout=max(0.0, min(timeout, self.remaining())))
            timed_out = False
        except subprocess.TimeoutExpired:
            stop_group(process)
            timed_out = True
        ACTIVE.discard(process)
        outcome = Outcome(name, process.returncode, time.monotonic() - began, timed_out, log)
        self.note(f"  -> {outcome.status} in {outcome.seconds:.1f} s")
        self.outcomes.append(outcome)
        return outcome

    def run(self, name: str, argv: list[str], cwd: Path = REPO, timeout: float | None = None,
            check: bool = True) -> Outcome:
        """Run a command to its end; with `check`, a failure or timeout stops the part with the log's tail."""
        began = time.monotonic()
        process, log = self.start(name, argv, cwd)
        outcome = self.finish(name, process, log, began, timeout or self.command_timeout)
        if check:
            require(outcome)
        return outcome


def require(outcome: Outcome) -> None:
    """Turn a failed or timed-out command into the exception that stops its part."""
    if outcome.timed_out:
        raise PartTimedOut(f"{outcome.name} timed out after {outcome.seconds:.0f} s (log {outcome.log.name})")
    if not outcome.ok:
        raise PartFailed(f"{outcome.name} exited {outcome.returncode} (log {outcome.log.name}):\n"
                         f"{log_tail(outcome.log)}")


def raise_if_any(failures: list[Outcome], figures: dict[str, Any]) -> None:
    """After a part that runs every row anyway: its worst row decides, and its figures still reach the summary."""
    if not failures:
        return
    error = PartTimedOut if any(o.timed_out for o in failures) else PartFailed
    raise error("; ".join(f"{o.name}: {o.status}" + (f" (log {o.log.name})" if o.started else "") for o in failures),
                figures)
