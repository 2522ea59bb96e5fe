"""The scaling sweep: seconds per epoch on synthetic graphs of growing size, its table, CSV and SVG chart."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from dhns.bench.config import BenchConfig
from dhns.bench.floors import against_floor, entity_width, optimizer_floor_bytes, training_floor_bytes
from dhns.bench.inputs import synthetic_graph
from dhns.bench.settings import bench_params, dhns_settings, diffusion_settings, pretrain_settings
from dhns.bench.stages import build_model, kgc_phase, make_generator
from dhns.bench.timing import memory_bandwidth, memory_peaks, reset_peaks
from dhns.config import PretrainConfig
from dhns.sampling import make_sampler

LINEARITY_TOLERANCE = 1.5  # max / min seconds per 1k triples over the sweep still called linear


FLOOR_TARGET = 3.0  # a sparse optimizer's step within this multiple of its memory floor at every entity count
TOUCH_SAMPLES = 4  # batches drawn to count the entity rows a step touches


def run_sweep(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Seconds per epoch and per step of the pretrain step (and the dhns step) on synthetic graphs, each step
    beside its memory floor.

    Every entity count runs every size: along the sizes the batch's work is fixed and the epoch should grow
    linearly; along the entity counts the epoch's triples are fixed, so a step that costs more there pays
    for the table (dense gradients, an optimizer pass over every row), not for its batch. How much of that
    growth is real work says the floor: the bytes the step must move (its candidates and positives, forward
    and backward, and the table rows its optimizer updates: every row under dense Adam, the distinct rows the
    batch touched under a sparse one) at the memory bandwidth measured in the same run.
    """
    bandwidth = memory_bandwidth(device)
    rows = [row for entities in config.sweep_entities for row in _sweep_rows(config, device, entities, bandwidth)]
    return {"rows": rows, "bandwidth": bandwidth, "floor_target": FLOOR_TARGET, **linearity(rows),
            **entity_scaling(rows)}


def touched_rows(config: BenchConfig, settings: PretrainConfig, train: torch.Tensor, num_entities: int,
                 num_relations: int) -> float:
    """Mean distinct entity rows of a step's batch (heads, tails and the sampler's negatives), over a few
    batches drawn as training draws them: what a sparse optimizer must move."""
    sampler = make_sampler(settings.negatives.corruption, train, num_entities, num_relations, settings.num_negatives)
    rng = torch.Generator(device=train.device).manual_seed(config.seed)
    counts = []
    for _ in range(TOUCH_SAMPLES):
        batch = train[torch.randint(train.shape[0], (min(config.batch_size, train.shape[0]),), device=train.device,
                                    generator=rng)]
        negatives = sampler.sample(batch, rng)
        counts.append(torch.unique(torch.cat([batch[:, 0], batch[:, 2], negatives.entities.reshape(-1)])).numel())
    return sum(counts) / len(counts)


def step_floor(config: BenchConfig, settings: PretrainConfig, rows: float, num_entities: int,
               bandwidth: dict[str, float], seconds_per_step: float) -> dict[str, Any]:
    """The step's least bytes (batch traffic plus the optimizer's rows) and the measured step against them."""
    width = entity_width(config.model, config.dim)
    relation_width = config.dim
    batch_bytes = training_floor_bytes(config.batch_size, config.num_negatives, width, relation_width)
    table_bytes = optimizer_floor_bytes(settings.optimizer, round(rows), num_entities, width)
    floor = against_floor(seconds_per_step, batch_bytes + table_bytes, bandwidth["bytes_per_second"])
    return {"rows_touched": rows, "optimizer": settings.optimizer, "batch_floor_bytes": batch_bytes,
            "table_floor_bytes": table_bytes, **floor}


def _sweep_rows(config: BenchConfig, device: torch.device, entities: int, bandwidth: dict[str, float]) -> list[dict]:
    rows = []
    params = bench_params(config)
    for size in config.sweep_sizes:
        graph = synthetic_graph(size, entities, config.sweep_relations, config.seed)
        model = build_model(config, params, graph, device)
        train = graph.train.to(device)
        reset_peaks(device)
        settings = pretrain_settings(config, params)
        pretrain = kgc_phase(config, model, train, settings, config.sweep_batches)
        row = {"triples": size, "entities": graph.num_entities, "relations": graph.num_relations,
               "batches_per_epoch": pretrain["batches_per_epoch"], "measured_batches": pretrain["measured_batches"],
               "extrapolated": pretrain["extrapolated"], "sampler_setup_seconds": pretrain["sampler_setup_seconds"],
               "seconds_per_epoch": pretrain["seconds_per_epoch"], "seconds_per_step": pretrain["seconds_per_batch"],
               "seconds_per_1k_triples": 1000 * pretrain["seconds_per_epoch"] / size}
        rows_touched = touched_rows(config, settings, train, graph.num_entities, graph.num_relations)
        row.update(step_floor(config, settings, rows_touched, graph.num_entities, bandwidth,
                              pretrain["seconds_per_batch"]))
        if config.sweep_dhns:
            generator = make_generator(model, diffusion_settings(config, params))
            settings = dhns_settings(config, params)
            dhns = kgc_phase(config, model, train, settings, config.sweep_batches, generator)
            row.update(dhns_seconds_per_epoch=dhns["seconds_per_epoch"],
                       dhns_seconds_per_1k_triples=1000 * dhns["seconds_per_epoch"] / size)
        rows.append(row | memory_peaks(device))
        del model, train, graph  # the next graph's table must not sit beside this one's in the peak
    return rows


