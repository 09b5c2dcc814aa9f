"""Latent priors p(z): standard normal, uniform(-1, 1), and DeLiGAN's learnable mixture of Gaussians."""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


class LatentPrior(nn.Module):
    """Samples z of shape (n, nz). Parameter-free for ``normal`` and ``uniform``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.kind = config.latent
        self.nz = config.nz
        if self.kind == "mog":
            raise NotImplementedError("the mixture-of-Gaussians prior is not implemented yet")

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """Draw ``n`` latent codes; with the same ``generator`` state the draw is reproducible."""
        device = device if device is not None else self._device()
        if self.kind == "uniform":
            return torch.rand(n, self.nz, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.nz, generator=generator, device=device)

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def regularizer(self) -> torch.Tensor:
        """Extra generator loss term (non-zero only for priors with parameters)."""
        return torch.zeros(())
