"""Multimodal knowledge graph completion trained with diffusion-based hierarchical negative sampling."""

__version__ = "0.1.0"
