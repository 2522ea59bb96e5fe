"""Fitting the DiffHEG generator on a frozen, pretrained KGC model."""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from dhns.config import DiffusionConfig
from dhns.diffusion.generator import HierarchicalGenerator
from dhns.models.kgc import KGCModel

Tensor = torch.Tensor


def generator_step(
    generator: HierarchicalGenerator,
    model: KGCModel,
    optimizer: torch.optim.Optimizer,
    triples: Tensor,
    loss_type: str,
    rng: torch.Generator | None = None,
) -> Tensor:
    """One update of the denoisers only: the KGC model's views reach the loss detached."""
    loss = generator.loss(model, triples, loss_type=loss_type, generator=rng)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_generator(
    generator: HierarchicalGenerator,
    model: KGCModel,
    train_triples: Tensor,
    config: DiffusionConfig,
    seed: int = 0,
) -> list[dict]:
    """Epochs over the training triples; returns per-epoch mean loss and seconds."""
    device = model.device
    train_triples = train_triples.to(device)
    rng = torch.Generator(device=device)
    rng.manual_seed(seed)
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.generator_lr)
    model.eval()
    generator.train()
    history = []
    for epoch in tqdm(range(1, config.num_epochs + 1), desc="diffusion", unit="epoch", disable=None):
        started = time.perf_counter()
        order = torch.randperm(train_triples.shape[0], device=device, generator=rng)
        loss_sum, batches = torch.zeros((), device=device), 0
        for start in range(0, order.numel(), config.batch_size):
            batch = train_triples[order[start : start + config.batch_size]]
            loss_sum += generator_step(generator, model, optimizer, batch, config.loss, rng)
            batches += 1
        loss = float(loss_sum) / batches
        if not math.isfinite(loss):
            raise FloatingPointError(f"diffusion stage: generator loss became {loss} at epoch {epoch}")
        history.append({"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - started})
    generator.eval()
    return history
