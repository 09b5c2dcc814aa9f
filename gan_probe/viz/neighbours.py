"""Nearest training images of generated samples (``gan-probe viz neighbours``): the memorisation check.

For each sample, the ``k`` closest training images by Euclidean distance in pixel space (images in [-1, 1])
and in discriminator-feature space (every conv layer max-pooled to a 4x4 grid and concatenated, the features
the linear probe uses; :func:`gan_probe.features.pooled_features`). A generator that memorised its data
shows near-copies in the pixel column.

>>> from gan_probe.models.checkpoint import load_models                       # doctest: +SKIP
>>> found = nearest_neighbours(load_models("ckpt.pt"), train_images, n=8, k=5)  # doctest: +SKIP
>>> found.pixel_index.shape, found.feature_index.shape  # doctest: +SKIP
((8, 5), (8, 5))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..features.pooling import pooled_features
from .common import decode, latents, mosaic, new_figure, require_generator, show, to_display, to_model_input


@dataclass
class Neighbours:
    """Samples (n, C, H, W) in [-1, 1] and, per sample, the indices (into the searched images) and distances
    of the ``k`` nearest images in pixel space and in D-feature space, nearest first."""

    samples: torch.Tensor
    pixel_index: np.ndarray
    pixel_distance: np.ndarray
    feature_index: np.ndarray
    feature_distance: np.ndarray


def _merge(best_d: torch.Tensor, best_i: torch.Tensor, d: torch.Tensor, offset: int, k: int):
    idx = torch.arange(offset, offset + d.shape[1]).expand(d.shape[0], -1)
    all_d, all_i = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
    order = torch.sort(all_d, dim=1, stable=True).indices[:, :k]  # ties: lower index first
    return all_d.gather(1, order), all_i.gather(1, order)


@torch.no_grad()
def nearest_neighbours(models, images: np.ndarray, n: int = 8, k: int = 5, seed: int = 0, grid: int = 4,
                       batch_size: int = 512, progress: bool = False) -> Neighbours:
    """Search uint8 (N, H, W, 3) ``images`` for the ``k`` nearest neighbours of ``n`` samples drawn with ``seed``."""
    if n < 1 or k < 1:
        raise ConfigError(f"--n and --k must be positive, got {n} and {k}")
    if len(images) < k:
        raise ConfigError(f"--k {k}: only {len(images)} images to search")
    gen, disc = require_generator(models), models.discriminator.eval()
    if images.shape[1] != models.config.image_size:
        raise ConfigError(f"images are {images.shape[1]}x{images.shape[2]}, the models work at "
                          f"{models.config.image_size}x{models.config.image_size}")
    device = next(disc.parameters()).device
    samples = decode(gen, latents(gen.prior, n, seed))
    s_pix = samples.flatten(1).double()
    s_feat = pooled_features(disc, samples.to(device), grid).double().cpu()
    empty = (torch.empty(n, 0, dtype=torch.float64), torch.empty(n, 0, dtype=torch.long))
    pix, feat = empty, empty
    starts = range(0, len(images), batch_size)
    if progress:
        from ..progress import bar

        starts = bar(starts, desc="neighbours", unit="batch", dynamic_ncols=True)
    for start in starts:
        x = to_model_input(images[start:start + batch_size])
        pix = _merge(*pix, torch.cdist(s_pix, x.flatten(1).double()), start, k)
        f = pooled_features(disc, x.to(device), grid).double().cpu()
        feat = _merge(*feat, torch.cdist(s_feat, f), start, k)
    return Neighbours(samples, pix[1].numpy(), pix[0].numpy(), feat[1].numpy(), feat[0].numpy())


def neighbours_figure(models, images: np.ndarray, n: int = 8, k: int = 5, seed: int = 0, grid: int = 4,
                      batch_size: int = 512, progress: bool = False):
    """A Figure: generated samples, their nearest images in pixel space, and in D-feature space."""
    found = nearest_neighbours(models, images, n, k, seed, grid, batch_size, progress)
    display = to_display(images[np.concatenate([found.pixel_index.ravel(), found.feature_index.ravel()])])
    pix_tiles, feat_tiles = display[:n * k], display[n * k:]
    panels = [("generated", mosaic(to_display(found.samples), nrow=1, pad=2)),
              ("nearest training images\nin pixel space (L2)", mosaic(pix_tiles, nrow=k, pad=2)),
              (f"nearest training images in D-feature\nspace ({grid}x{grid} max-pooled, L2)",
               mosaic(feat_tiles, nrow=k, pad=2))]
    tile_in = 0.55
    size = images.shape[1]
    widths = [img.shape[1] / (size + 2) * tile_in for _, img in panels]
    gap = max(0.25, 2.0 - widths[1])  # room for the two-line titles when k is small
    height = n * tile_in + 0.5
    width = sum(widths) + gap * (len(panels) - 1)
    fig = new_figure(width, height)
    left = 0.0
    for (title, img), w in zip(panels, widths):
        ax = fig.add_axes((left / width, 0, w / width, (n * tile_in) / height))
        show(ax, img, title, fontsize=7)
        left += w + gap
    return fig
