"""Latent priors p(z): standard normal, uniform(-1, 1), and DeLiGAN's learnable mixture of Gaussians.

The mixture (``latent="mog"``, Gurumurthy et al. 2017, "DeLiGAN") has ``mog_components`` components with
learnable means ``mu`` (N, nz), initialised uniform(-1, 1), and learnable standard deviations ``sigma``
(N, nz), initialised to 0.2. A code is drawn by picking a component k uniformly and reparameterising,
``z = mu[k] + sigma[k] * eps`` with ``eps ~ N(0, I)``, so gradients of the generator's loss reach ``mu`` and
``sigma``. :meth:`LatentPrior.regularizer` is DeLiGAN's term that keeps the standard deviations from
collapsing to zero: ``weight * sum_k ||1 - sigma_k||^2 / N``.

>>> from gan_probe.models import preset_config
>>> prior = LatentPrior(preset_config("small32", latent="mog", nz=4, mog_components=3))
>>> prior.mu.shape, prior.sigma[0, 0].item()
(torch.Size([3, 4]), 0.20000000298023224)
>>> prior.sample(5, generator=torch.Generator().manual_seed(0)).shape
torch.Size([5, 4])
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

MOG_SIGMA_INIT = 0.2
MOG_MU_RANGE = 1.0


class LatentPrior(nn.Module):
    """Samples z of shape (n, nz). Parameter-free for ``normal`` and ``uniform``; ``mog`` has ``mu``/``sigma``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.kind = config.latent
        self.nz = config.nz
        if self.kind == "mog":
            n = config.mog_components
            # the global RNG draws the means, like every other initial weight (seeded by the trainer)
            self.mu = nn.Parameter(torch.empty(n, self.nz).uniform_(-MOG_MU_RANGE, MOG_MU_RANGE))
            self.sigma = nn.Parameter(torch.full((n, self.nz), MOG_SIGMA_INIT))

    @property
    def components(self) -> int:
        """Number of mixture components (1 for the parameter-free priors)."""
        return int(self.mu.shape[0]) if self.kind == "mog" else 1

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """Draw ``n`` latent codes; with the same ``generator`` state the draw is reproducible.

        The random numbers are drawn on ``device`` (default: the prior's device), which must match the
        ``generator``'s device. For ``mog`` the result lives on the parameters' device and keeps the autograd
        graph to ``mu`` and ``sigma``.
        """
        device = torch.device(device) if device is not None else self._device()
        if self.kind == "uniform":
            return torch.rand(n, self.nz, generator=generator, device=device) * 2 - 1
        if self.kind == "mog":
            k, eps = self.draw_noise(n, generator=generator, device=device)
            return self.transform(k, eps)
        return torch.randn(n, self.nz, generator=generator, device=device)

    def draw_noise(self, n: int, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameter-free part of a mixture draw: component indices (n,) and standard normal noise (n, nz)."""
        if self.kind != "mog":
            raise ValueError(f"draw_noise is only defined for the mixture prior, not {self.kind!r}")
        device = torch.device(device) if device is not None else self._device()
        k = torch.randint(0, self.components, (n,), generator=generator, device=device)
        eps = torch.randn(n, self.nz, generator=generator, device=device)
        return k, eps

    def transform(self, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Reparameterised mixture codes ``mu[k] + sigma[k] * eps`` (differentiable in ``mu`` and ``sigma``)."""
        k, eps = k.to(self.mu.device), eps.to(self.mu.device, self.mu.dtype)
        return self.mu[k] + self.sigma[k] * eps

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def regularizer(self, weight: float = 1.0) -> torch.Tensor:
        """Extra generator loss term: ``weight * sum_k ||1 - sigma_k||^2 / N`` for ``mog``, else zero.

        Choosing ``weight``: Adam normalises each parameter's step, so what matters is this term's gradient
        on ``sigma`` (``2 * weight * (1 - sigma) / N`` per element) relative to the GAN loss's. With
        ``weight = 1`` the regulariser dominates and every ``sigma`` drifts to 1 at the learning rate;
        about ``0.01`` keeps the two comparable (small32 on CIFAR-10), and the DeLiGAN authors' MNIST code,
        ``mean((1 - sigma)^2) / 3``, corresponds to ``weight = 1 / (3 * nz)``.

        >>> from gan_probe.models import preset_config
        >>> prior = LatentPrior(preset_config("small32", latent="mog", nz=2, mog_components=4))
        >>> round(prior.regularizer(0.5).item(), 4)  # 0.5 * 4 * 2 * 0.8**2 / 4
        0.64
        """
        if self.kind != "mog":
            return torch.zeros(())
        return weight * ((1 - self.sigma) ** 2).sum() / self.components

    def extra_repr(self) -> str:
        extra = f", components={self.components}" if self.kind == "mog" else ""
        return f"kind={self.kind!r}, nz={self.nz}{extra}"
