"""What `dvc plots show` renders: the hardness-level score densities of the diffusion stage."""

from __future__ import annotations

import pytest
import torch

from dhns.diffusion.report import score_histogram_rows


def test_hardness_histogram_rows_are_densities_per_view_and_step() -> None:
    scores = {("text", "tail"): {"full": {0: torch.tensor([1.0, 2.0, 2.5]), 5: torch.tensor([-3.0, -1.0, 0.0, 0.5])},
                                 "strided": {0: torch.tensor([2.0, 3.0]), 5: torch.tensor([-2.0])}}}
    rows = score_histogram_rows(scores, bins=8)
    assert {row["view"] for row in rows} == {"text/tail"} and len(rows) == 32
    assert {row["panel"] for row in rows} == {"text/tail | full", "text/tail | strided"}
    width = (3.0 - -3.0) / 8  # both chains' curves of a view share bins: from the lowest to the highest score
    assert sorted({row["score"] for row in rows})[0] == pytest.approx(-3.0 + width / 2, abs=1e-5)
    for chain in ("full", "strided"):
        for step in (0, 5):
            curve = [row for row in rows if row["steps_left"] == step and row["chain"] == chain]
            assert sum(row["density"] for row in curve) * width == pytest.approx(1.0, abs=1e-4)
    full = [row for row in rows if row["chain"] == "full"]
    mean = {step: sum(r["score"] * r["density"] for r in full if r["steps_left"] == step) * width for step in (0, 5)}
    assert mean[0] > mean[5]  # the hardest level's scores sit to the right


# --- python -m dhns.plots: DVC's filled specs drawn offline ---

def line_spec(title: str) -> dict:
    """A filled spec as `dvc plots show --json` gives it, with a negative value (U+2212 on the axis)."""
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title, "mark": "line",
            "data": {"values": [{"step": 1, "loss": -0.5}, {"step": 2, "loss": 0.25}]},
            "encoding": {"x": {"field": "step", "type": "quantitative"},
                         "y": {"field": "loss", "type": "quantitative"}}}


SHOWN = {
    "data": {
        "plots/pretrain/metrics/loss.tsv": [{"type": "vega", "revisions": ["workspace"], "content": line_spec("a")}],
        "plots/pretrain/metrics/valid_mrr.tsv": [{"type": "vega", "content": line_spec("b")}],
        "plots/diffusion/custom/hardness.json": [{"type": "vega", "content": line_spec("c")}],
        "plots/figures/confusion.png": [{"type": "image", "url": "plots/figures/confusion.png"}],
        "plots/train/metrics": [],
    },
    "errors": [{"name": "plots/train/metrics", "type": "PlotMetricTypeError", "msg": "'plots/train/metrics' - "
                "file type error\nOnly JSON, YAML, CSV and TSV formats are supported."}],
}


def test_targets_pick_files_and_folders_in_their_order_and_errors_are_kept() -> None:
    from dhns.plots import vega_plots

    plots, errors = vega_plots(SHOWN)
    assert [plot.name for plot in plots] == ["pretrain-metrics-loss", "pretrain-metrics-valid_mrr",
                                             "diffusion-custom-hardness"]  # the image entry is no Vega spec
    assert errors == ["plots/train/metrics: 'plots/train/metrics' - file type error Only JSON, YAML, CSV and TSV "
                      "formats are supported."]
    picked, _ = vega_plots(SHOWN, ["plots/diffusion/custom/hardness.json", "plots/pretrain/metrics/"])
    assert [plot.source for plot in picked] == ["plots/diffusion/custom/hardness.json",
                                                "plots/pretrain/metrics/loss.tsv",
                                                "plots/pretrain/metrics/valid_mrr.tsv"]
    assert vega_plots(SHOWN, ["plots/pretrain/metric"])[0] == []  # a prefix of a name is not a folder
    two = {"data": {"plots/train/valid.csv": [{"type": "vega", "content": line_spec(y)} for y in "ab"]}}
    assert [plot.name for plot in vega_plots(two)[0]] == ["train-valid-1", "train-valid-2"]  # one spec per y field


def test_rendered_files_and_the_page_need_no_network(tmp_path) -> None:
    from PIL import Image

    from dhns.plots import main

    shown = tmp_path / "shown.json"
    shown.write_text(__import__("json").dumps(SHOWN), encoding="utf-8")
    out = tmp_path / "rendered"
    assert main(["--from-json", str(shown), "--out", str(out), "--figure", str(tmp_path / "figure.png"),
                 "--scale", "1", "plots/pretrain/metrics"]) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "index.html", "pretrain-metrics-loss.png", "pretrain-metrics-loss.svg",
        "pretrain-metrics-valid_mrr.png", "pretrain-metrics-valid_mrr.svg"]
    svg = (out / "pretrain-metrics-loss.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "\u22120.5" in svg  # the minus sign survives as UTF-8
    single = Image.open(out / "pretrain-metrics-loss.png")
    assert Image.open(tmp_path / "figure.png").size == (2 * single.width, single.height)  # two per row
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<script src" not in page and "<link" not in page and "window.vegaEmbed=" in page
    assert page.count("<section>") == 2 and '"title": "b"' in page


def test_nothing_to_render_is_an_error(tmp_path, capsys) -> None:
    from dhns.plots import main

    shown = tmp_path / "shown.json"
    shown.write_text('{"data": {}, "errors": [{"name": "plots/x.tsv", "msg": "missing"}]}', encoding="utf-8")
    assert main(["--from-json", str(shown), "--out", str(tmp_path / "out")]) == 1
    assert "plots/x.tsv: missing" in capsys.readouterr().err and not (tmp_path / "out").exists()
