"""The printed report of a peer comparison: a Markdown table of both sides' figures and their ratios."""

from __future__ import annotations

from typing import Any

MODEL_TITLES = {"transe": "TransE", "rotate": "RotatE"}


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def _megabytes(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def model_rows(title: str, figures: dict[str, Any]) -> list[str]:
    """Table rows of one model: training throughput and times, evaluation time and MRR, each against its floor."""
    train = figures["training"]
    ours, peer, speedup = train["dhns"], train["peer"], _ratio(train["speedup"])
    rows = [[title, "training triples/s", f"{ours['triples_per_second']:,.0f}", f"{peer['triples_per_second']:,.0f}",
             speedup],
            [title, "training s per epoch", f"{ours['seconds_per_epoch']:.3f}", f"{peer['seconds_per_epoch']:.3f}",
             speedup],
            [title, "training s per batch", f"{ours['seconds_per_batch']:.4f}", f"{peer['seconds_per_batch']:.4f}", ""],
            [title, "training step / memory floor", _ratio(ours["times_floor"]), _ratio(peer["times_floor"]),
             f"floor {1000 * ours['floor_seconds']:.1f} ms ({_megabytes(ours['floor_bytes'])})"]]
    if "evaluation" in figures:
        ev = figures["evaluation"]
        ours, peer = ev["dhns"], ev["peer"]
        rows += [[title, "evaluation s", f"{ours['seconds']:.3f}", f"{peer['seconds']:.3f}", _ratio(ev["speedup"])],
                 [title, "evaluation / memory floor", _ratio(ours["times_floor"]), _ratio(peer["times_floor"]),
                  f"floor {1000 * ours['floor_seconds']:.1f} ms ({_megabytes(ours['floor_bytes'])})"],
                 [title, f"filtered MRR ({_policies(ours, peer)}), our weights", f"{ours['mrr']:.6f}",
                  f"{peer['mrr']:.6f}", f"difference {ev['mrr_difference']:.1e}"],
                 [title, "hits@10", f"{ours['hits_at_10']:.4f}", f"{peer['hits_at_10']:.4f}", ""]]
    return [_row(cells) for cells in rows]


def _policies(ours: dict, peer: dict) -> str:
    """The tie policy of the ranks compared: one word when both sides rank alike, else ours / the peer's."""
    mine, theirs = ours.get("tie_policy", "realistic"), peer.get("tie_policy", "realistic")
    return mine if mine == theirs else f"ours {mine}, peer {theirs}"


def format_peer_report(result: dict[str, Any]) -> str:
    config, hw, graph, sides = result["config"], result["hardware"], result["graph"], result["sides"]
    bandwidth, stream = result["bandwidth"], result["stream"]
    timed = (f"{config['batches']} batches" if config["batches"] is not None else
             f"{config['epochs']} epoch(s) = {stream['batches']} batches")
    lines = [f"== {sides['dhns']} vs {sides['peer']}: training step and filtered evaluation, same config and data ==",
             f"hardware: {hw['cpu']}, {hw['cpu_cores']} cores ({hw['usable_cores']} usable), torch threads "
             f"{hw['torch_threads']} (both sides), torch {hw['torch']}, python {hw['python']}, GPU: {hw['gpu'] or 'none'}"
             + (f" ({hw['gpu_memory_gib']:.0f} GiB, CUDA {hw['cuda']})" if hw["gpu"] else ""),
             f"data: {config['dataset']} ({graph['entities']} entities, {graph['relations']} relations, "
             f"train/valid/test {graph['train']}/{graph['valid']}/{graph['test']}), identical id-mapped triples "
             f"on both sides",
             f"config: structural model (no features), dim {config['dim']}, batch {config['batch_size']}, "
             f"{config['num_negatives']} negatives per positive, self-adversarial loss (margin {config['margin']:g}, "
             f"temperature {config['adversarial_temperature']:g}), Adam lr {config['lr']:g}; device {config['device']}",
             f"timed: {timed} ({stream['triples']:,} triples) per side and model, after {config['warmup']} warm-up "
             f"batch(es); per-epoch figures scale to one epoch of {graph['train']} triples",
             f"memory bandwidth, measured in this run ({bandwidth['tensor_mib']} MiB fp32 tensors): copy "
             f"{bandwidth['copy_bytes_per_second'] / 1e9:.2f} GB/s, add {bandwidth['add_bytes_per_second'] / 1e9:.2f} "
             f"GB/s (read + written); floors use {bandwidth['bytes_per_second'] / 1e9:.2f} GB/s",
             ""]
    first = next(iter(result["models"].values()))
    if "evaluation" in first:
        lines.insert(-1, f"evaluation: {first['evaluation']['test_triples']} test triples x (head, tail), filtered by "
                         f"train + valid + test, realistic ranks, chunks of {config['eval_batch_size']} queries, "
                         f"our trained weights loaded on both sides")
    lines += [_row(["model", "figure", sides["dhns"], sides["peer"], "dhns speed-up (peer time / ours)"]),
              "|---|---|---|---|---|"]
    for model, figures in result["models"].items():
        lines += model_rows(MODEL_TITLES.get(model, model), figures)
    lines += ["",
              "memory floor = least bytes / measured bandwidth; x floor = measured time / floor time. A training step "
              "moves at least the (batch x negatives x width) candidate rows read forward and their gradient written "
              "backward, plus the positives' head, relation and tail rows both ways (fp32, no optimiser state); an "
              "evaluation at least the entity table once per chunk of queries and one score per (query, entity).",
              "notes:"] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines)
