"""A grid of generated samples from fixed latent codes (``gan-probe viz samples``).

The codes are ``latents(prior, n, seed)``: the same ``--n`` and ``--seed`` give the same samples in
``viz samples`` and ``viz arithmetic --grid-seed`` (with ``--grid-n``), so indices read off a numbered
grid select those samples.

>>> from gan_probe.models.checkpoint import load_models                    # doctest: +SKIP
>>> fig = samples_figure(load_models("run/checkpoint.pt"), n=64, seed=0, numbers=True)  # doctest: +SKIP
>>> save_figure(fig, "samples.png")  # doctest: +SKIP
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .common import decode, latents, mosaic, new_figure, require_generator, show, to_display

PAD = 2


def sample_grid(models, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, images): ``n`` latent codes drawn with ``seed`` and their decoded images in [-1, 1]."""
    if n < 1:
        raise ConfigError(f"--n must be positive, got {n}")
    gen = require_generator(models)
    z = latents(gen.prior, n, seed)
    return z, decode(gen, z)


def samples_figure(models, n: int = 64, seed: int = 0, nrow: int | None = None, numbers: bool = False,
                   title: str | None = None):
    """A Figure with ``n`` samples in a grid of ``nrow`` columns (default: about square).

    ``numbers`` writes each sample's index (0-based, row by row) in its top-left corner, for choosing the
    concepts of ``viz arithmetic``.
    """
    _, images = sample_grid(models, n, seed)
    cols = nrow or math.ceil(math.sqrt(n))
    grid = mosaic(to_display(images), nrow=cols, pad=PAD)
    size = images.shape[-1]
    rows = math.ceil(n / cols)
    scale = 0.6 if size <= 32 else 0.9  # inches per tile
    fig = new_figure(cols * scale, rows * scale + (0.35 if title else 0.05))
    ax = fig.add_axes((0, 0, 1, 1 if not title else 1 - 0.35 / (rows * scale + 0.35)))
    show(ax, grid)
    if numbers:
        for i in range(n):
            r, c = divmod(i, cols)
            ax.text(c * (size + PAD) + 1, r * (size + PAD) + 1, str(i), fontsize=6, color="yellow",
                    va="top", ha="left", bbox=dict(facecolor="black", alpha=0.6, pad=0.5, linewidth=0))
    if title:
        fig.suptitle(title, fontsize=9, y=0.995, va="top")
    return fig
