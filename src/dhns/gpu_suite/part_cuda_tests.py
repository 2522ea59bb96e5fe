"""Part 5: `pytest -m cuda`, the tests that skip without a GPU, so CI never runs them.

First in the run order: it is the cheapest check and the one most likely to catch a CUDA-only bug.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from dhns.gpu_suite.commands import PartFailed, PartRun, log_tail, python, require
from dhns.gpu_suite.settings import REPO


def marked_test_files() -> list[Path]:
    """The test files that carry `@pytest.mark.cuda`: collecting all would import modules that need dvc."""
    return sorted(path for path in (REPO / "tests").rglob("test_*.py")
                  if "pytest.mark.cuda" in path.read_text(encoding="utf-8"))


def junit_counts(path: Path) -> dict[str, int]:
    """Counts from pytest's JUnit XML: exit codes alone cannot tell 'all skipped' from 'all passed'."""
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise PartFailed(f"{path} holds no testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["run"] = counts["tests"] - counts["skipped"]
    counts["passed"] = counts["run"] - counts["failures"] - counts["errors"]
    return counts


def part_cuda_tests(run: PartRun, machine: dict[str, Any]) -> dict[str, Any]:
    """The marked tests; on CUDA at least one must really run, else the GPU checked nothing."""
    files = marked_test_files()
    if not files:
        raise PartFailed("no test file carries @pytest.mark.cuda")
    report = run.folder / "cuda-tests.xml"
    argv = python(run.settings, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                  f"--junitxml={report}", *(str(f.relative_to(REPO)) for f in files))
    outcome = run.run("pytest-cuda", argv, check=False)
    if outcome.timed_out or not report.is_file():
        require(outcome)
        raise PartFailed(f"pytest wrote no {report.name} (log {outcome.log.name})")
    counts: dict[str, Any] = junit_counts(report) | {"files": [str(f.relative_to(REPO)) for f in files]}
    if counts["failures"] or counts["errors"] or outcome.returncode != 0:
        raise PartFailed(f"pytest -m cuda: {counts} (exit {outcome.returncode}, log {outcome.log.name}):\n"
                         f"{log_tail(outcome.log)}")
    if run.settings.on_cuda and machine.get("cuda_available") and counts["run"] == 0:
        raise PartFailed("on CUDA every cuda-marked test was skipped")
    return counts
