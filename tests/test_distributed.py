"""Data parallelism: two gloo ranks on the CPU train like one process with the same global batch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from configs import model_config, pretrain_config
from dhns.training.objective import objective_for
from dhns.training.checkpoint import CHECKPOINT_FILE, Checkpointing
from dhns.distributed import Parallel, shard, shutdown_parallel
from dhns.evaluation import build_filter_index
from dhns.models.kgc import KGCModel
from dhns.sampling import CacheSampler, make_sampler
from dhns.sampling.negatives import NegativeSampler, Negatives
from dhns.training.kgc import train_kgc
from stage_project import NUM_ENTITIES, NUM_RELATIONS, star_triples, start_stage, write_stage_project


class ShiftSampler(NegativeSampler):
    """Negatives that depend only on the positive (tail + 1, + 2, ...): no randomness to differ by rank.

    The base's refresh and state are kept (a corrupting sampler's: none); its drawing is replaced."""

    def __init__(self, num_negatives: int) -> None:
        self.num_negatives = num_negatives

    def to(self, device):
        return self

    def sample(self, positives: torch.Tensor, generator=None) -> Negatives:
        offsets = torch.arange(1, self.num_negatives + 1)
        entities = (positives[:, 2:3] + offsets) % NUM_ENTITIES
        corrupt_tail = positives[:, 0] % 2 == 0
        return Negatives(entities, corrupt_tail, torch.ones_like(entities, dtype=torch.bool))


CONFIG = pretrain_config(num_negatives=3, batch_size=10, kgc_lr=0.01, num_epochs=3, eval_every=3, patience=0,
                        sampler="uniform")
OPTIMIZERS = {"plain": "adam", "lazy": "lazy_adam"}  # mode -> optimizer of the same-steps comparison


def fit(parallel: Parallel, sampler=None, checkpointing: Checkpointing | None = None,
        stop_after: int | None = None, optimizer: str = "adam", epochs: list[int] | None = None) -> KGCModel:
    torch.manual_seed(0)
    model = KGCModel(model_config(name="transe", embedding_dim=8, margin=4.0), NUM_ENTITIES, NUM_RELATIONS)
    triples = star_triples()

    def interrupt(record: dict) -> None:
        if epochs is not None:
            epochs.append(record["epoch"])
        if record["epoch"] == stop_after:
            raise KeyboardInterrupt

    config = dataclasses.replace(CONFIG, optimizer=optimizer)
    train_kgc(model, triples, triples[:4], build_filter_index(triples, NUM_ENTITIES), objective_for(config, sampler or ShiftSampler(3)),
              config, seed=1, parallel=parallel, checkpointing=checkpointing, on_epoch=interrupt)
    return model


def rank_main(rank: int, world_size: int, port: int, out_dir: str, mode: str = "plain") -> None:
    """mode: plain or lazy (shift negatives; adam or lazy_adam); or, with random negatives: uninterrupted,
    killed (stopped after epoch 2, its checkpoint kept), resume (a fresh launch that continues from it)."""
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    parallel = Parallel(rank, world_size, rank)
    try:
        if mode in OPTIMIZERS:
            model = fit(parallel, optimizer=OPTIMIZERS[mode])
        else:
            sampler = make_sampler("uniform", star_triples(), NUM_ENTITIES, NUM_RELATIONS, 3)
            cached, phase = mode.startswith("cached-"), mode.removeprefix("cached-")
            if cached:  # each rank keeps its own caches: the snapshot must carry every rank's
                sampler = CacheSampler(sampler, star_triples(), 3, 4, "importance")
            folder = ("ckpt-uninterrupted" if phase == "uninterrupted" else "ckpt-resume") + ("-cached" if cached else "")
            checkpointing = Checkpointing(Path(out_dir) / folder, every=1)
            if phase == "killed":  # as a kill would: the launch ends after epoch 2, the checkpoint stays
                try:
                    fit(parallel, sampler, checkpointing, stop_after=2)
                except KeyboardInterrupt:
                    shutdown_parallel()
                    return
            epochs: list[int] = []
            model = fit(parallel, sampler, checkpointing, epochs=epochs)
            (Path(out_dir) / f"{mode}-rank{rank}-epochs.json").write_text(json.dumps(epochs))
        torch.save(model.state_dict(), Path(out_dir) / f"{mode}-rank{rank}.pt")
        shutdown_parallel()
    finally:
        if dist.is_initialized():  # a failed rank: its peer's own error ends the spawn
            dist.destroy_process_group()


def launch(out_dir: Path, mode: str, world_size: int = 2) -> None:
    """Spawn the ranks with the rendezvous store held here, by the launcher, as torchrun's agent holds it.

    With the store in rank 0 (init_method env://), rank 0 could finish and exit while rank 1 still spoke to
    the store in its teardown; rank 1 then could abort (SIGABRT, "terminate called without an active exception"),
    as it did once in CI. A store that outlives every rank cannot vanish under one.
    """
    store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False)
    mp.spawn(rank_main, args=(world_size, store.port, str(out_dir), mode), nprocs=world_size, join=True)


@pytest.mark.parametrize("mode", list(OPTIMIZERS))
def test_two_gloo_ranks_take_the_same_steps_as_one_process(tmp_path: Path, mode: str) -> None:
    """Same global batches, uneven shards (22 triples in batches of 10 -> last batch 2 = 1 + 1), same result;
    with lazy_adam the entity table's sparse gradients are averaged over the ranks like dense ones."""
    single = fit(Parallel(), optimizer=OPTIMIZERS[mode])
    launch(tmp_path, mode)
    states = [torch.load(tmp_path / f"{mode}-rank{r}.pt", weights_only=True) for r in range(2)]
    for key, value in single.state_dict().items():
        assert torch.equal(states[0][key], states[1][key]), f"ranks diverged on {key}"
        torch.testing.assert_close(states[0][key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prefix", ["", "cached-"])
def test_two_rank_run_resumes_bit_identically_with_per_rank_negatives(tmp_path: Path, prefix: str) -> None:
    """Each rank's own sampling generator (and, with a cache sampler, its own caches) travels in the snapshot;
    rank 0's file is broadcast to all."""
    for mode in ("uninterrupted", "killed", "resume"):  # each a fresh launch of both ranks
        launch(tmp_path, prefix + mode)
    reference = torch.load(tmp_path / f"{prefix}uninterrupted-rank0.pt", weights_only=True)
    for rank in range(2):  # the relaunch ran only epoch 3: it resumed, it did not start over
        assert json.loads((tmp_path / f"{prefix}resume-rank{rank}-epochs.json").read_text()) == [3]
        assert json.loads((tmp_path / f"{prefix}uninterrupted-rank{rank}-epochs.json").read_text()) == [1, 2, 3]
    if prefix:
        snapshot = torch.load(tmp_path / "ckpt-resume-cached" / CHECKPOINT_FILE, weights_only=True)
        assert len(snapshot["samplers"]) == 2 and all(state["tail_cache"].shape[1] == 3 for state in snapshot["samplers"])
    for rank in range(2):
        resumed = torch.load(tmp_path / f"{prefix}resume-rank{rank}.pt", weights_only=True)
        for key, value in reference.items():
            assert torch.equal(resumed[key], value), (rank, key)


def test_shards_cover_the_batch_once() -> None:
    rows = torch.arange(7)
    parts = [shard(rows, Parallel(rank, 3, rank)) for rank in range(3)]
    assert torch.equal(torch.cat(parts), rows) and [len(p) for p in parts] == [3, 2, 2]


def test_pretrain_stage_with_two_processes_matches_one(tmp_path: Path) -> None:
    """`pretrain.num_processes: 2` relaunches the stage under torchrun (gloo); metrics match 1 process."""
    results = {}
    for processes in (1, 2):
        root = tmp_path / f"p{processes}"
        write_stage_project(root, {"num_epochs": 100, "eval_every": 20, "patience": 0, "batch_size": 8,
                                   "num_negatives": 8, "kgc_lr": 0.05, "num_processes": processes}, fit_check=True)
        process = start_stage(root, "pretrain")
        _, log = process.communicate(timeout=300)
        assert process.returncode == 0, log
        results[processes] = json.loads((root / "metrics" / "pretrain.json").read_text())
        assert (root / "models" / "pretrain" / "model.safetensors").is_file()
        results[processes]["loss"] = [float(row.split("\t")[1]) for row in
                                      (root / "plots" / "pretrain" / "metrics" / "loss.tsv").read_text().splitlines()[1:]]
    one, two = (results[p]["valid"]["both"]["realistic"]["mrr"] for p in (1, 2))
    assert one > 0.8 and abs(one - two) < 0.1, (one, two)
    mean_one, mean_two = (sum(results[p]["loss"]) / len(results[p]["loss"]) for p in (1, 2))
    assert abs(mean_one - mean_two) < 0.1 * mean_one, (mean_one, mean_two)
