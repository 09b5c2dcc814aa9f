"""Discriminator features as in the DCGAN paper: every conv layer max-pooled to a grid x grid map.

For the ``paper32`` discriminator (6 conv layers of 128, 128, 256, 256, 512, 512 channels) and ``grid=4``
that is (128 + 128 + 256 + 256 + 512 + 512) x 16 = 28,672 features per image. A layer whose map is already
``grid x grid`` is taken as is; a smaller one is replicated up to the grid (adaptive max pooling).

Layers are chosen by 0-based index or by name: ``conv1`` .. ``convN`` (a module's ``layer_names``, by default
those). A VAE's encoder (:class:`~gan_probe.models.vae.VAEEncoder`) adds ``mu``, a layer listed in the module's
``flat_layers``: its (B, nz) output is taken without pooling (nz features, not nz x grid x grid).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models import Discriminator


def layer_names(disc: Discriminator) -> list[str]:
    """The names of the module's layers: its ``layer_names``, else ``conv1`` .. ``convN``."""
    return list(getattr(disc, "layer_names", None) or [f"conv{i + 1}" for i in range(len(disc.features))])


def select_layers(disc: Discriminator, layers: Sequence[int | str] | None) -> list[int]:
    """Validate 0-based layer indices or layer names (``None`` = every layer); returns sorted indices.

    >>> from gan_probe.models import preset_config
    >>> select_layers(Discriminator(preset_config("small32")), ["conv3", 0])
    [0, 2]
    """
    n = len(disc.features)
    if layers is None:
        return list(range(n))
    names = layer_names(disc)
    index = {name: i for i, name in enumerate(names)}
    chosen = sorted(set(index.get(i, -1) if isinstance(i, str) else int(i) for i in layers))
    bad = [i for i in chosen if not 0 <= i < n]
    if bad or not chosen:
        if names == [f"conv{i + 1}" for i in range(n)]:
            raise ConfigError(f"--layers {','.join(map(str, layers))}: the discriminator has conv layers 0..{n - 1}")
        raise ConfigError(f"--layers {','.join(map(str, layers))}: the model has layers 0..{n - 1}, named "
                          f"{', '.join(names)}")
    return chosen


def layer_dims(disc: Discriminator, grid: int, layers: Sequence[int | str] | None = None) -> list[int]:
    """Feature dimensions contributed by each selected layer."""
    flat = getattr(disc, "flat_layers", ())
    return [disc.feature_channels[i] * (1 if i in flat else grid * grid) for i in select_layers(disc, layers)]


@torch.no_grad()
def pooled_features(disc: Discriminator, images: torch.Tensor, grid: int = 4,
                    layers: Sequence[int | str] | None = None) -> torch.Tensor:
    """Pooled, flattened, concatenated activations of ``disc`` for float images in [-1, 1] (a (B, C) output,
    a VAE's ``mu``, is taken as it is).

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
            pieces.append(x.float().flatten(1) if x.dim() == 2 else F.adaptive_max_pool2d(x.float(), grid).flatten(1))
        if i == last:
            break
    return torch.cat(pieces, dim=1)
