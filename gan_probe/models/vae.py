"""A convolutional variational autoencoder (Kingma & Welling 2014) laid out like the DCGAN pair.

- Encoder: the discriminator's conv stack of the same preset (``features``: strided convs, batch norm on all but
  the first, LeakyReLU 0.2), then a 4x4 conv over the last 4x4 map to ``mu`` and ``log sigma^2`` (``2 nz``
  outputs). Its conv layers are probed exactly like D's (:func:`gan_probe.features.pooling.pooled_features`), and
  ``mu`` is the representation the DCGAN paper's SVHN table calls M1.
- Decoder: the preset's generator (:class:`gan_probe.models.dcgan.Generator`), whose tanh output is the mean of
  the likelihood.
- Likelihood: a Gaussian with one learned scale per colour channel, ``x ~ N(decoder(z), sigma_c^2)`` on images
  scaled to [-1, 1]. A fixed scale makes the balance between reconstruction and KL an arbitrary constant (with
  sigma = 1 on [-1, 1] pixels the KL term dominates and the codes collapse to the prior); learning it lets the
  ELBO set that balance itself, and the ELBO stays a proper bound on the log-likelihood of the continuous
  images. The scale is kept above :data:`MIN_LOG_SCALE` so the bound stays finite.
- Posterior ``q(z|x) = N(mu, diag(sigma^2))``, prior ``N(0, I)``, ``z = mu + sigma * eps``; the KL term in closed
  form, :func:`gaussian_kl`.

Losses are in nats per image (sums over pixels and latent dimensions, means over the batch).

>>> from gan_probe.models import preset_config
>>> vae = VAE(preset_config("small32", ndf=8, ngf=8, nz=4))
>>> terms = vae.elbo_terms(torch.zeros(2, 3, 32, 32), torch.zeros(2, 4))
>>> sorted(terms)
['elbo', 'kl', 'loss', 'recon']
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig
from .dcgan import Discriminator, Generator, init_dcgan_weights

#: the smallest log standard deviation of the likelihood (sigma >= e^-5 ~ 0.0067 on the [-1, 1] scale: about a
#: third of one 8-bit grey level, 2/255)
MIN_LOG_SCALE = -5.0
LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per row, in nats: ``0.5 sum(mu^2 + e^logvar - 1 - logvar)``.

    >>> gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2)).tolist()
    [0.5]
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """``-log N(x; mean, exp(log_scale)^2)`` summed over each image's pixels (``log_scale`` per channel)."""
    log_scale = log_scale.view(1, -1, 1, 1)
    z = (x - mean) * torch.exp(-log_scale)
    return (0.5 * z.pow(2) + log_scale + 0.5 * LOG_2PI).flatten(1).sum(1)


class VAE(nn.Module):
    """Encoder (D's conv stack + a 4x4 conv to mu and log sigma^2) and decoder (the preset's generator)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.latent != "normal":
            raise ValueError(f"a VAE's prior is N(0, I); latent {config.latent!r} is not supported")
        self.config = config
        body = Discriminator(config)
        self.features = body.features                      # probed like D's conv layers
        channels = body.feature_channels[-1]
        self.head = nn.Conv2d(channels, 2 * config.nz, 4, 1, 0)
        init_dcgan_weights(self.head)
        self.decoder = Generator(config)
        self.log_scale = nn.Parameter(torch.zeros(config.channels))

    @property
    def feature_channels(self) -> list[int]:
        return [block[0].out_channels for block in self.features]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu`` and ``log sigma^2`` of ``q(z|x)`` for images in [-1, 1]."""
        h = x
        for block in self.features:
            h = block(h)
        stats = self.head(h).flatten(1)
        mu, logvar = stats.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def elbo_terms(self, x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of ``recon`` (-log p(x|z)), ``kl`` and ``elbo`` = -(recon + kl), and ``loss`` = -elbo,
        with ``z = mu + sigma * eps`` (``eps`` drawn by the caller: reproducible steps)."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        mean = self.decode(z).float()
        log_scale = self.log_scale.clamp(min=MIN_LOG_SCALE)
        recon = gaussian_nll(x.float(), mean, log_scale).mean()
        kl = gaussian_kl(mu.float(), logvar.float()).mean()
        return {"recon": recon, "kl": kl, "elbo": -(recon + kl), "loss": recon + kl}


class MuLayer(nn.Module):
    """The encoder's head read as a layer: the posterior means ``mu`` (B, nz) of the last conv map."""

    def __init__(self, head: nn.Conv2d, nz: int):
        super().__init__()
        self.head, self.nz = head, nz

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h).flatten(1)[:, :self.nz]


class VAEEncoder(nn.Module):
    """A VAE's encoder as the feature extractor sees a discriminator: ``features`` are its conv blocks
    (``conv1`` .. ``convN``, max-pooled to the grid like D's) followed by ``mu`` (:class:`MuLayer`, taken as it
    is: ``nz`` values, the DCGAN paper's M1 representation). Shares its modules with ``vae``.

    >>> from gan_probe.models import preset_config
    >>> enc = VAEEncoder(VAE(preset_config("small32", ndf=8, ngf=8, nz=4)))
    >>> enc.layer_names, enc.feature_channels, enc.flat_layers
    (['conv1', 'conv2', 'conv3', 'mu'], [8, 16, 32, 4], (3,))
    """

    def __init__(self, vae: VAE):
        super().__init__()
        self.config = vae.config
        self.features = nn.ModuleList([*vae.features, MuLayer(vae.head, vae.config.nz)])
        n = len(vae.features)
        self.feature_channels = [*vae.feature_channels, vae.config.nz]
        self.layer_names = [f"conv{i + 1}" for i in range(n)] + ["mu"]
        self.flat_layers = (n,)  # layers whose (B, C) output is taken without pooling
