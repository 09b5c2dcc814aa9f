"""DCGAN models, presets, latent priors and GAN losses."""
from .config import LATENTS, PRESETS, ModelConfig, preset_config
from .dcgan import Discriminator, Generator, init_dcgan_weights
from .latent import LatentPrior

__all__ = ["LATENTS", "PRESETS", "ModelConfig", "preset_config", "Discriminator", "Generator",
           "init_dcgan_weights", "LatentPrior"]
