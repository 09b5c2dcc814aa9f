"""Discriminator features as in the DCGAN paper: every conv layer max-pooled to a grid x grid map.

For the ``paper32`` discriminator (6 conv layers of 128, 128, 256, 256, 512, 512 channels) and ``grid=4``
that is (128 + 128 + 256 + 256 + 512 + 512) x 16 = 28,672 features per image. A layer whose map is already
``grid x grid`` is taken as is; a smaller one is replicated up to the grid (adaptive max pooling).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models import Discriminator


def select_layers(disc: Discriminator, layers: Sequence[int] | None) -> list[int]:
    """Validate 0-based layer indices (``None`` = every conv layer)."""
    n = len(disc.features)
    if layers is None:
        return list(range(n))
    chosen = sorted(set(int(i) for i in layers))
    bad = [i for i in chosen if not 0 <= i < n]
    if bad or not chosen:
        raise ConfigError(f"--layers {','.join(map(str, layers))}: the discriminator has conv layers 0..{n - 1}")
    return chosen


def layer_dims(disc: Discriminator, grid: int, layers: Sequence[int] | None = None) -> list[int]:
    """Feature dimensions contributed by each selected layer."""
    return [disc.feature_channels[i] * grid * grid for i in select_layers(disc, layers)]


@torch.no_grad()
def pooled_features(disc: Discriminator, images: torch.Tensor, grid: int = 4,
                    layers: Sequence[int] | None = None) -> torch.Tensor:
    """Pooled, flattened, concatenated activations of ``disc`` for float images in [-1, 1].

    Returns a float32 (B, sum(C_l * grid * grid)) tensor; within a layer the order is (channel, row, col).

    >>> from gan_probe.models import preset_config
    >>> d = Discriminator(preset_config("paper32")).eval()
    >>> pooled_features(d, torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 28672])
    """
    chosen = select_layers(disc, layers)
    last = max(chosen)
    pieces = []
    x = images
    for i, block in enumerate(disc.features):
        x = block(x)
        if i in chosen:
            pieces.append(F.adaptive_max_pool2d(x.float(), grid).flatten(1))
        if i == last:
            break
    return torch.cat(pieces, dim=1)
