"""Fitting the DiffHEG generator on a frozen, pretrained KGC model."""

from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from dhns.training.checkpoint import Checkpointing, check_finite, fingerprint, restore_rng, rng_state
from dhns.config import DiffusionConfig
from dhns.diffusion.generator import HierarchicalGenerator
from dhns.host import keep_freed_memory
from dhns.models.kgc import KGCModel
from dhns.training.step import adam, apply_gradients, precision_context, run_epoch

Tensor = torch.Tensor


def generator_step(
    generator: HierarchicalGenerator,
    model: KGCModel,
    optimizer: torch.optim.Optimizer,
    triples: Tensor,
    loss_type: str,
    rng: torch.Generator | None = None,
    *,
    max_grad_norm: float = 0.0,
    precision: str = "fp32",
) -> Tensor:
    """One update of the denoisers only: the KGC model's views reach the loss detached."""
    with precision_context(precision, triples.device):
        loss = generator.loss(model, triples, loss_type=loss_type, generator=rng)
    apply_gradients(loss, optimizer, generator.parameters(), max_grad_norm)
    return loss.detach().float()


def train_generator(
    generator: HierarchicalGenerator,
    model: KGCModel,
    train_triples: Tensor,
    config: DiffusionConfig,
    seed: int = 0,
    checkpointing: Checkpointing | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_resume: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Epochs over the training triples; returns per-epoch mean loss and seconds.

    With `checkpointing`, a killed run resumes from its last snapshot with an identical result.
    `on_epoch` sees each new epoch's record; `on_resume`, once, the history a resumed snapshot brings.
    """
    device = model.device
    if device.type == "cpu":
        keep_freed_memory()  # see dhns.host: CPU steps stop page-faulting their large temporaries
    train_triples = train_triples.to(device)
    rng = torch.Generator(device=device)
    rng.manual_seed(seed)
    optimizer = adam(generator.parameters(), config.generator_lr)
    history: list[dict] = []
    run_key = ""
    if checkpointing is not None:
        run_key = fingerprint("diffusion", config, seed, generator, model, train_triples)
        snapshot = checkpointing.load(run_key)
        if snapshot is not None:
            generator.load_state_dict(snapshot["generator"])
            optimizer.load_state_dict(snapshot["optimizer"])
            restore_rng(rng, snapshot["rng"])
            history = snapshot["history"]
            if on_resume is not None:
                on_resume(list(history))
    model.eval()
    generator.train()

    def step(batch: Tensor) -> Tensor:
        return generator_step(generator, model, optimizer, batch, config.loss, rng, max_grad_norm=config.max_grad_norm,
                              precision=config.precision)

    for epoch in tqdm(range(len(history) + 1, config.num_epochs + 1), desc="diffusion", unit="epoch", disable=None,
                      initial=len(history), total=config.num_epochs):
        started = time.perf_counter()
        batch_losses = run_epoch(train_triples, config.batch_size, rng, step, f"diffusion epoch {epoch}")
        check_finite("diffusion", epoch, batch_losses, generator.parameters(), checkpointing)
        history.append({"epoch": epoch, "loss": float(batch_losses.mean()), "seconds": time.perf_counter() - started})
        if checkpointing is not None and checkpointing.due(epoch):
            snapshot = {"epoch": epoch, "generator": generator.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng_state(rng), "history": history}
            checkpointing.save(snapshot, run_key)
        if on_epoch is not None:
            on_epoch(history[-1])
    generator.eval()
    return history
