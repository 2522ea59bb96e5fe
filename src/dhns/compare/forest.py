"""The comparison as one picture: a forest plot of each DHNS arm's paired test MRR difference.

For each (dataset, scorer) with cells, each protocol and each DHNS form (the reference and the per-view
hard loss, as that protocol's grid runs them), up to three comparisons, one panel each: against the best classic
sampler (chosen on validation, as in the tables), against the arm's own base (the classic sampler it adds its hard
loss to) and, once a cache arm (NSCaching) has cells, against the best of those on validation. Every seed's difference is
a point, the mean a larger mark with its 95% interval (Student's t over the seeds), coloured by protocol,
zero a rule: a reader sees at a glance which intervals clear zero, and whether the protocol changes that. `make compare` writes `docs/results/forest.svg` and `.png`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from dhns.compare.arms import FORM_NAMES, OWN_BASE, PROTOCOLS
from dhns.compare.tables import best_baseline, best_cache_arm, grid_order, group_cells, paired_difference

COMPARISONS = ("against the best classic sampler", "against its own base",
               "against the best cache of real hard negatives")  # the third panel only once a cache arm has cells
# Student's t, two-sided 95% (the 0.975 quantile), by degrees of freedom; beyond the table the normal's 1.96
# is within 2% from 60 on. Published values (e.g. any statistics table), not computed here.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}
VEGA_LITE_VERSION = "5.21"
SCORER_NAMES = {"transe": "TransE", "rotate": "RotatE", "distmult": "DistMult"}
PROTOCOL_COLOURS = {"fine-tune": "#1f5fa8", "joint from scratch": "#c2571a"}


def t_quantile(degrees: int) -> float:
    """The two-sided 95% quantile of Student's t; between table rows, the next smaller row's (wider) value."""
    if degrees < 1:
        raise ValueError(f"a t interval needs at least 2 values, got {degrees + 1}")
    known = [d for d in T_975 if d <= degrees]
    return T_975[max(known)] if degrees <= max(T_975) else 1.96


def interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean and its 95% interval (mean -+ t s / sqrt(n)); no interval for a single value."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None, None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = t_quantile(len(values) - 1) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def forest_rows(cells: Sequence[Mapping], datasets: Sequence[str],
                scorers: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(seed points, summaries): one point per seed and one summary per (panel, row) with cells to pair.

    Rows run dataset, scorer, form, protocol: a form's two protocols sit next to each other.
    """
    by_protocol = [(protocol, group_cells(protocol.arm_names(cells))) for protocol in PROTOCOLS]
    points, summaries = [], []
    for dataset, scorer in grid_order(group_cells(cells), datasets, scorers):
        for index in range(len(PROTOCOLS[0].forms)):
            for protocol, groups in by_protocol:
                arms = groups.get((dataset, scorer)) or {}
                arm, best = protocol.forms[index], best_baseline(arms)
                if not arms.get(arm):
                    continue
                label = f"{dataset} {SCORER_NAMES.get(scorer, scorer)} · {FORM_NAMES[arm]} · {protocol.title}"
                for comparison, other in zip(COMPARISONS, (best, OWN_BASE[arm], best_cache_arm(arms))):
                    paired = paired_difference(arms[arm], arms.get(other) or {}) if other else None
                    if paired is None or not paired.seeds:
                        continue
                    common = {"row": label, "comparison": comparison, "arm": arm, "baseline": other,
                              "protocol": protocol.title}
                    points += [{**common, "seed": seed, "difference": difference}
                               for seed, difference in zip(paired.seeds, paired.differences)]
                    mean, low, high = interval(paired.differences)
                    summaries.append({**common, "mean": mean, "low": low, "high": high,
                                      "seeds": len(paired.seeds), "wins": paired.wins})
    return points, summaries


