"""Markdown tables of the comparison: mean ± std per arm, and DHNS paired against the best classic sampler.

Researchers pick a sampler from such a table, so two rules keep it honest. The best classic sampler is
chosen by mean *validation* MRR, never by test. And DHNS is compared seed by seed with that sampler on the
same pretrained model (its paired difference, its spread and the seeds it wins), because an unpaired
mean ± std hides the shared pretraining noise that a paired difference removes.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from dhns.compare.arms import (ARMS, BASELINES, CACHE_ARMS, DHNS_ARMS, FINETUNE, FORM_NAMES, FULL_CHAIN_ARM, GRID_ARMS, JOINT,
                               OWN_BASE, PROTOCOLS, Protocol)
from dhns.compare.cells import SUPERSEDED_DIR, WHY_FILE, Superseded

HEADLINE = "realistic"  # the pipeline's tie policy for model selection and the tables
CATEGORIES = ("1-1", "1-N", "N-1", "N-N")  # relation categories of the evaluate stage (1.5 threshold, from train)
PUBLISHED_POLICY = "optimistic"  # what published MMKGC tables use (OpenKE's ranking)

# Published filtered MRR with real image and text features. MKG-Y and MKG-W: the MoCi README table;
# DB15K: the DHNS paper's Table 3 (built on RotatE).
PUBLISHED: dict[str, tuple[tuple[str, float, str], ...]] = {
    "MKG-Y": (("MoCi", 0.389, "MoCi README"), ("MMRNS", 0.359, "MoCi README")),
    "MKG-W": (("MoCi", 0.358, "MoCi README"), ("OTKGE", 0.347, "MoCi README"), ("MMRNS", 0.341, "MoCi README")),
    "DB15K": (("AdaMF", 0.325, "DHNS paper, Table 3"),),
}


# Filtered test MRR (%) with image and text features on the same splits, as later MMKGC papers tabulate them:
# MMRNS, the negative-sampling state of the art (Xu et al., 2022), MoMoK (Zhang et al., 2024), M-Hyper (2025).
LATER_PUBLISHED: dict[str, dict[str, float]] = {
    "MMRNS": {"MKG-Y": 35.93, "MKG-W": 35.03, "DB15K": 32.68},
    "MoMoK": {"MKG-Y": 37.91, "MKG-W": 35.89, "DB15K": 39.57},
    "M-Hyper": {"MKG-Y": 39.46, "MKG-W": 37.02, "DB15K": 41.25},
}


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); no spread for a single value."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def metric(cell: Mapping, split: str, name: str, policy: str = HEADLINE) -> float:
    return float(cell[split]["both"][policy][name])


def group_cells(cells: Iterable[Mapping]) -> dict[tuple[str, str], dict[str, dict[int, Mapping]]]:
    """(dataset, scorer) -> arm -> seed -> cell."""
    groups: dict[tuple[str, str], dict[str, dict[int, Mapping]]] = defaultdict(lambda: defaultdict(dict))
    for cell in cells:
        groups[(cell["dataset"], cell["scorer"])][cell["arm"]][int(cell["seed"])] = cell
    return groups


def shown(names: Sequence[str], arms: Mapping[str, Mapping[int, Mapping]], grid: Sequence[str] = GRID_ARMS) -> list[str]:
    """The grid's arms always (missing ones marked), the optional ones only where they have cells."""
    return [name for name in names if name in grid or arms.get(name)]


def best_on_validation(arms: Mapping[str, Mapping[int, Mapping]], names: Sequence[str]) -> str | None:
    """The arm of `names` with the highest mean validation MRR (ties: the first listed); None if none has cells."""
    scored = [(sum(metric(c, "valid", "mrr") for c in arms[name].values()) / len(arms[name]), -i, name)
              for i, name in enumerate(names) if arms.get(name)]
    return max(scored)[2] if scored else None


def best_baseline(arms: Mapping[str, Mapping[int, Mapping]]) -> str | None:
    """The classic sampler with the highest mean validation MRR (ties: the first in BASELINES)."""
    return best_on_validation(arms, BASELINES)


def best_cache_arm(arms: Mapping[str, Mapping[int, Mapping]]) -> str | None:
    """The cache of real hard negatives (NSCaching) with the highest mean validation MRR, where one has run."""
    return best_on_validation(arms, CACHE_ARMS)


