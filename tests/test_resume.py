"""Interrupted training resumes to the same result; numerical faults stop with a clear message."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path

import pytest
import torch

from configs import diffusion_config, hard_negatives, model_config, pretrain_config, train_config
from dhns.training.objective import objective_for
from dhns.training.checkpoint import CHECKPOINT_FILE, Checkpointing, NonFiniteLossError
from dhns.config import DiffusionConfig, HardnessLevel, PretrainConfig
from dhns.diffusion.generator import build_generator
from dhns.training.diffusion import train_generator
from dhns.evaluation import build_filter_index
from dhns.models.kgc import KGCModel
from dhns.training.ntat import HardNegativeObjective
from dhns.sampling import make_sampler
from dhns.training.kgc import train_kgc, train_step
from stage_project import NUM_ENTITIES, NUM_RELATIONS, star_triples, start_stage, write_stage_project


def fresh_model(seed: int = 0) -> KGCModel:
    torch.manual_seed(seed)
    return KGCModel(model_config(name="transe", embedding_dim=8, margin=4.0), NUM_ENTITIES, NUM_RELATIONS)


def fit(model: KGCModel, config: PretrainConfig, checkpointing: Checkpointing | None, *, extra=None,
        stop_after: int | None = None, stage: str = "pretrain"):
    """train_kgc on the star graph; `stop_after` simulates a kill right after that epoch's checkpoint."""
    triples = star_triples()

    def interrupt(record: dict) -> None:
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt

    sampler = make_sampler(config.negatives.corruption, triples, NUM_ENTITIES, NUM_RELATIONS, config.num_negatives)
    return train_kgc(model, triples, triples[:6], build_filter_index(triples, NUM_ENTITIES), objective_for(config, sampler, extra), config,
                     seed=3, stage=stage, checkpointing=checkpointing, on_epoch=interrupt)


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


PRETRAIN = pretrain_config(num_negatives=4, batch_size=8, kgc_lr=0.01, num_epochs=6, eval_every=2, patience=0)


def test_killed_pretraining_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    reference_model = fresh_model()
    reference = fit(reference_model, PRETRAIN, None)

    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(fresh_model(), PRETRAIN, checkpointing, stop_after=3)
    assert torch.load(checkpointing.path, weights_only=True)["epoch"] == 3

    resumed_model = fresh_model()
    resumed = fit(resumed_model, PRETRAIN, checkpointing)
    assert_same_state(resumed_model, reference_model)
    assert without_seconds(resumed.history) == without_seconds(reference.history)
    assert (resumed.best_epoch, resumed.best_valid_metric) == (reference.best_epoch, reference.best_valid_metric)


def test_resume_would_differ_without_the_snapshot(tmp_path: Path) -> None:
    """Guards the test above: restarting the remaining epochs from the initial state gives another model."""
    reference_model = fresh_model()
    fit(reference_model, PRETRAIN, None)
    shortened = fresh_model()
    fit(shortened, pretrain_config(**{**PRETRAIN.__dict__, "num_epochs": 3}), None)
    assert not torch.equal(shortened.entities.structural.weight, reference_model.entities.structural.weight)


def test_checkpoint_of_other_params_or_a_corrupt_one_is_ignored(tmp_path: Path, caplog) -> None:
    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(fresh_model(), PRETRAIN, checkpointing, stop_after=2)
    other = pretrain_config(**{**PRETRAIN.__dict__, "kgc_lr": 0.02})
    reference_model, resumed_model = fresh_model(), fresh_model()
    fit(reference_model, other, None)
    with caplog.at_level("WARNING"):
        result = fit(resumed_model, other, checkpointing)
    assert "other params or inputs" in caplog.text
    assert len(result.history) == other.num_epochs
    assert_same_state(resumed_model, reference_model)

    checkpointing.path.write_bytes(b"not a checkpoint")
    caplog.clear()
    with caplog.at_level("WARNING"):
        fit(fresh_model(), PRETRAIN, checkpointing)
    assert "unreadable checkpoint" in caplog.text


