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

    @property
    def view_names(self) -> tuple[str, ...]:
        """The views an entity can have, in attention order: the structural embedding, then each modality."""
        return ("structural",) + self.modalities

    def forward(self, entity_ids: Tensor) -> Tensor:
        """(...,) long ids -> (..., width) fused embeddings."""
        if not self.modalities:
            return self.structural(entity_ids)
        return self.fuse(self.modality_embeddings(entity_ids), self.modality_presence(entity_ids))

    def attention_weights(self, views: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """(..., M) softmax over the views present (`view_names` order) of w^T tanh(e_m).

        `views[name]` is (..., width), `present[name]` (...,) bool. The same function weighs real entities
        and generated ones (NTAT fuses generated views as the model fuses real entities), so the attention
        parameter learns from both. A row must have at least one view present (real ones always have the
        structural view).
        """
        dtype = self.logit_dtype(views)
        attention = self.attention.to(dtype)
        with torch.autocast(self.attention.device.type, enabled=False):
            logits = torch.stack([torch.tanh(views[name].to(dtype)) @ attention for name in self.view_names], dim=-1)
        mask = torch.stack([present[name] for name in self.view_names], dim=-1)  # (..., M)
        return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)

    def logit_dtype(self, views: dict[str, Tensor]) -> torch.dtype:
        """The precision of the attention logits and their softmax: at least fp32, since bf16 keeps about three
        digits of a logit, and never below the model's own (a float64 model stays float64 throughout)."""
        dtype = torch.promote_types(self.attention.dtype, torch.float32)
        for name in self.view_names:
            dtype = torch.promote_types(dtype, views[name].dtype)
        return dtype

    def fuse(self, views: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """(..., width): sum_m a_m e_m over the views present, with a from `attention_weights`.

        View by view, never as one (..., M, width) stack: stacking copies every view, and the weighted sum
        over the stack and its backward make several more passes over M times the rows (a third of a
        DHNS step's hard loss went there).
        """
        if not self.modalities:
            return views["structural"]
        weights = self.attention_weights(views, present)  # (..., M)
        fused = views[self.view_names[0]] * weights[..., :1]
        for index, name in enumerate(self.view_names[1:], start=1):
            fused = fused + views[name] * weights[..., index : index + 1]
        return fused

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
