"""summary.json and summary.md: what the device tool brings back, rewritten after every part.

Why per-part lines live here rather than in the parts: the parts return plain figures (JSON), and how a
reader sees them (headline, tables, units) is the report's one concern.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

from dhns.gpu_suite.environment import dvclive_status
from dhns.gpu_suite.peaks import SPEC_PEAKS
from dhns.gpu_suite.settings import Settings

Figures = dict[str, Any]


def _flops(value: float | None) -> str:
    if value is None:
        return "n/a"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}FLOP/s"
    return f"{value:.0f} FLOP/s"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _same(comparison: dict[str, Any]) -> str:
    return "bytes identical" if comparison["bytes_identical"] else f"max diff {comparison['max_abs_difference']:.2g}"


def bench_headline(model: str, rows: list[dict[str, Any]]) -> str:
    """'distmult fp32/tf32/bf16: train 8.1/2.0/1.5 s/epoch, chain 46/211/248 TFLOP/s'."""
    def each(value: Callable[[dict[str, Any]], str]) -> str:
        return "/".join(value(row) if row["status"] == "ok" else row["status"] for row in rows)

    return (f"{model} {'/'.join(row['precision'] for row in rows)}: train "
            f"{each(lambda row: format(row['seconds_per_epoch']['train'], '.3g'))} s/epoch, chain "
            f"{each(lambda row: _flops(row['chain_flops_per_second']))}")


def bench_headlines(figures: Figures) -> str:
    """One headline per model, in the order the rows ran."""
    rows = figures["rows"]
    return "; ".join(bench_headline(model, [row for row in rows if row["model"] == model])
                     for model in dict.fromkeys(row["model"] for row in rows))


def eval_headline(figures: Figures) -> str:
    return "; ".join(f"{row['dataset']} {row['model']} {row['seconds']:.3g} s" if row["status"] == "ok"
                     else f"{row['dataset']} {row['model']} {row['status']}" for row in figures["rows"])


def stages_headline(figures: Figures) -> str:
    resume = figures["resume"]
    return (f"{len(figures['stage_seconds'])} stages on {figures['device']}, test MRR "
            f"{figures['metrics']['test']['mrr']:.3f}; killed at epoch {resume['killed_at_epoch']} of "
            f"{resume['epochs']}, resumed: {_same(resume)}")


def torchrun_headline(figures: Figures) -> str:
    comparison = figures["pretrain_vs_plain_run"]
    same = "n/a" if comparison is None else _same(comparison)
    return f"pretrain + train, world size 1 ({figures['backend']}); pretrain vs plain run: {same}"


def cuda_tests_headline(figures: Figures) -> str:
    return f"{figures['run']} run, {figures['passed']} passed, {figures['failures'] + figures['errors']} failed, " \
           f"{figures['skipped']} skipped"


def bench_table(figures: Figures) -> list[str]:
    lines = ["| model | dim | precision | pretrain s/epoch | diffusion s/epoch | train s/epoch | chain FLOP/s | "
             "of spec peak | denoiser training FLOP/s | peak CUDA MiB | peak host MiB | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in figures["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row.get('dim') or ''} | {row['precision']} | | | | | | | | | "
                         f"{row['status']} |")
            continue
        seconds = row["seconds_per_epoch"]
        lines.append(f"| {row['model']} | {row['dim']} | {row['precision']} | {seconds['pretrain']:.3g} | "
                     f"{seconds['diffusion']:.3g} | {seconds['train']:.3g} | {_flops(row['chain_flops_per_second'])} | "
                     f"{_share(row['chain_share_of_spec_peak'])} | {_flops(row['denoiser_training_flops_per_second'])} | "
                     f"{_mib(row['peak_cuda_mib'])} | {_mib(row['peak_host_rss_mib'])} | ok |")
    extrapolated = any(row.get("extrapolated") for row in figures["rows"])
    chains = ", ".join(dict.fromkeys(row["reverse_chain"] for row in figures["rows"] if row["status"] == "ok")) or "n/a"
    lines += ["", f"Seconds per epoch {'extrapolated from' if extrapolated else 'measured over'} the timed batches "
              f"(`--batches`). Reverse chain timed (params.yaml's `train.chain_stride` / `chain_eta`, as the "
              f"pipeline runs it; `full` or `stride_<n>_eta_<eta>`, stride 0 = the kept steps only): {chains}. "
              f"Peak card: {figures['spec_card'] or 'n/a'}.", ""]
    lines += ["| card | bf16 dense | tf32 dense | fp32 |", "|---|---|---|---|"]
    lines += [f"| {card} | {_flops(peaks['bf16'])} | {_flops(peaks['tf32'])} | {_flops(peaks['fp32'])} |"
              for card, peaks in SPEC_PEAKS.items()]
    return lines + ["", f"Source: {figures['peak_source']}."]


def eval_table(figures: Figures) -> list[str]:
    lines = ["| dataset | model | dim | test triples | seconds | queries/s | filter index s | peak CUDA MiB | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in figures["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['dataset']} | {row['model']} | | | | | | | {row['status']} |")
            continue
        lines.append(f"| {row['dataset']} | {row['model']} | {row['dim']} | {row['test_triples']} | "
                     f"{row['seconds']:.3g} | {row['queries_per_second']:,.0f} | {row['filter_index_seconds']:.3g} | "
                     f"{_mib(row['peak_cuda_mib'])} | ok |")
    return lines


def stages_details(figures: Figures) -> list[str]:
    return ["Seconds per stage: " + ", ".join(f"{s} {t:.1f}" for s, t in figures["stage_seconds"].items()),
            "Metrics (realistic ranks, both directions): " + json.dumps(figures["metrics"]),
            f"Resume: {json.dumps(figures['resume'])}"]


def torchrun_details(figures: Figures) -> list[str]:
    return ["Seconds: " + ", ".join(f"{s} {t:.1f}" for s, t in figures["seconds"].items()), f"Note: {figures['note']}."]


def cuda_tests_details(figures: Figures) -> list[str]:
    return ["Files: " + ", ".join(figures["files"])]


# A part's figures as one line of the summary table, and as the lines under its heading.
HEADLINES: dict[str, Callable[[Figures], str]] = {
    "bench": bench_headlines, "eval": eval_headline, "stages": stages_headline, "torchrun": torchrun_headline,
    "cuda-tests": cuda_tests_headline}
DETAILS: dict[str, Callable[[Figures], list[str]]] = {
    "bench": bench_table, "eval": eval_table, "stages": stages_details, "torchrun": torchrun_details,
    "cuda-tests": cuda_tests_details}


def headline(name: str, figures: Figures) -> str:
    """One line of a part's figures for the summary table; empty where it measured nothing."""
    return HEADLINES[name](figures) if figures and name in HEADLINES else ""


