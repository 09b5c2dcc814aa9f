"""DCGAN models (and the VAE laid out like them), presets, latent priors, GAN losses and the input range."""
from .config import LATENTS, PRESETS, ModelConfig, preset_config
from .dcgan import Discriminator, Generator, init_dcgan_weights
from .inputs import to_model_range
from .latent import LatentPrior

__all__ = ["LATENTS", "PRESETS", "ModelConfig", "preset_config", "Discriminator", "Generator",
           "init_dcgan_weights", "LatentPrior", "to_model_range"]
