"""DiffHEG's generator: a DDPM over entity embeddings (schedule) and its conditional noise predictor."""

from dhns.diffusion.denoiser import ConditionalDenoiser, sinusoidal_embedding
from dhns.diffusion.schedule import GaussianDiffusion

__all__ = ["ConditionalDenoiser", "GaussianDiffusion", "sinusoidal_embedding"]