def test_ntat_with_a_joint_generator_resumes_identically(tmp_path: Path) -> None:
    config = train_config(num_negatives=4, batch_size=8, num_epochs=4, eval_every=1, patience=0, joint_generator=True,
                         hardness_levels=(HardnessLevel(1, 1.0, 0.5), HardnessLevel(3, 0.5, 0.9)))

    def objective(model: KGCModel) -> HardNegativeObjective:
        torch.manual_seed(1)
        generator = build_generator(model, num_steps=4, beta_start=1e-3, beta_end=0.05, hidden_multiplier=2)
        return hard_negatives(generator, config.hardness_levels, 0.1, joint_generator=True)

    reference_model = fresh_model()
    reference_extra = objective(reference_model)
    fit(reference_model, config, None, extra=reference_extra, stage="train")

    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    model = fresh_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, config, checkpointing, extra=objective(model), stop_after=2, stage="train")
    resumed_model = fresh_model()
    resumed_extra = objective(resumed_model)
    fit(resumed_model, config, checkpointing, extra=resumed_extra, stage="train")
    assert_same_state(resumed_model, reference_model)
    assert_same_state(resumed_extra.generator, reference_extra.generator)
    assert resumed_extra.generator_steps == reference_extra.generator_steps > 0


DIFFUSION = diffusion_config(num_diffusion_steps=5, num_epochs=4, batch_size=8, hidden_multiplier=2, report_steps=(0, 5))


def fit_generator(checkpointing: Checkpointing | None, config: DiffusionConfig = DIFFUSION):
    model = fresh_model().eval()
    torch.manual_seed(5)
    generator = build_generator(model, config.num_diffusion_steps, config.beta_start, config.beta_end,
                                config.hidden_multiplier)
    history = train_generator(generator, model, star_triples(), config, seed=2, checkpointing=checkpointing)
    return generator, history


def test_killed_diffusion_training_resumes_to_the_uninterrupted_result(tmp_path: Path, monkeypatch) -> None:
    reference, reference_history = fit_generator(None)
    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    original_save = Checkpointing.save

    def save_then_die(self, state, key):  # a kill right after the epoch-2 snapshot reached the disk
        original_save(self, state, key)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointing, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit_generator(checkpointing)
    monkeypatch.setattr(Checkpointing, "save", original_save)
    assert torch.load(checkpointing.path, weights_only=True)["epoch"] == 2
    resumed, history = fit_generator(checkpointing)
    assert_same_state(resumed, reference)
    assert without_seconds(history) == without_seconds(reference_history)


class NaNAt:
    """An extra objective that returns NaN on one batch of one epoch."""

    def __init__(self, epoch: int, batch: int, batches_per_epoch: int) -> None:
        self.target = (epoch - 1) * batches_per_epoch + batch
        self.calls = 0

    def loss(self, model, positives, rng):
        self.calls += 1
        value = float("nan") if self.calls == self.target else 0.0
        return model.relations.weight.sum() * 0 + value

    def before_step(self, model, positives, rng) -> None:
        pass

    def after_step(self, model, positives, rng) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def identity(self) -> dict:
        return {}


def test_nan_loss_names_stage_epoch_and_batch_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    batches = -(-len(star_triples()) // PRETRAIN.batch_size)
    with pytest.raises(NonFiniteLossError) as error:
        fit(fresh_model(), PRETRAIN, checkpointing, extra=NaNAt(epoch=3, batch=2, batches_per_epoch=batches))
    message = str(error.value)
    assert "pretrain stage" in message and "epoch 3, batch 2 of 3" in message
    assert "epoch 2" in message and str(checkpointing.path) in message and "max_grad_norm" in message
    snapshot = torch.load(checkpointing.path, weights_only=True)
    assert snapshot["epoch"] == 2
    assert all(torch.isfinite(value).all() for value in snapshot["model"].values())


def test_nan_in_diffusion_training_names_the_stage(tmp_path: Path, monkeypatch) -> None:
    from dhns.diffusion.generator import HierarchicalGenerator

    original = HierarchicalGenerator.loss
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss * float("inf") if calls["n"] == 5 else loss

    monkeypatch.setattr(HierarchicalGenerator, "loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"diffusion stage: loss became (nan|inf) at epoch 2, batch 2 of 3"):
        fit_generator(Checkpointing(tmp_path / "ckpt", every=1))


def test_gradient_clipping_bounds_the_gradient_norm() -> None:
    triples = star_triples()
    config = PRETRAIN

    def gradient_norm(max_grad_norm: float) -> float:
        model = fresh_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        sampler = make_sampler("uniform", triples, NUM_ENTITIES, NUM_RELATIONS, config.num_negatives)
        objective = objective_for(dataclasses.replace(config, sampler="uniform", max_grad_norm=max_grad_norm), sampler)
        train_step(model, optimizer, objective, triples, torch.Generator().manual_seed(0))
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()
                                                           if p.grad is not None])))

    assert gradient_norm(0.0) > 0.01
    assert gradient_norm(0.01) == pytest.approx(0.01, rel=1e-4)


