"""The forest plot: paired differences per seed, their mean and 95% interval, drawn by `make compare`."""

from __future__ import annotations

import math

import pytest

from dhns.compare.__main__ import main as compare_main
from dhns.compare.cells import write_cell
from dhns.compare.forest import forest_rows, forest_spec, interval, t_quantile
from test_compare import cell


def test_the_interval_is_students_t_by_hand():
    mean, low, high = interval([0.01, 0.02, 0.03])
    half = 4.303 * 0.01 / math.sqrt(3)  # sample std 0.01, t(0.975, 2) = 4.303
    assert (mean, low, high) == pytest.approx((0.02, 0.02 - half, 0.02 + half))
    assert interval([0.5]) == (0.5, None, None)  # one seed: a point, no interval


def test_t_quantiles_come_from_the_table_and_err_wide_between_its_rows():
    assert t_quantile(4) == 2.776 and t_quantile(11) == 2.228 and t_quantile(100) == 1.96
    with pytest.raises(ValueError, match="at least 2 values"):
        t_quantile(0)


def test_rows_pair_each_dhns_form_with_the_best_classic_sampler_and_its_own_base():
    cells = [cell("dhns", 0, 0.40, 0.35), cell("dhns", 1, 0.38, 0.35),
             cell("bernoulli", 0, 0.39, 0.36), cell("bernoulli", 1, 0.36, 0.36),  # best on validation
             cell("self_adversarial", 0, 0.30, 0.30), cell("self_adversarial", 1, 0.33, 0.30),  # dhns's own base
             cell("dhns_per_view", 0, 0.41, 0.3)]
    points, summaries = forest_rows(cells, ["MKG-Y"], ["transe"])
    by_key = {(p["row"], p["comparison"], p["seed"]): p["difference"] for p in points}
    assert by_key[("MKG-Y TransE · reference form · fine-tune", "against the best classic sampler", 0)] == pytest.approx(0.01)
    assert by_key[("MKG-Y TransE · reference form · fine-tune", "against the best classic sampler", 1)] == pytest.approx(0.02)
    assert by_key[("MKG-Y TransE · reference form · fine-tune", "against its own base", 1)] == pytest.approx(0.05)
    assert by_key[("MKG-Y TransE · per-view form · fine-tune", "against its own base", 0)] == pytest.approx(0.11)
    assert len(points) == 6  # dhns: 2 seeds x 2 comparisons; dhns_per_view: seed 0 x 2
    dhns_best = next(s for s in summaries if s["arm"] == "dhns" and s["baseline"] == "bernoulli")
    assert (dhns_best["mean"], dhns_best["seeds"], dhns_best["wins"]) == (pytest.approx(0.015), 2, 2)
    spec = forest_spec(points, summaries)
    assert [panel["title"] for panel in spec["hconcat"]] == ["against the best classic sampler", "against its own base"]


def test_a_third_panel_pairs_dhns_with_the_best_cache_arm_on_validation_once_one_has_cells():
    """bernoulli_nscaching has the better validation MRR of the two cache arms (0.37): dhns minus it, 0.40 - 0.38."""
    cells = [cell("dhns", 0, 0.40, 0.35), cell("bernoulli", 0, 0.39, 0.36), cell("self_adversarial", 0, 0.30, 0.30),
             cell("nscaching", 0, 0.50, 0.20), cell("bernoulli_nscaching", 0, 0.38, 0.37)]
    points, summaries = forest_rows(cells, ["MKG-Y"], ["transe"])
    third = [p for p in points if p["comparison"] == "against the best cache of real hard negatives"]
    assert [(p["baseline"], p["difference"]) for p in third] == [("bernoulli_nscaching", pytest.approx(0.02))]
    best = next(p for p in points if p["comparison"] == "against the best classic sampler")
    assert best["baseline"] == "bernoulli"  # the cache arm's higher validation MRR does not make it the best classic
    spec = forest_spec(points, summaries)
    assert [panel["title"] for panel in spec["hconcat"]][-1] == "against the best cache of real hard negatives"


def test_joint_rows_sit_beside_the_fine_tune_rows_of_the_same_form_coloured_by_protocol():
    cells = [cell("bernoulli", 0, 0.36, 0.35), cell("self_adversarial", 0, 0.35, 0.34), cell("dhns_per_view", 0, 0.365, 0.3),
             cell("joint_bernoulli", 0, 0.372, 0.342), cell("joint_self_adversarial", 0, 0.365, 0.337),
             cell("joint_dhns_per_view_strided", 0, 0.3735, 0.346),
             cell("joint_dhns_per_view", 0, 0.3800, 0.346)]  # the full-chain check: not one of the figure's rows
    points, summaries = forest_rows(cells, ["MKG-Y"], ["transe"])
    by_key = {(p["row"], p["comparison"]): p["difference"] for p in points}
    assert list(dict.fromkeys(p["row"] for p in points)) == [
        "MKG-Y TransE · per-view form · fine-tune", "MKG-Y TransE · per-view form · joint from scratch"]
    assert by_key[("MKG-Y TransE · per-view form · fine-tune", "against the best classic sampler")] == pytest.approx(0.005)
    joint = "MKG-Y TransE · per-view form · joint from scratch"
    assert by_key[(joint, "against the best classic sampler")] == pytest.approx(0.3735 - 0.372)
    assert by_key[(joint, "against its own base")] == pytest.approx(0.3735 - 0.365)
    spec = forest_spec(points, summaries)
    colour = spec["hconcat"][0]["layer"][3]["encoding"]["color"]
    assert colour["scale"]["domain"] == ["fine-tune", "joint from scratch"]


def test_make_compare_draws_the_forest_plot_beside_the_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "docs" / "results"
    for arm, mrr in (("dhns", 0.31), ("self_adversarial", 0.30), ("bernoulli", 0.29)):
        write_cell(cell(arm, 0, mrr, 0.3), results)
    assert compare_main(["--seeds", "0"]) == 0
    svg = (results / "forest.svg").read_text()
    assert "against its own base" in svg and "MKG-Y TransE · reference form · fine-tune" in svg
    assert (results / "forest.png").read_bytes()[:4] == b"\x89PNG"