CROSS_MACHINE = "†"  # marks a paired difference with a seed whose two cells ran on different machines
CROSS_MACHINE_NOTE = (f"{CROSS_MACHINE}: cells on different machines (CPU kinds): a paired difference also carries "
                      "the machines' numerical noise (measured in docs/results.md, \"Machines\"), and seconds "
                      "compare the machines as well as the arms.")


def with_machine_note(lines: list[str]) -> list[str]:
    """A table, and the note on cross-machine pairs below it if one of its rows has one."""
    return lines + ["", CROSS_MACHINE_NOTE] if any(CROSS_MACHINE in line for line in lines) else lines


def machine(cell: Mapping) -> str:
    """The kind of processor a cell's NTAT ran on: its hardware record up to the first comma."""
    return str(cell["ntat"].get("hardware") or "unknown").split(",")[0].strip()


@dataclass(frozen=True)
class Paired:
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    cross_machine: tuple[int, ...] = ()  # seeds whose two cells ran on different machines

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.differences)

    @property
    def mark(self) -> str:
        return CROSS_MACHINE if self.cross_machine else ""


def paired_difference(treated: Mapping[int, Mapping], baseline: Mapping[int, Mapping], name: str = "mrr",
                      policy: str = HEADLINE) -> Paired:
    """Test `name` of treated minus baseline, seed by seed, over the seeds both have."""
    seeds = tuple(sorted(set(treated) & set(baseline)))
    return Paired(seeds, tuple(metric(treated[s], "test", name, policy) - metric(baseline[s], "test", name, policy)
                               for s in seeds),
                  tuple(s for s in seeds if machine(treated[s]) != machine(baseline[s])))