def linearity(rows: Sequence[dict]) -> dict[str, Any]:
    """Spread (max / min) of seconds per 1k triples; within LINEARITY_TOLERANCE the growth is called linear.

    Judged on the pretrain step, within each entity count (the worst of them); the dhns step's spread is
    reported beside it when it was timed.
    """
    groups: dict[int, list[float]] = {}
    for row in rows:
        groups.setdefault(row["entities"], []).append(row["seconds_per_1k_triples"])
    spread = max(max(per_1k) / min(per_1k) for per_1k in groups.values())
    result = {"spread": spread, "linear": spread <= LINEARITY_TOLERANCE, "tolerance": LINEARITY_TOLERANCE}
    dhns = [row["dhns_seconds_per_1k_triples"] for row in rows if "dhns_seconds_per_1k_triples" in row]
    if dhns:
        result["dhns_spread"] = max(dhns) / min(dhns)
    return result


def entity_scaling(rows: Sequence[dict]) -> dict[str, Any]:
    """Seconds per step at each entity count over that at the smallest, on the smallest size both ran."""
    counts = sorted({row["entities"] for row in rows})
    if len(counts) < 2:
        return {}
    size = min(row["triples"] for row in rows)
    step = {row["entities"]: row["seconds_per_step"] for row in rows if row["triples"] == size}
    return {"entity_scaling": {"triples": size, "rows": [
        {"entities": n, "seconds_per_step": step[n], "over_smallest": step[n] / step[counts[0]]} for n in counts]}}


def sweep_table(sweep: dict) -> str:
    """Markdown table, one row per size."""
    dhns = any("dhns_seconds_per_epoch" in row for row in sweep["rows"])
    header = ["triples", "entities", "batches", "timed batches", "s per epoch", "s per step", "s per 1k triples",
              "rows touched", "floor MB", "x floor", "sampler setup s", "peak RSS MiB"]
    header += ["dhns s per epoch", "dhns s per 1k"] if dhns else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sweep["rows"]:
        cells = [f"{row['triples']:,}", f"{row['entities']:,}", str(row["batches_per_epoch"]),
                 str(row["measured_batches"]), f"{row['seconds_per_epoch']:.3f}", f"{row['seconds_per_step']:.4f}",
                 f"{row['seconds_per_1k_triples']:.4f}", f"{row['rows_touched']:,.0f}",
                 f"{row['floor_bytes'] / 1e6:.1f}", f"{row['times_floor']:.2f}", f"{row['sampler_setup_seconds']:.3f}",
                 f"{row['peak_host_rss_mib']:.0f}"]
        if dhns:
            cells += [f"{row['dhns_seconds_per_epoch']:.3f}", f"{row['dhns_seconds_per_1k_triples']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_sweep_csv(path: Path, sweep: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["triples", "entities", "batches_per_epoch", "measured_batches", "seconds_per_epoch", "seconds_per_step",
               "seconds_per_1k_triples", "rows_touched", "floor_bytes", "floor_seconds", "times_floor",
               "sampler_setup_seconds", "dhns_seconds_per_epoch", "peak_host_rss_mib"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sweep["rows"])


def write_sweep_svg(path: Path, sweep: dict, width: int = 480, height: int = 320) -> None:
    """A log-log chart of seconds per epoch against training triples, with the linear-growth line.

    Hand-written SVG (no plotting dependency): measured points joined, and a dashed line of slope 1
    through the smallest size; points on that line mean time grows linearly with the graph.
    """
    rows = sorted(sweep["rows"], key=lambda row: row["triples"])
    xs = [math.log10(row["triples"]) for row in rows]
    ys = [math.log10(row["seconds_per_epoch"]) for row in rows]
    ideal = [ys[0] + (x - xs[0]) for x in xs]
    x_low, x_high = min(xs) - 0.2, max(xs) + 0.2
    y_low, y_high = min(ys + ideal) - 0.3, max(ys + ideal) + 0.3
    margin = 56

    def point(x: float, y: float) -> str:
        px = margin + (x - x_low) / (x_high - x_low) * (width - 2 * margin)
        py = height - margin - (y - y_low) / (y_high - y_low) * (height - 2 * margin)
        return f"{px:.1f},{py:.1f}"

    ticks = []
    for row, x, y in zip(rows, xs, ys):
        px, py = point(x, y).split(",")
        ticks.append(f'<circle cx="{px}" cy="{py}" r="4" fill="#1f77b4"/>'
                     f'<text x="{px}" y="{height - margin + 18}" text-anchor="middle" font-size="11">{row["triples"]:,}</text>'
                     f'<text x="{float(px) + 8:.1f}" y="{float(py) - 8:.1f}" font-size="11">{row["seconds_per_epoch"]:.2f} s</text>')
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="black"/>
<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>
<polyline points="{' '.join(point(x, y) for x, y in zip(xs, ideal))}" fill="none" stroke="gray" stroke-dasharray="5,4"/>
<polyline points="{' '.join(point(x, y) for x, y in zip(xs, ys))}" fill="none" stroke="#1f77b4" stroke-width="2"/>
{''.join(ticks)}
<text x="{width / 2}" y="{height - 12}" text-anchor="middle" font-size="12">training triples (log scale)</text>
<text x="16" y="{height / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {height / 2})">seconds per epoch (log)</text>
<text x="{width / 2}" y="22" text-anchor="middle" font-size="13">epoch time vs graph size; dashed: linear growth</text>
</svg>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
