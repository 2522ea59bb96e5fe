"""The printed report of a benchmark run (the JSON holds the same figures)."""

from __future__ import annotations

from typing import Any

from dhns.bench.sweep import sweep_table


def _si(value: float, unit: str) -> str:
    """1.23e13, 'FLOP' -> '12.300 TFLOP'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {prefix}{unit}"
    return f"{value:.3f} {unit}"


def _flops(value: float) -> str:
    return _si(value, "FLOP/s")


def _memory(row: dict) -> str:
    cuda = row.get("peak_cuda_mib")
    text = f"peak host RSS {row['peak_host_rss_mib']:.0f} MiB"
    return text + (f", peak CUDA {cuda:.0f} MiB" if cuda is not None else "")


def _phase_lines(name: str, row: dict, peaks: dict) -> list[str]:
    label = "extrapolated" if row["extrapolated"] else "measured"
    lines = [f"{name}: {row['seconds_per_epoch']:.3f} s per epoch ({label}; {row['batches_per_epoch']} batches, "
             f"{row['epoch_triples']} triples)",
             f"  measured: {row['measured_batches']} batch(es), {row['measured_triples']} triples in "
             f"{row['measured_seconds']:.3f} s = {row['seconds_per_batch']:.3f} s per batch, "
             f"{row['triples_per_second']:.0f} triples/s"]
    if "sampler_setup_seconds" in row:
        lines.append(f"  sampler ({row['sampler']}) setup {row['sampler_setup_seconds']:.3f} s, not in the epoch")
    if "flops_per_second" in row:
        lines.append(f"  denoiser training {_si(row['flops_per_full_batch'], 'FLOP')} per batch "
                     f"(3x forward), {_flops(row['flops_per_second'])}, "
                     f"{100 * row['flops_per_second'] / peaks['measured_fp32_matmul_flops']:.1f}% of the measured fp32 "
                     f"matmul peak")
    lines.append("  " + _memory(row))
    return lines


def _peak_lines(generation: dict, peaks: dict) -> list[str]:
    achieved, measured = generation["flops_per_second"], peaks["measured_fp32_matmul_flops"]
    lines = [f"  achieved {_flops(achieved)} (design-layout FLOPs, an equivalent rate); "
             f"{100 * achieved / measured:.1f}% of the measured fp32 matmul peak ({_flops(measured)})"]
    if "spec_fp32_flops" in peaks:
        lines.append(f"  {100 * achieved / peaks['spec_fp32_flops']:.1f}% of the {peaks['spec_source']} fp32 dense "
                     f"peak ({_flops(peaks['spec_fp32_flops'])}), {100 * achieved / peaks['spec_bf16_flops']:.1f}% "
                     f"of its bf16 dense peak ({_flops(peaks['spec_bf16_flops'])})")
    if "measured_bf16_matmul_flops" in peaks:
        lines.append(f"  measured bf16 matmul peak {_flops(peaks['measured_bf16_matmul_flops'])}")
    return lines


def format_report(result: dict[str, Any]) -> str:
    config, hw = result["config"], result["hardware"]
    modalities = ", ".join(f"{name} {width}-d" for name, width in config["modalities"]) or "none"
    lines = ["== dhns benchmark ==",
             f"hardware: {hw['cpu']}, {hw['cpu_cores']} cores ({hw['usable_cores']} usable), torch threads "
             f"{hw['torch_threads']}, torch {hw['torch']}, python {hw['python']}, GPU: {hw['gpu'] or 'none'}"
             + (f" ({hw['gpu_memory_gib']:.0f} GiB, CUDA {hw['cuda']})" if hw["gpu"] else ""),
             f"config: {config['model']} dim {config['dim']}, batch {config['batch_size']}, {config['num_negatives']} "
             f"negatives, T = {config['diffusion_steps']}, optimizer {config.get('optimizer') or 'as in params'}, "
             f"stand-in modalities: {modalities}; "
             f"device {config['device']}; timed batches: {config['batches'] or 'whole epoch'}, "
             f"warmup {config['warmup']}"]
    if "graph" in result:
        graph = result["graph"]
        lines.append(f"dataset: {config['dataset']} ({graph['entities']} entities, {graph['relations']} relations, "
                     f"train/valid/test {graph['train']}/{graph['valid']}/{graph['test']})")
    stages = result.get("stages", {})
    if stages:
        lines.append(f"model parameters: {stages['model_parameters']:,}"
                     + (f"; generator parameters: {stages['generator_parameters']:,} (levels "
                        f"{', '.join(stages['levels'])})" if "generator_parameters" in stages else ""))
    chain = stages.get("train", {}).get("chain", "full")
    if "settings" in stages:
        lines.append("settings: " + ", ".join(f"{key.replace('_', ' ')} {value}"
                                              for key, value in stages["settings"].items()))
    for name, title in (("pretrain", "pretrain (self-adversarial)"), ("diffusion", "diffusion (generator_step)"),
                        ("classic", "train, classic (the dhns settings without generated negatives)"),
                        ("train", f"train (dhns, {chain} reverse chain)"),
                        ("cache", "train, nscaching (the classic settings drawing from a cache of high scorers)"),
                        ("joint", f"train (dhns, {chain} chain, joint protocol: a generator step on each batch first)")):
        if name in stages:
            lines += _phase_lines(title, stages[name], result.get("peaks", {}))
    if "dhns_over_classic" in stages:
        validation = stages["validation"]
        lines.append(f"validation: {validation['seconds']:.3f} s for {validation['valid_triples']} valid triples x 2 "
                     "sides (once per epoch in the train stage)")
    for key, label, note in (("dhns_over_classic", f"DHNS / classic ({chain} chain)", " (targets: 2x and 1.5x)"),
                             ("cache_over_classic", "NSCaching / classic", ""),
                             ("joint_over_classic", "joint DHNS / classic", "")):
        if key in stages:
            ratio = stages[key]
            lines.append(f"{label}: step {ratio['step']:.2f}x, epoch with validation "
                         f"{ratio['epoch_with_validation']:.2f}x{note}")
    if "generation" in stages:
        gen = stages["generation"]
        lines.append(f"denoiser (generate alone): {gen['seconds_per_batch']:.3f} s per batch over "
                     f"{gen['measured_batches']} batch(es); {gen['denoiser_calls_per_chain']} calls x "
                     f"{len(stages['levels'])} levels x {gen['rows_per_call']} rows = "
                     f"{_si(gen['flops_per_full_batch'], 'FLOP')} per batch")
        lines += _peak_lines(gen, result["peaks"])
        share = gen["seconds_per_batch"] / stages["train"]["seconds_per_batch"]
        lines.append(f"  generation is {100 * share:.0f}% of the dhns train step")
        if "floor_seconds_per_batch" in gen:
            floor = stages["dhns_over_classic_floor"]
            lines.append(f"  floor: {_si(gen['executed_flops_per_full_batch'], 'FLOP')} executed per batch at the "
                         f"measured {gen['matmul_precision']} matmul peak ({_flops(gen['matmul_peak_flops'])}) = "
                         f"{gen['floor_seconds_per_batch']:.3f} s; generation runs at {floor['generation_over_floor']:.2f}x "
                         f"its floor")
            lines.append(f"  DHNS / classic with generation at its floor and the rest of DHNS free: step "
                         f"{floor['step']:.2f}x, epoch with validation {floor['epoch_with_validation']:.2f}x "
                         "(no target below these can be met on this machine in this layout)")
    if "evaluation" in result:
        ev = result["evaluation"]
        lines += [f"evaluation: {ev['seconds']:.3f} s for {ev['test_triples']} test triples x 2 sides, filtered, "
                  f"batch {ev['batch_size']} ({ev['queries_per_second']:.0f} queries/s); filter index "
                  f"{ev['filter_index_seconds']:.3f} s", "  " + _memory(ev)]
    if "sweep" in result:
        sweep = result["sweep"]
        timed = config["sweep_batches"]
        steps = "pretrain and dhns steps" if "dhns_spread" in sweep else "pretrain step"
        entities = ", ".join(f"{n:,}" for n in config["sweep_entities"])
        lines += ["", f"scaling sweep: {steps}, {entities} entities, "
                  + ("whole epochs timed" if timed is None else
                     f"first {timed} batches timed and extrapolated (linear by construction apart from per-batch "
                     f"costs that grow with the graph)"),
                  sweep_table(sweep),
                  f"seconds per 1k triples spread {sweep['spread']:.2f}x -> "
                  + ("linear" if sweep["linear"] else f"NOT linear (tolerance {sweep['tolerance']}x)")
                  + (f"; dhns step spread {sweep['dhns_spread']:.2f}x" if "dhns_spread" in sweep else "")]
        if "bandwidth" in sweep:
            worst = max(row["times_floor"] for row in sweep["rows"])
            lines.append(f"memory floor: the step's least bytes (candidates and positives, forward and backward, plus "
                         f"the table rows its optimizer updates) at {sweep['bandwidth']['bytes_per_second'] / 1e9:.2f} "
                         f"GB/s measured in this run; worst {worst:.2f}x floor (target: every size within "
                         f"{sweep['floor_target']:g}x with a sparse optimizer)")
        if "entity_scaling" in sweep:
            scaling = sweep["entity_scaling"]
            lines.append(f"seconds per step against the entity table ({scaling['triples']:,} triples): " + ", ".join(
                f"{row['entities']:,}: {row['seconds_per_step']:.4f} s ({row['over_smallest']:.2f}x)"
                for row in scaling["rows"]))
    lines.append(f"process peak host RSS: {result['process_peak_host_rss_mib']:.0f} MiB")
    return "\n".join(lines)
