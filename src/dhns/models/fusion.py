"""Multimodal entity representations: structural embedding + projected modality features, attention-mixed.

e_m = W_m x_m + b_m for each modality m the entity has; the fused entity is sum_m a_m e_m with
a = softmax_m(w^T tanh(e_m)) taken over the modalities present for that entity (the structural
embedding always is). Feature tables are non-persistent buffers: they come from the features stage,
not from the checkpoint, so a model file holds only what training learned.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


class MultimodalEntityEncoder(nn.Module):
    def __init__(
        self,
        num_entities: int,
        width: int,
        modality_features: dict[str, tuple[Tensor, Tensor]],
        init_range: float,
    ) -> None:
        """`modality_features` maps a modality name to (vectors (N, d_m) float, present (N,) bool)."""
        super().__init__()
        self.num_entities = num_entities
        self.width = width
        self.structural = nn.Embedding(num_entities, width)
        nn.init.uniform_(self.structural.weight, -init_range, init_range)
        self.modalities = tuple(sorted(modality_features))
        self.projections = nn.ModuleDict()
        for name in self.modalities:
            vectors, present = modality_features[name]
            if vectors.shape[0] != num_entities or present.shape != (num_entities,):
                raise ValueError(
                    f"modality {name!r}: features for {vectors.shape[0]} entities, mask {tuple(present.shape)}, "
                    f"but the graph has {num_entities} entities"
                )
            self.register_buffer(f"features_{name}", vectors.float(), persistent=False)
            self.register_buffer(f"present_{name}", present.bool(), persistent=False)
            projection = nn.Linear(vectors.shape[1], width)
            nn.init.uniform_(projection.weight, -init_range / vectors.shape[1] ** 0.5, init_range / vectors.shape[1] ** 0.5)
            nn.init.zeros_(projection.bias)
            self.projections[name] = projection
        self.attention = nn.Parameter(torch.zeros(width)) if self.modalities else None

    def forward(self, entity_ids: Tensor) -> Tensor:
        """(...,) long ids -> (..., width) fused embeddings."""
        structural = self.structural(entity_ids)
        if not self.modalities:
            return structural
        flat_ids = entity_ids.reshape(-1)
        views = [structural.reshape(-1, self.width)]  # each (n, width)
        masks = [torch.ones_like(flat_ids, dtype=torch.bool)]
        for name in self.modalities:
            views.append(self.projections[name](getattr(self, f"features_{name}")[flat_ids]))
            masks.append(getattr(self, f"present_{name}")[flat_ids])
        stacked = torch.stack(views, dim=1)  # (n, M, width)
        logits = torch.tanh(stacked) @ self.attention  # (n, M)
        logits = logits.masked_fill(~torch.stack(masks, dim=1), float("-inf"))
        weights = torch.softmax(logits, dim=1)  # (n, M); structural keeps every row finite
        fused = (weights.unsqueeze(-1) * stacked).sum(dim=1)
        return fused.reshape(*entity_ids.shape, self.width)

    def all_entities(self) -> Tensor:
        """(N, width): every fused entity, e.g. for ranking all candidates."""
        return self(torch.arange(self.num_entities, device=self.structural.weight.device))

    def modality_presence(self, entity_ids: Tensor) -> dict[str, Tensor]:
        """(...,) bool per view: whether each entity has it (the structural view always does)."""
        present = {"structural": torch.ones_like(entity_ids, dtype=torch.bool)}
        for name in self.modalities:
            present[name] = getattr(self, f"present_{name}")[entity_ids]
        return present

    def modality_embeddings(self, entity_ids: Tensor) -> dict[str, Tensor]:
        """Per-modality views of entities (structural plus projected features) for semantic-level use."""
        views = {"structural": self.structural(entity_ids)}
        for name in self.modalities:
            views[name] = self.projections[name](getattr(self, f"features_{name}")[entity_ids])
        return views