def arm_table(arms: Mapping[str, Mapping[int, Mapping]], expected_seeds: Sequence[int],
              grid: Sequence[str] = GRID_ARMS) -> list[str]:
    header = ["arm", "seeds", "test MRR", "hits@1", "hits@10", "valid MRR", "NTAT epochs (best)", "NTAT s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in shown(list(ARMS), arms, grid):
        runs = arms.get(arm, {})
        if not runs:
            lines.append(f"| {arm} | missing | " + " | ".join(["-"] * (len(header) - 2)) + " |")
            continue
        cells = [runs[s] for s in sorted(runs)]
        seeds = ",".join(map(str, sorted(runs)))
        if len(runs) < len(expected_seeds):
            seeds += f" ({len(runs)} of {len(expected_seeds)})"
        epochs = ", ".join(f"{c['ntat']['epochs_run']} ({c['ntat']['best_epoch']})" for c in cells)
        lines.append("| " + " | ".join([
            arm, seeds,
            format_mean_std([metric(c, "test", "mrr") for c in cells]),
            format_mean_std([metric(c, "test", "hits_at_1") for c in cells]),
            format_mean_std([metric(c, "test", "hits_at_10") for c in cells]),
            format_mean_std([metric(c, "valid", "mrr") for c in cells]),
            epochs,
            format_mean_std([float(c["ntat"]["seconds"]) for c in cells], digits=0),
        ]) + " |")
    return lines


def paired_lines(arms: Mapping[str, Mapping[int, Mapping]], grid: Sequence[str] = GRID_ARMS) -> list[str]:
    """Each DHNS arm minus the best classic sampler; and minus its own base (the sampler it adds to) when that differs."""
    base = best_baseline(arms)
    if base is None:
        return ["No classic sampler has finished yet: no paired difference."]
    cache = best_cache_arm(arms)
    against_cache = (f", and against the best cache of real hard negatives on validation (**{cache}**)"
                     if cache else "")
    lines = [f"Best classic sampler on validation: **{base}**. Paired test MRR difference, seed by seed, against it "
             "and against each DHNS arm's own base (the classic sampler whose loss it adds its hard loss to)"
             f"{against_cache}:", "",
             "| arm | minus | seeds | mean difference | std | dhns wins |", "|---|---|---|---|---|---|"]
    for arm in shown(DHNS_ARMS, arms, grid):
        for other in dict.fromkeys([base, OWN_BASE[arm]] + ([cache] if cache else [])):
            if not arms.get(arm) or not arms.get(other):
                lines.append(f"| {arm} | {other} | - | missing | - | - |")
                continue
            paired = paired_difference(arms[arm], arms[other])
            if not paired.seeds:
                lines.append(f"| {arm} | {other} | none shared | - | - | - |")
                continue
            mean, std = mean_std(paired.differences)
            spread = "-" if std is None else f"{std:.4f}"
            lines.append(f"| {arm} | {other} | {','.join(map(str, paired.seeds))}{paired.mark} | {mean:+.4f} | "
                         f"{spread} | {paired.wins} of {len(paired.seeds)} |")
    return with_machine_note(lines)


def paired_summary(arms: Mapping[str, Mapping[int, Mapping]], arm: str, other: str | None) -> str:
    """`+0.0026 ± 0.0013 (3/3)`: mean paired test MRR difference, its std and the wins; `-` without shared seeds."""
    if other is None or not arms.get(arm) or not arms.get(other):
        return "-"
    paired = paired_difference(arms[arm], arms[other])
    if not paired.seeds:
        return "-"
    mean, std = mean_std(paired.differences)
    spread = "" if std is None else f" ± {std:.4f}"
    return f"{mean:+.4f}{spread} ({paired.wins}/{len(paired.seeds)}){paired.mark}"


def summary_table(groups: Mapping[tuple[str, str], Mapping[str, Mapping[int, Mapping]]],
                  listed: Sequence[tuple[str, str]], grid: Sequence[str] = GRID_ARMS) -> list[str]:
    """One line per (dataset, scorer) and DHNS arm with cells: paired with the best classic sampler and with its own base.

    A line per arm rather than a column: the table keeps seven columns however many optional arms have run.
    """
    header = ["dataset", "scorer", "DHNS arm", "best classic (on valid)", "minus best", "own base", "minus own base"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, scorer in listed:
        arms = groups.get((dataset, scorer))
        if not arms:
            continue
        base = best_baseline(arms)
        for arm in (name for name in shown(DHNS_ARMS, arms, grid) if arms.get(name)):
            lines.append("| " + " | ".join([dataset, scorer, arm, base or "none yet", paired_summary(arms, arm, base),
                                            OWN_BASE[arm], paired_summary(arms, arm, OWN_BASE[arm])]) + " |")
    return with_machine_note(lines) if len(lines) > 2 else []


def protocol_table(cells: Sequence[Mapping], listed: Sequence[tuple[str, str]]) -> list[str]:
    """Each DHNS form under both protocols, on the (dataset, scorer) pairs the joint protocol has cells for.

    Beside the paired differences, the test MRR of the best classic sampler and of the form: training from
    scratch moves every arm, and a difference reads differently at another level.
    """
    by_protocol = {protocol.name: group_cells(protocol.arm_names(cells)) for protocol in PROTOCOLS}
    header = ["dataset", "scorer", "form", "protocol", "seeds", "best classic (on valid): test MRR",
              "form: test MRR", "minus best", "minus own base"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, scorer in listed:
        if not by_protocol[JOINT.name].get((dataset, scorer)):
            continue
        for index in range(len(FINETUNE.forms)):
            for protocol in PROTOCOLS:
                arms = by_protocol[protocol.name].get((dataset, scorer)) or {}
                arm, base = protocol.forms[index], best_baseline(arms)
                runs = arms.get(arm, {})
                best_mrr = format_mean_std([metric(c, "test", "mrr") for c in arms[base].values()]) if base else "-"
                lines.append("| " + " | ".join([
                    dataset, scorer, FORM_NAMES[arm], f"{protocol.title} ({arm})",
                    ",".join(map(str, sorted(runs))) or "missing", f"{base or 'none yet'}: {best_mrr}",
                    format_mean_std([metric(c, "test", "mrr") for c in runs.values()]),
                    paired_summary(arms, arm, base), paired_summary(arms, arm, OWN_BASE[arm])]) + " |")
    return with_machine_note(lines) if len(lines) > 2 else []


def breakdown_table(arms: Mapping[str, Mapping[int, Mapping]], grid: Sequence[str] = GRID_ARMS) -> list[str]:
    """Per arm: the adjusted index, MRR per relation category and, where the test split has them, MRR without
    its self-loops and without its triples unseen in training.

    Means over the arm's seeds. A sampler can trade one relation category for another, which one overall MRR
    hides; a model may learn "answer the query entity" for self-loops (DB15K has some); and an entity or
    relation no training triple holds is ranked by its initialisation (DB15K's test has 84 such triples).
    Columns a cell file lacks (written before the evaluate stage reported them) are left out; empty when none
    is there. The unseen column, added later than the others, averages the cells that have it ("-" for none).
    """
    cells_seen = [c for arm in shown(list(ARMS), arms, grid) for c in arms.get(arm, {}).values()]  # the rows listed
    if not cells_seen:
        return []
    test = cells_seen[0]["test"]
    columns: list[tuple[str, Callable[[Mapping], float | None]]] = []
    if "adjusted_arithmetic_mean_rank_index" in test["both"][HEADLINE]:
        columns.append(("AAMRI", lambda t: t["both"][HEADLINE]["adjusted_arithmetic_mean_rank_index"]))
    for name in (n for n in CATEGORIES if n in test.get("by_category", {})):
        columns.append((f"MRR {name} ({test['by_category'][name]['num_triples']})",
                        lambda t, name=name: t["by_category"][name]["both"][HEADLINE]["mrr"]))
    if "without_self_loops" in test:
        columns.append((f"MRR without the {test['num_self_loops']} self-loops",
                        lambda t: t["without_self_loops"]["both"][HEADLINE]["mrr"]))
    unseen = next((c["test"]["without_unseen"] for c in cells_seen if "without_unseen" in c["test"]), None)
    if unseen is not None:
        columns.append((f"MRR without the {unseen['num_excluded']} triples unseen in training",
                        lambda t: t["without_unseen"]["both"][HEADLINE]["mrr"]
                        if "both" in t.get("without_unseen", {}) else None))  # none kept: a count only
    if not columns:
        return []
    lines = ["| arm | " + " | ".join(header for header, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    for arm in shown(list(ARMS), arms, grid):
        cells = list(arms.get(arm, {}).values())
        if cells:
            means = [_mean_of_present([value(c["test"]) for c in cells]) for _, value in columns]
            lines.append(f"| {arm} | " + " | ".join("-" if mean is None else f"{mean:.4f}" for mean in means) + " |")
    return lines


def _mean_of_present(values: list[float | None]) -> float | None:
    present = [float(value) for value in values if value is not None]
    return sum(present) / len(present) if present else None


def seconds_line(arms: Mapping[str, Mapping[int, Mapping]]) -> str:
    """Pretraining and the generator are shared by every arm of a seed: report them once per seed."""
    per_seed: dict[int, Mapping] = {}
    for runs in arms.values():
        for seed, cell in runs.items():
            per_seed.setdefault(seed, cell)
    parts = []
    for seed in sorted(per_seed):
        cell = per_seed[seed]
        pretrain, diffusion = cell["pretrain"], cell["diffusion"]
        if pretrain.get("seconds") is None:  # the joint protocol: nothing pretrained, every arm from scratch
            continue
        parts.append(f"seed {seed}: pretrain {pretrain['seconds']} s ({pretrain['epochs_run']} epochs, best "
                     f"{pretrain['best_epoch']}), generator {diffusion['seconds']} s")
    hardware = sorted({c["ntat"].get("hardware") or "not recorded" for runs in arms.values() for c in runs.values()})
    shared = "Shared per seed: " + "; ".join(parts) if parts else "Nothing shared: every arm trained from scratch"
    return shared + f". Hardware: {'; '.join(hardware)}."


def published_rows(cells: Sequence[Mapping], dataset: str) -> list[str]:
    """Published numbers, then ours (per protocol: the best classic sampler and each DHNS arm), optimistic ties."""
    rows = [f"| {method} (published, {source}) | images + text | {mrr:.3f} |" for method, mrr, source in
            PUBLISHED.get(dataset, ())]
    for protocol in PROTOCOLS:
        for (name, scorer), arms in sorted(group_cells(protocol.arm_names(cells)).items()):
            if name != dataset:
                continue
            base = best_baseline(arms)
            for arm in ([base] if base else []) + [a for a in DHNS_ARMS if arms.get(a)]:
                values = [metric(c, "test", "mrr", PUBLISHED_POLICY) for c in arms[arm].values()]
                rows.append(f"| ours, {protocol.title}: {scorer} + {arm} ({len(values)} "
                            f"seed{'' if len(values) == 1 else 's'}) | text only | {format_mean_std(values, 3)} |")
    return rows


def published_lines(cells: Sequence[Mapping], dataset: str) -> list[str]:
    """Published numbers beside ours, all with optimistic ties; theirs use images and text, ours text only."""
    rows = published_rows(cells, dataset)
    if not rows:
        return []
    return ["Filtered test MRR, **optimistic** ties (the policy of published tables):", "",
            "| model | features | MRR |", "|---|---|---|", *rows]


def best_arm_overall(cells: Sequence[Mapping], dataset: str) -> tuple[Protocol, str, str, dict[int, Mapping]] | None:
    """The (protocol, scorer, arm) with the highest mean validation MRR on `dataset`, over every cell: the model a
    user would pick, chosen without looking at test."""
    best = None
    for protocol in PROTOCOLS:
        for (name, scorer), arms in group_cells(protocol.arm_names(cells)).items():
            if name != dataset:
                continue
            for arm, runs in arms.items():
                valid = sum(metric(c, "valid", "mrr") for c in runs.values()) / len(runs)
                if best is None or valid > best[0]:
                    best = (valid, protocol, scorer, arm, runs)
    return None if best is None else best[1:]


def benchmark_lines(cells: Sequence[Mapping], datasets: Sequence[str]) -> list[str]:
    """Per benchmark: published filtered MRR (%) with images and text, beside ours (text only) from the arm chosen
    on validation, in optimistic ties (the published tables' policy) and realistic ones."""
    header = ["benchmark", *(f"{name} (images + text)" for name in LATER_PUBLISHED),
              "ours, text only: chosen on validation", "ours: test MRR % optimistic / realistic"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset in datasets:
        chosen = best_arm_overall(cells, dataset)
        if chosen is None:
            continue
        protocol, scorer, arm, runs = chosen
        optimistic, realistic = ([100 * metric(c, "test", "mrr", policy) for c in runs.values()]
                                 for policy in (PUBLISHED_POLICY, HEADLINE))
        published = [f"{LATER_PUBLISHED[name][dataset]:.2f}" if dataset in LATER_PUBLISHED[name] else "-"
                     for name in LATER_PUBLISHED]
        lines.append("| " + " | ".join([dataset, *published,
                                        f"{scorer} + {arm}, {protocol.title} ({len(runs)} seed{'' if len(runs) == 1 else 's'})",
                                        f"{format_mean_std(optimistic, 2)} / {format_mean_std(realistic, 2)}"]) + " |")
    return lines if len(lines) > 2 else []


def level_lines(cells: Sequence[Mapping], listed: Sequence[tuple[str, str]]) -> list[str]:
    """Per (dataset, scorer) with joint cells: the best classic sampler's test MRR under each protocol (each chosen
    on its own validation), and joint minus fine-tune: how far from scratch falls short of pretraining first."""
    by_protocol = {protocol.name: group_cells(protocol.arm_names(cells)) for protocol in PROTOCOLS}
    header = ["dataset", "scorer", "fine-tune: best classic, test MRR", "joint: best classic, test MRR",
              "joint minus fine-tune", "joint epochs run (best)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, scorer in listed:
        joint = by_protocol[JOINT.name].get((dataset, scorer))
        finetune = by_protocol[FINETUNE.name].get((dataset, scorer))
        if not joint or not finetune:
            continue
        levels = []
        for arms in (finetune, joint):
            base = best_baseline(arms)
            levels.append((base, [metric(c, "test", "mrr") for c in arms[base].values()] if base else []))
        joint_base = levels[1][0]
        epochs = ", ".join(f"{c['ntat']['epochs_run']} ({c['ntat']['best_epoch']})"
                           for c in joint[joint_base].values()) if joint_base else "-"
        gap = (mean_std(levels[1][1])[0] - mean_std(levels[0][1])[0]) if levels[0][1] and levels[1][1] else None
        lines.append("| " + " | ".join([dataset, scorer, *(f"{base or 'none yet'}: {format_mean_std(values)}"
                                                            for base, values in levels),
                                        "-" if gap is None else f"{gap:+.4f}", epochs]) + " |")
    return lines if len(lines) > 2 else []


def seconds_per_epoch(runs: Mapping[int, Mapping]) -> float:
    """Mean over seeds of NTAT seconds per epoch run (validation included): what an arm costs a user."""
    return sum(float(c["ntat"]["seconds"]) / int(c["ntat"]["epochs_run"]) for c in runs.values()) / len(runs)


def contender_lines(cells: Sequence[Mapping], listed: Sequence[tuple[str, str]]) -> list[str]:
    """Per protocol and (dataset, scorer) where a cache arm has run: the three kinds of negatives, each
    represented by its arm chosen on validation (uniform or Bernoulli draws re-weighted; a cache of real high
    scorers; generated ones), the one a user would pick on validation, the paired test differences that
    decide the question, and each one's NTAT seconds per epoch."""
    header = ["dataset", "scorer", "protocol", "classic: test MRR", "cache: test MRR", "DHNS: test MRR",
              "chosen on valid", "DHNS minus cache", "cache minus classic", "s/epoch classic / cache / DHNS"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for protocol in PROTOCOLS:
        groups = group_cells(protocol.arm_names(cells))
        for dataset, scorer in listed:
            arms = groups.get((dataset, scorer)) or {}
            classic, cache, dhns = best_baseline(arms), best_cache_arm(arms), best_on_validation(arms, DHNS_ARMS)
            if not (classic and cache and dhns):
                continue
            winner = best_on_validation(arms, [classic, cache, dhns])
            levels = [f"{arm}: {format_mean_std([metric(c, 'test', 'mrr') for c in arms[arm].values()])}"
                      for arm in (classic, cache, dhns)]
            cost = " / ".join(f"{seconds_per_epoch(arms[arm]):.1f}" for arm in (classic, cache, dhns))
            machines = {machine(c) for arm in (classic, cache, dhns) for c in arms[arm].values()}
            cost += CROSS_MACHINE if len(machines) > 1 else ""
            lines.append("| " + " | ".join([dataset, scorer, protocol.title, *levels, str(winner),
                                            paired_summary(arms, dhns, cache), paired_summary(arms, cache, classic),
                                            cost]) + " |")
    return with_machine_note(lines) if len(lines) > 2 else []


def grid_order(groups: Mapping[tuple[str, str], object], datasets: Sequence[str], scorers: Sequence[str]) -> list[tuple[str, str]]:
    """The grid's (dataset, scorer) pairs in the order asked for, then any other pair that has cells."""
    listed = [(d, s) for d in datasets for s in scorers]
    return listed + sorted(key for key in groups if key not in listed)


def chain_lines(arms: Mapping[str, Mapping[int, Mapping]]) -> list[str]:
    """Each strided-chain arm minus the same arm on the full chain, beside the full arm's own seed spread.

    The strided chain only changes how negatives are sampled (under fine-tune, from the same generator): it is a free
    speed-up if the paired difference is within what a change of seed alone moves the full arm's MRR.
    """
    rows = []
    for arm, full in FULL_CHAIN_ARM.items():
        if not arms.get(arm) or not arms.get(full):
            continue
        paired = paired_difference(arms[arm], arms[full])
        if not paired.seeds:
            continue
        mean, std = mean_std(paired.differences)
        _, seed_std = mean_std([metric(arms[full][seed], "test", "mrr") for seed in sorted(arms[full])])
        seconds = [mean_std([float(arms[name][seed]["ntat"]["seconds"]) for seed in paired.seeds])[0]
                   for name in (full, arm)]
        rows.append(f"| {arm} | {full} | {','.join(map(str, paired.seeds))} | {mean:+.4f} | "
                    f"{'-' if std is None else f'{std:.4f}'} | {'-' if seed_std is None else f'{seed_std:.4f}'} | "
                    f"{seconds[0]:.0f} / {seconds[1]:.0f} |")
    if not rows:
        return []
    return ["Reverse chain: the strided chain (only the kept steps) minus the full chain (every step), paired by "
            "seed (fine-tune: one generator serves both; joint: each trains its own alongside); the full arm's "
            "test MRR std over seeds is the noise to compare with:", "",
            "| arm | minus | seeds | mean difference | std | full arm's seed std | NTAT s (full / strided) |",
            "|---|---|---|---|---|---|---|", *rows]


def cell_tables(arms: Mapping[str, Mapping[int, Mapping]], expected_seeds: Sequence[int],
                grid: Sequence[str] = GRID_ARMS) -> list[str]:
    """One (dataset, scorer)'s arm table and its paired differences: the same lines on the results page and in the README."""
    chains = chain_lines(arms)
    return arm_table(arms, expected_seeds, grid) + [""] + paired_lines(arms, grid) + ([""] + chains if chains else [])


def block_name(protocol: Protocol, name: str) -> str:
    """A README marker name: `MKG-Y/transe` or `summary` for the fine-tune protocol, `joint/...` for the joint one."""
    return name if protocol is FINETUNE else f"{protocol.name}/{name}"


def cell_block_name(dataset: str, scorer: str, protocol: Protocol = FINETUNE) -> str:
    """The README marker name of one (dataset, scorer) cell's tables: `<!-- MKG-Y/transe:start -->`."""
    return block_name(protocol, f"{dataset}/{scorer}")


def readme_blocks(cells: Sequence[Mapping], datasets: Sequence[str], scorers: Sequence[str],
                  seeds: Sequence[int]) -> dict[str, list[str]]:
    """The project README's generated tables: per protocol the paired summary and each (dataset, scorer) with
    cells (its arm table and paired differences, under `cell_block_name`); both protocols side by side
    (`protocols`); and every dataset's published numbers in one table (`published`).

    The prose around them is written by hand; the numbers in the tables never are.
    """
    listed = grid_order(group_cells(cells), datasets, scorers)
    blocks: dict[str, list[str]] = {}
    for protocol in PROTOCOLS:
        groups = group_cells(protocol.arm_names(cells))
        blocks[block_name(protocol, "summary")] = summary_table(groups, listed, protocol.grid_arms)
        for dataset, scorer in listed:  # a page's block for a cell with no cells (yet, or any more) says so
            blocks[cell_block_name(dataset, scorer, protocol)] = (
                cell_tables(groups[(dataset, scorer)], seeds, protocol.grid_arms) if groups.get((dataset, scorer))
                else [f"No {protocol.title} cell of {dataset} {scorer} at the current settings yet (cells of earlier "
                      "settings: the results page's last section)."])
    blocks["protocols"] = protocol_table(cells, listed)
    rows = [f"| {dataset} " + row for dataset in dict.fromkeys(d for d, _ in listed)
            for row in published_rows(cells, dataset)]
    blocks["published"] = ["| dataset | model | features | MRR |", "|---|---|---|---|", *rows]
    blocks["benchmarks"] = benchmark_lines(cells, list(dict.fromkeys(d for d, _ in listed)))
    blocks["levels"] = level_lines(cells, listed)
    blocks["contenders"] = contender_lines(cells, listed)
    return blocks


def superseded_links(superseded: Sequence[Superseded], protocol: Protocol, dataset: str, scorer: str) -> str:
    """`Cells of earlier settings: [name](...)` under a (dataset, scorer) that has some, else ''."""
    names = [folder.name for folder in superseded
             if any((c["dataset"], c["scorer"]) == (dataset, scorer) for c in protocol.arm_names(folder.cells))]
    if not names:
        return ""
    links = ", ".join(f"[{name}]({SUPERSEDED_DIR}/{name}/{WHY_FILE})" for name in names)
    return f"Cells of earlier settings, kept apart (see [below](#cells-of-earlier-settings)): {links}."


def rebased_links(markdown: str, prefix: str) -> str:
    """A page's relative links as they read from a page `prefix` above it (its why.md quoted on the results page)."""
    return re.sub(r"\]\((?![a-z]+:|#|/)([^)\s]+)", lambda link: f"]({posixpath.normpath(prefix + link[1])}", markdown)


def superseded_section(superseded: Sequence[Superseded], seeds: Sequence[int]) -> list[str]:
    """Each set of superseded cells: why it was set aside, then its arms' tables as they ran (only its own arms,
    paired only against its own classic samplers, so no number mixes old and new settings)."""
    if not superseded:
        return []
    out = ["## Cells of earlier settings", "",
           f"Cells whose settings the project has since changed, moved to `{SUPERSEDED_DIR}/<name>/cells/` before "
           "their rerun so that no table above mixes settings. Their numbers, as they ran:", ""]
    for folder in superseded:
        out += [f"### {folder.name}", "", rebased_links(folder.why, f"{SUPERSEDED_DIR}/{folder.name}/"), ""]
        for protocol in PROTOCOLS:
            groups = group_cells(protocol.arm_names(folder.cells))
            for (dataset, scorer), arms in sorted(groups.items()):
                out += [f"{dataset}, {scorer} ({protocol.title}):", "", *arm_table(arms, seeds, grid=()), ""]
                if best_baseline(arms):
                    out += [*paired_lines(arms, grid=()), ""]
    return out


def protocol_sections(cells: Sequence[Mapping], protocol: Protocol, listed: Sequence[tuple[str, str]],
                      seeds: Sequence[int], superseded: Sequence[Superseded] = ()) -> list[str]:
    """The results page's part for one protocol: its summary, then each (dataset, scorer) of the grid."""
    groups = group_cells(protocol.arm_names(cells))
    out = []
    summary = summary_table(groups, listed, protocol.grid_arms)
    if summary:
        out += [f"### Summary ({protocol.title}): does DHNS help?", "",
                "Paired test MRR difference over the seeds both arms have: mean ± std (seeds DHNS wins / "
                "seeds). `best`: the classic sampler with the best mean validation MRR.", "", *summary, ""]
    for dataset, scorer in listed:
        out += [f"### {dataset}, {scorer} ({protocol.title})", ""]
        arms = groups.get((dataset, scorer))
        earlier = superseded_links(superseded, protocol, dataset, scorer)
        if not arms:
            out += ["Not run yet" + (" at the current settings." if earlier else "."), ""]
            out += [earlier, ""] if earlier else []
            continue
        out += [earlier, ""] if earlier else []
        out += cell_tables(arms, seeds, protocol.grid_arms) + [""]
        breakdown = breakdown_table(arms, protocol.grid_arms)
        if breakdown:
            out += ["Test breakdowns, means over seeds (test triples per relation category in brackets; AAMRI: "
                    "PyKEEN's adjusted arithmetic mean rank index):", "", *breakdown, ""]
        out += [seconds_line(arms), ""]
    return out


PROTOCOL_INTROS = {
    FINETUNE.name: "NTAT fine-tunes a pretrained model for at most 15 epochs. Every arm of a seed starts from the "
                   "same pretrained model (and DHNS from the same generator trained on it); only the train stage's "
                   "negatives differ.",
    JOINT.name: "The paper's protocol (`train.protocol: joint`): the model and the generator start from the seed's "
                "random initialisation and train together, NTAT from epoch 0, within a 400-epoch budget with early "
                "stopping on validation. Every arm of a seed starts from the same initialisation; only the "
                "negatives differ. Both DHNS forms run on the strided chain; `dhns` / `dhns_per_view` rows, where "
                "present, are the full chain's check.",
}


def render(cells: Sequence[Mapping], datasets: Sequence[str], scorers: Sequence[str], seeds: Sequence[int],
           superseded: Sequence[Superseded] = ()) -> str:
    """The whole results page: both protocols, every (dataset, scorer) of each one's grid with missing ones
    marked, the protocols side by side, published numbers, then the cells of earlier settings."""
    out = ["# Paired comparison of negative samplers", "",
           "Generated by `make compare` from the cell files in `cells/` (one per dataset, scorer, arm and seed, "
           "the joint protocol's arms prefixed `joint_`; `make compare-run` adds missing cells). Filtered link "
           "prediction, both directions, realistic ties unless said otherwise; mean ± sample std over seeds.", ""]
    listed = grid_order(group_cells(cells), datasets, scorers)
    for protocol in PROTOCOLS:
        groups = group_cells(protocol.arm_names(cells))
        if not groups and protocol is not FINETUNE:  # a protocol never run gets no section
            continue
        order = [key for key in listed if not protocol.pairs or key in protocol.pairs or key in groups]
        out += [f"## Protocol: {protocol.title}", "", PROTOCOL_INTROS[protocol.name], "",
                *protocol_sections(cells, protocol, order, seeds, superseded)]
    both = protocol_table(cells, listed)
    if both:
        out += ["## The two protocols side by side", "",
                "Each DHNS form under each protocol on the same (dataset, scorer); paired test MRR differences as "
                "above, beside the test MRR of the best classic sampler and of the form.", "", *both, ""]
    for dataset in dict.fromkeys([d for d, _ in listed]):
        lines = published_lines(cells, dataset)
        if lines:
            out += [f"## {dataset}: published numbers beside ours", "", *lines, ""]
    out += superseded_section(superseded, seeds)
    return "\n".join(out).rstrip() + "\n"
