"""GAN objectives on discriminator logits (the raw, linear output of ``Discriminator.forward``).

``d_loss(kind, real_logits, fake_logits)`` is minimised by the discriminator, ``g_loss(kind, fake_logits)`` by
the generator; both return a scalar (batch means).

- ``bce``: the DCGAN objective, sigmoid cross-entropy: D minimises -log s(D(x)) - log(1 - s(D(G(z)))); G uses
  the non-saturating form -log s(D(G(z))).
- ``ls``: least-squares GAN (Mao et al. 2017, targets a=0, b=1, c=1): D minimises
  0.5*(D(x)-1)^2 + 0.5*D(G(z))^2, G minimises 0.5*(D(G(z))-1)^2.
- ``hinge``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).

>>> real, fake = torch.tensor([2.0]), torch.tensor([-0.5])
>>> float(d_loss("hinge", real, fake)), float(g_loss("hinge", fake))
(0.5, 0.5)
>>> float(d_loss("ls", real, fake)), float(g_loss("ls", fake))
(0.625, 1.125)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

LOSSES = ("bce", "ls", "hinge")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss for logits on a real and a generated batch."""
    real, fake = real.float(), fake.float()
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "ls":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ConfigError(f"--loss {kind!r}: expected one of {', '.join(LOSSES)}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss for the discriminator's logits on a generated batch."""
    fake = fake.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "ls":
        return 0.5 * ((fake - 1) ** 2).mean()
    if kind == "hinge":
        return -fake.mean()
    raise ConfigError(f"--loss {kind!r}: expected one of {', '.join(LOSSES)}")
