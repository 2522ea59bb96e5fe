"""Stand-in for dvclive where DVC is not installed: copied to <shims>/dvclive/__init__.py by the GPU suite.

Why: dhns.live imports dvclive, which imports dvc, and the GPU machine has neither. Only what dhns.live
calls is here: curves as plots/<stage>/metrics/<name>.tsv, tables as custom/<name>.json, and the summary
(with every curve's last value and `step`) in the metrics file, on `end()`. Standard library only, since
it runs where nothing else may be installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable


class Live:
    """dvclive.Live's constructor and the methods dhns.live uses, writing the same files."""

    def __init__(self, dir: str | Path = "dvclive", resume: bool = False, report: Any = None,  # noqa: A002
                 save_dvc_exp: bool = False, dvcyaml: Any = None, **_: Any) -> None:
        self._dir = str(dir)
        self.step = 0
        self.summary: dict[str, Any] = {}
        self._init_dvc()
        if not resume:  # as dvclive: a fresh run drops the old curves and summary
            for sub in ("metrics", "custom"):
                shutil.rmtree(Path(self.plots_dir) / sub, ignore_errors=True)
            Path(self.metrics_file).unlink(missing_ok=True)

    def _init_dvc(self) -> None:
        """dhns.live overrides this hook (as on the real Live); nothing to set up here."""

    @property
    def dir(self) -> str:
        return self._dir

    @property
    def metrics_file(self) -> str:
        return str(Path(self._dir) / "metrics.json")

    @property
    def plots_dir(self) -> str:
        return str(Path(self._dir) / "plots")

    def log_metric(self, name: str, value: Any, **_: Any) -> None:
        path = Path(self.plots_dir) / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "" if path.exists() else f"step\t{name}\n"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"{header}{self.step}\t{value}\n")
        self.summary[name] = value

    def next_step(self) -> None:
        self.step += 1

    def log_plot(self, name: str, datapoints: Iterable[Any], x: Any = None, y: Any = None, template: Any = None,
                 **_: Any) -> None:
        path = Path(self.plots_dir) / "custom" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({name: list(datapoints)}), encoding="utf-8")

    def end(self) -> None:
        path = Path(self.metrics_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.summary, "step": self.step}, indent=2, default=str), encoding="utf-8")
