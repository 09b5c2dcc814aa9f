"""GAN objectives on discriminator logits.

Each loss returns ``(loss_d, loss_g)`` pieces through two functions: ``d_loss(real_logits, fake_logits)``
and ``g_loss(fake_logits)``.

- ``bce``: the DCGAN objective (sigmoid cross-entropy); G uses the non-saturating form -log D(G(z)).
- ``ls``: least-squares GAN (a=0, b=1, c=1): D minimises 0.5*(D(x)-1)^2 + 0.5*D(G(z))^2, G minimises
  0.5*(D(G(z))-1)^2, with D(.) the raw (linear) output.
- ``hinge``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "ls", "hinge")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "ls":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "ls":
        return 0.5 * ((fake - 1) ** 2).mean()
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