def part_details(name: str, figures: Figures) -> list[str]:
    return DETAILS[name](figures) if figures and name in DETAILS else []


def markdown(settings: Settings, machine: dict[str, Any], suite: dict[str, Any], ordered: list[dict[str, Any]]) -> str:
    """summary.md: a table of the parts, then each part's error and details under its own heading."""
    gpu = machine.get("gpu") or "none"
    lines = [f"# GPU suite: {settings.device}{' (tiny CPU form)' if settings.tiny else ''}", "",
             f"Machine: GPU {gpu}, torch {machine.get('torch')}, CUDA {machine.get('cuda')}, python "
             f"{machine.get('python')}; dvclive: {suite['dvclive']}; {suite['seconds']:.0f} s in all.", "",
             "| # | part | status | seconds | headline |", "|---|---|---|---|---|"]
    lines += [f"| {r['number']} | {r['name']} | {r['status']} | {r['seconds']:.1f} | {headline(r['name'], r['figures'])} |"
              for r in ordered]
    for record in ordered:
        lines += ["", f"## {record['number']}. {record['title']} ({record['name']}): {record['status']}", "",
                  f"Logs: {record['folder']}/ (part.log lists every command)."]
        if record.get("error"):
            lines += ["", "```", record["error"].strip(), "```"]
        details = part_details(record["name"], record["figures"])
        lines += [""] + details if details else []
    return "\n".join(lines) + "\n"


def write_summary(settings: Settings, machine: dict[str, Any], records: list[dict[str, Any]], began: float) -> str:
    """summary.json and summary.md under --out (parts in their numbered order); returns the markdown."""
    ordered = sorted(records, key=lambda record: record["number"])
    suite = {"device": settings.device, "tiny": settings.tiny, "machine": machine, "argv": sys.argv,
             "dvclive": dvclive_status(settings.as_gpu_machine),
             "seconds": round(time.monotonic() - began, 1), "budget_seconds": settings.budget}
    (settings.out / "summary.json").write_text(json.dumps({"suite": suite, "parts": ordered}, indent=2, default=str)
                                               + "\n", encoding="utf-8")
    text = markdown(settings, machine, suite, ordered)
    (settings.out / "summary.md").write_text(text, encoding="utf-8")
    return text
