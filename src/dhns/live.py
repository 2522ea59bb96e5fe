"""A stage's curves and summary through dvclive: one `Live` per stage, one step per epoch.

Layout (what dvc.yaml declares): `plots/<stage>/metrics/<name>.tsv` holds one curve per logged value
(step = epoch), `plots/<stage>/custom/<name>.json` a table such as the hardness densities, and
`metrics/<stage>.json` the summary (the stage's report, plus the last value of each curve and dvclive's
`step`). dvclive's defaults would put the summary at `<dir>/metrics.json` and the curves under
`<dir>/plots/`; the subclass keeps the project's `metrics/<stage>.json`, which tests, the docs and
`dvc metrics diff` already name.

Resuming: `dvc repro` deletes a stage's outputs before rerunning it, so a killed stage's curves are gone
when it resumes, and `Live(resume=True)` would restart the curve at the resumed epoch. The checkpoint
holds the history of every epoch it covers instead: the stage replays it (`log_history`) into a fresh
`Live` before training continues, so the curve is one run, with each epoch once, however it was killed.

Inside `dvc repro` or `dvc exp run` dvclive must not edit dvc.yaml, save an experiment or write a report:
DVC owns all three here.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Iterable, Mapping

from dvclive import Live

from dhns.pipeline.paths import metrics_file, plots_dir

# history keys renamed on the way to dvclive: the summary's `seconds` is the stage's total time
CURVE_NAMES = {"seconds": "epoch_seconds"}


class _StageLive(Live):
    """`Live` whose summary file is `metrics/<stage>.json` and whose curves sit directly in `plots/<stage>/`."""

    def __init__(self, stage: str, root: Path) -> None:
        self._summary_file = root / metrics_file(stage)  # read by Live.__init__'s cleanup
        super().__init__(dir=str(root / plots_dir(stage)), resume=False, report=None, save_dvc_exp=False,
                         dvcyaml=None)

    def _init_dvc(self) -> None:
        """Skip dvclive's own DVC integration: here it could only get in the way.

        It opens the DVC repository inside a stage DVC is running, to name an experiment, save one, or
        edit dvc.yaml, all of which are off here (DVC tracks these files as the stage's outputs). And in a
        git repository without a commit yet, dvclive 3.49 raises "Empty git repo" from it
        (treeverse/dvclive#522), where `dvc repro` itself runs fine.
        """

    @property
    def metrics_file(self) -> str:
        return str(self._summary_file)

    @property
    def plots_dir(self) -> str:
        return self.dir


class StageCurves:
    """One stage's dvclive logger; with `enabled` False (ranks other than 0) every call does nothing.

    Use it as a context manager: leaving it ends the `Live`, which writes the summary (also on an error,
    so a failed run leaves the curve as far as it got).
    """

    def __init__(self, stage: str, enabled: bool = True, root: Path | str = ".") -> None:
        self._live = _StageLive(stage, Path(root)) if enabled else None

    def __enter__(self) -> "StageCurves":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._live is not None:
            self._live.end()

    def log_epoch(self, record: Mapping[str, object]) -> None:
        """Every number in an epoch's record except `epoch` itself, at step = epoch."""
        if self._live is None:
            return
        self._live.step = int(record["epoch"])
        for name, value in record.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._live.log_metric(CURVE_NAMES.get(name, name), value)
        self._live.next_step()

    def log_history(self, history: Iterable[Mapping[str, object]]) -> None:
        """The epochs a resumed checkpoint already ran, so the curve starts at epoch 1, not at the resume."""
        for record in history:
            self.log_epoch(record)

    def log_table(self, name: str, rows: list[dict], x: str, y: str, template: str | None = None) -> None:
        """A long-format table (`plots/<stage>/custom/<name>.json`); its template is declared in dvc.yaml."""
        if self._live is not None:
            self._live.log_plot(name, rows, x=x, y=y, template=template)

    def set_summary(self, report: Mapping[str, object]) -> None:
        """The stage's report joins the summary; its keys win over a curve's last value of the same name."""
        if self._live is not None:
            self._live.summary.update(report)