# --- a real kill: SIGKILL the pretrain stage mid-way, rerun it, compare with an uninterrupted run ---

def test_sigkilled_pretrain_stage_resumes_to_identical_outputs(tmp_path: Path) -> None:
    epochs = 60
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for root in (reference, interrupted):
        write_stage_project(root, {"num_epochs": epochs, "eval_every": 5, "patience": 0, "batch_size": 4,
                                   "num_negatives": 4})
    process = start_stage(interrupted, "pretrain")
    checkpoint = interrupted / "checkpoints" / "pretrain" / CHECKPOINT_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.is_file() and torch.load(checkpoint, weights_only=True)["epoch"] >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the stage finished before it could be killed: raise `epochs`"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 5 <= killed_at < epochs
    assert not (interrupted / "models" / "pretrain").exists()

    resumed = start_stage(interrupted, "pretrain")
    _, resumed_log = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, resumed_log
    assert "%|" not in resumed_log and "epoch/s" not in resumed_log  # progress bars stay quiet in logs
    assert f"resuming from checkpoints/pretrain/{CHECKPOINT_FILE} (epoch {killed_at})" in resumed_log
    uninterrupted = start_stage(reference, "pretrain")
    _, reference_log = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, reference_log

    model_file = Path("models/pretrain/model.safetensors")
    assert (interrupted / model_file).read_bytes() == (reference / model_file).read_bytes()
    for root in (reference, interrupted):
        assert not (root / "checkpoints" / "pretrain").exists()  # removed once the outputs are written
    metrics = [json.loads((root / "metrics" / "pretrain.json").read_text()) for root in (reference, interrupted)]
    assert metrics[0]["valid"] == metrics[1]["valid"] and metrics[0]["best_epoch"] == metrics[1]["best_epoch"]



def test_fingerprint_tells_runs_apart_and_takes_any_tensor() -> None:
    from dhns.training.checkpoint import fingerprint

    base = fingerprint("pretrain", PRETRAIN, 0, torch.tensor(3.0), {"step": torch.tensor(1)},
                       torch.ones(2, dtype=torch.bfloat16))  # 0-dim and 2-byte tensors, as in optimizer states
    assert base == fingerprint("pretrain", PRETRAIN, 0, torch.tensor(3.0), {"step": torch.tensor(1)},
                               torch.ones(2, dtype=torch.bfloat16))
    other = pretrain_config(**{**PRETRAIN.__dict__, "kgc_lr": 0.5})
    assert base != fingerprint("pretrain", other, 0, torch.tensor(3.0), {"step": torch.tensor(1)},
                               torch.ones(2, dtype=torch.bfloat16))
    assert base != fingerprint("pretrain", PRETRAIN, 0, torch.tensor(3.5), {"step": torch.tensor(1)},
                               torch.ones(2, dtype=torch.bfloat16))


def test_killed_training_resumes_with_its_decayed_learning_rate(tmp_path: Path) -> None:
    """The plateau schedule's decayed rates live in the optimizer's state and its count in the loop's: a run
    killed after a decay goes on at the decayed rate, to the uninterrupted result."""
    config = dataclasses.replace(PRETRAIN, num_epochs=8, eval_every=1, kgc_lr=0.2, lr_schedule="plateau",
                                 lr_decay_factor=0.5, lr_decay_patience=1)
    reference_model = fresh_model()
    reference = fit(reference_model, config, None)
    rates = [record["lr"] for record in reference.history]
    first_decay = next(i for i, rate in enumerate(rates) if rate < config.kgc_lr) + 1  # the epoch it happened
    assert first_decay < config.num_epochs

    checkpointing = Checkpointing(tmp_path / "ckpt", every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(fresh_model(), config, checkpointing, stop_after=first_decay)
    resumed_model = fresh_model()
    resumed = fit(resumed_model, config, checkpointing)
    assert_same_state(resumed_model, reference_model)
    assert without_seconds(resumed.history) == without_seconds(reference.history)