def forest_spec(points: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """A Vega-Lite spec: a panel per comparison, a row per (dataset, scorer, arm), zero marked."""
    order = list(dict.fromkeys(point["row"] for point in points))
    y = {"field": "row", "type": "nominal", "sort": order, "title": None}
    with_interval = [s for s in summaries if s["low"] is not None]
    present = list(dict.fromkeys(point["protocol"] for point in points))
    colour = {"field": "protocol", "type": "nominal", "title": "protocol",
              "scale": {"domain": present, "range": [PROTOCOL_COLOURS.get(name, "#555") for name in present]}}
    layers = [
        {"data": {"values": [{"zero": 0.0}]}, "mark": {"type": "rule", "color": "#444", "strokeDash": [4, 3]},
         "encoding": {"x": {"field": "zero", "type": "quantitative"}}},
        {"data": {"values": with_interval}, "mark": {"type": "rule", "strokeWidth": 2},
         "encoding": {"y": y, "x": {"field": "low", "type": "quantitative"}, "x2": {"field": "high"},
                      "color": colour}},
        {"data": {"values": points}, "mark": {"type": "point", "opacity": 0.55, "size": 30, "color": "#777"},
         "encoding": {"y": y, "x": {"field": "difference", "type": "quantitative"},
                      "tooltip": [{"field": "seed"}, {"field": "difference", "format": "+.4f"}]}},
        {"data": {"values": summaries},
         "mark": {"type": "point", "filled": True, "size": 90, "shape": "diamond", "opacity": 1},
         "encoding": {"y": y, "color": colour, "x": {"field": "mean", "type": "quantitative",
                                    "title": "paired test MRR difference (DHNS arm minus the other)"},
                      "tooltip": [{"field": "arm"}, {"field": "baseline"}, {"field": "mean", "format": "+.4f"},
                                  {"field": "seeds"}, {"field": "wins"}]}},
    ]
    protocols = " and ".join(present)
    panels = []
    for comparison in (c for c in COMPARISONS if any(p["comparison"] == c for p in points)):
        panel_layers = [_only(layer, comparison) for layer in layers]
        if panels:  # the rows are shared: only the first panel names them
            panel_layers = [_without_row_labels(layer) for layer in panel_layers]
        panels.append({"title": comparison, "width": 300, "height": {"step": 18}, "layer": panel_layers})
    return {"$schema": f"https://vega.github.io/schema/vega-lite/v{VEGA_LITE_VERSION.split('.')[0]}.json",
            "title": {"text": "Does DHNS help? Paired test MRR difference per seed (grey), mean and 95% interval",
                      "subtitle": f"protocols: {protocols}; filtered, both directions, realistic ties; zero dashed"},
            "hconcat": panels, "resolve": {"scale": {"x": "independent", "y": "shared"}},
            "config": {"font": "sans-serif", "axisY": {"labelLimit": 320}}}


def _without_row_labels(layer: dict[str, Any]) -> dict[str, Any]:
    encoding = layer.get("encoding", {})
    if "y" not in encoding:
        return layer
    return {**layer, "encoding": {**encoding, "y": {**encoding["y"], "axis": {"labels": False, "ticks": False}}}}


def _only(layer: dict[str, Any], comparison: str) -> dict[str, Any]:
    """The layer with its data cut to one panel's comparison (the zero rule has none to cut)."""
    values = layer["data"]["values"]
    if values and "comparison" not in values[0]:
        return layer
    return {**layer, "data": {"values": [v for v in values if v["comparison"] == comparison]}}


def write_forest(cells: Sequence[Mapping], datasets: Sequence[str], scorers: Sequence[str], folder: Path,
                 name: str = "forest") -> list[Path]:
    """`<folder>/<name>.svg` and `.png`; nothing (an empty list) while no DHNS arm has a paired cell."""
    import vl_convert  # imported here: tabulating cells needs no renderer

    points, summaries = forest_rows(cells, datasets, scorers)
    if not points:
        return []
    spec = forest_spec(points, summaries)
    folder.mkdir(parents=True, exist_ok=True)
    svg, png = folder / f"{name}.svg", folder / f"{name}.png"
    svg.write_text(vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE_VERSION), encoding="utf-8")
    png.write_bytes(vl_convert.vegalite_to_png(spec, vl_version=VEGA_LITE_VERSION, scale=2))
    return [svg, png]
