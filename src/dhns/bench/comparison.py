"""The peer comparison: both sides train on one stream and rank one test split, then times become ratios.

Evaluation uses *our* trained weights on both sides, so where the score functions agree the two MRRs
check each other. Every time is also set against the memory-traffic floor at the bandwidth measured in
the same run (`floors`). Speed-up = the peer's time / our time, per triple for training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
from typing import Any, Callable, Iterator

import torch

from dhns.bench.floors import against_floor, entity_width, evaluation_floor_bytes, training_floor_bytes
from dhns.bench.inputs import load_graph
from dhns.bench.own_side import OurSide
from dhns.bench.peers import (INSTALL_HINT, PEERS, PeerConfig, PeerSide, PeerUnavailable, TrainingRun,
                             training_stream)
from dhns.bench.timing import hardware, memory_bandwidth
from dhns.data import KnowledgeGraph
from dhns.host import keep_freed_memory, resolve_device, return_freed_memory

Tensor = torch.Tensor
SideFactory = Callable[[PeerConfig, KnowledgeGraph, torch.device], PeerSide]


def make_peer(config: PeerConfig, graph: KnowledgeGraph, device: torch.device) -> PeerSide:
    """The peer's adapter, imported now: a missing library raises PeerUnavailable, saying how to install it."""
    module_name, class_name = PEERS[config.peer]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != config.peer:
            raise
        raise PeerUnavailable(f"--peer {config.peer} needs {config.peer}, which is not installed: {INSTALL_HINT}") from None
    return getattr(module, class_name)(config, graph, device)


def training_figures(run: TrainingRun, epoch_triples: int, floor_bytes: int, bandwidth: float) -> dict[str, Any]:
    """Throughput, seconds per batch and per epoch of `epoch_triples`, and the step against its floor."""
    seconds_per_batch = run.seconds / run.batches
    return dataclasses.asdict(run) | {
        "triples_per_second": run.triples / run.seconds, "seconds_per_batch": seconds_per_batch,
        "seconds_per_epoch": run.seconds * epoch_triples / run.triples,
    } | against_floor(seconds_per_batch, floor_bytes, bandwidth)


@contextlib.contextmanager
def allocator_for(side: PeerSide, config: PeerConfig, evaluating: bool) -> Iterator[None]:
    """The glibc policy a side runs under (CPU only; see `dhns.host`).

    Training: both sides keep freed memory, as our training loops do. It spares PyKEEN's steps their
    page faults too (its step took 2.7x longer under glibc's defaults here), so our training ratio is the
    conservative one. Evaluation: the peer gets glibc's defaults back, because a heap that never shrinks
    grew its evaluation from 3.0 to 8.6 GB and ran RotatE out of memory; its time barely changed.
    """
    if config.keep_freed_memory and resolve_device(config.device).type == "cpu":
        (return_freed_memory if evaluating and not isinstance(side, OurSide) else keep_freed_memory)()
    yield


def compare_model(model: str, ours: OurSide, peer: PeerSide, config: PeerConfig, graph: KnowledgeGraph,
                  stream: Tensor, test: Tensor | None, bandwidth: float) -> dict[str, Any]:
    """Train on each side, then (unless `test` is None) rank `test` on each side with our trained weights."""
    width = entity_width(model, config.dim)
    step_bytes = training_floor_bytes(config.batch_size, config.num_negatives, width, config.dim)
    with allocator_for(ours, config, evaluating=False):
        mine = ours.train(model, stream)
    with allocator_for(peer, config, evaluating=False):
        theirs = peer.train(model, stream)
    epoch = int(graph.train.shape[0])
    row: dict[str, Any] = {"entity_width": width, "training": {
        "dhns": training_figures(mine, epoch, step_bytes, bandwidth),
        "peer": training_figures(theirs, epoch, step_bytes, bandwidth),
        "speedup": (theirs.seconds / theirs.triples) / (mine.seconds / mine.triples)}}
    if test is None:
        return row
    weights = ours.trained_weights(model)
    with allocator_for(ours, config, evaluating=True):
        mine_eval = ours.evaluate(weights, test)
    with allocator_for(peer, config, evaluating=True):
        theirs_eval = peer.evaluate(weights, test)
    eval_bytes = evaluation_floor_bytes(test.shape[0], graph.num_entities, width, config.eval_batch_size)
    row["evaluation"] = {
        "test_triples": int(test.shape[0]),
        "dhns": dataclasses.asdict(mine_eval) | against_floor(mine_eval.seconds, eval_bytes, bandwidth),
        "peer": dataclasses.asdict(theirs_eval) | against_floor(theirs_eval.seconds, eval_bytes, bandwidth),
        "speedup": theirs_eval.seconds / mine_eval.seconds,
        "mrr_difference": abs(mine_eval.mrr - theirs_eval.mrr)}
    return row


def run_peer_comparison(config: PeerConfig, peer_factory: SideFactory = make_peer) -> dict[str, Any]:
    """Everything the peer report prints, as a JSON-ready dict; torch's thread count is restored after."""
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        device = resolve_device(config.device)
        graph = load_graph(config.dataset, config.seed)
        peer = peer_factory(config, graph, device)  # first: a missing peer fails before any timing
        ours = OurSide(config, graph, device)
        machine = hardware()  # while both sides' thread count is set
        bandwidth = memory_bandwidth(device, config.bandwidth_mib)
        stream = training_stream(graph.train, config.batch_size, config.epochs, config.batches, config.seed)
        test = None if config.eval_triples == 0 else graph.test[: config.eval_triples]
        models = {model: compare_model(model, ours, peer, config, graph, stream, test, bandwidth["bytes_per_second"])
                  for model in config.models}
    finally:
        torch.set_num_threads(threads)
    return {"config": dataclasses.asdict(config) | {"device": str(device)}, "hardware": machine,
            "graph": {"name": graph.name, "entities": graph.num_entities, "relations": graph.num_relations,
                      "train": int(graph.train.shape[0]), "valid": int(graph.valid.shape[0]),
                      "test": int(graph.test.shape[0])},
            "sides": {"dhns": ours.name, "peer": peer.name}, "notes": list(ours.notes + peer.notes),
            "stream": {"triples": int(stream.shape[0]), "batches": math.ceil(stream.shape[0] / config.batch_size)},
            "bandwidth": bandwidth, "models": models}
