"""Vector arithmetic on latent codes (``gan-probe viz arithmetic``; the DCGAN paper's figure 7).

Pick samples of three concepts from a seeded grid (``viz samples --seed S --numbers`` shows the indices),
average the codes of each concept, and decode ``mean(A) - mean(B) + mean(C)`` together with variations that
add uniform noise in [-perturb, perturb] to it (the paper used 0.25).

>>> from gan_probe.models.checkpoint import load_models                          # doctest: +SKIP
>>> models = load_models("ckpt.pt")  # doctest: +SKIP
>>> result = latent_arithmetic(models, a=[3, 9, 14], b=[1, 5, 7], c=[2, 8, 30], grid_seed=0)  # doctest: +SKIP
>>> result.result_images.shape  # doctest: +SKIP
torch.Size([9, 3, 32, 32])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError
from .common import decode, latents, new_figure, require_generator, show, strip, to_display

CONCEPTS = ("A", "B", "C")


def parse_indices(text: str, flag: str) -> list[int]:
    """``"3,9,14"`` -> ``[3, 9, 14]`` (a clear error names ``flag`` otherwise)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated sample indices, e.g. 3,9,14") from None
    if not values:
        raise ConfigError(f"{flag} {text!r}: give at least one sample index")
    return values


def combine(means: torch.Tensor) -> torch.Tensor:
    """``A - B + C`` for a (3, nz) stack of concept means."""
    return means[0] - means[1] + means[2]


@dataclass
class Arithmetic:
    """Codes and images of one arithmetic figure.

    ``concept_images[i]`` (len(indices[i]), C, H, W) are the chosen samples of concept i, ``means`` (3, nz)
    their average codes and ``mean_images`` (3, C, H, W) the decoded averages; ``result_z`` (1 + variations,
    nz) holds ``A - B + C`` first, then its perturbed copies, decoded in ``result_images``.
    """

    indices: list[list[int]]
    grid_z: torch.Tensor
    concept_images: list[torch.Tensor]
    means: torch.Tensor
    mean_images: torch.Tensor
    result_z: torch.Tensor
    result_images: torch.Tensor
    perturb: float


def latent_arithmetic(models, a: Sequence[int], b: Sequence[int], c: Sequence[int], grid_seed: int = 0,
                      grid_n: int = 64, perturb: float = 0.25, variations: int = 8, seed: int = 0) -> Arithmetic:
    """Average the codes of samples ``a``, ``b``, ``c`` (indices into the ``grid_seed`` grid) and decode A-B+C."""
    gen = require_generator(models)
    if perturb < 0:
        raise ConfigError(f"--perturb must be non-negative, got {perturb}")
    if variations < 0:
        raise ConfigError(f"--variations must be non-negative, got {variations}")
    indices = [list(map(int, idx)) for idx in (a, b, c)]
    for name, idx in zip("abc", indices):
        if not idx:
            raise ConfigError(f"--{name}: give at least one sample index")
        bad = [i for i in idx if not 0 <= i < grid_n]
        if bad:
            raise ConfigError(f"--{name} {','.join(map(str, idx))}: indices must be in 0..{grid_n - 1} "
                              f"(the grid has --grid-n {grid_n} samples)")
    grid_z = latents(gen.prior, grid_n, grid_seed)
    means = torch.stack([grid_z[idx].mean(0) for idx in indices])
    target = combine(means)
    noise = torch.rand(variations, grid_z.shape[1], generator=torch.Generator().manual_seed(int(seed)))
    result_z = torch.cat([target[None], target[None] + (2 * noise - 1) * perturb])
    concept_images = [decode(gen, grid_z[idx]) for idx in indices]
    return Arithmetic(indices, grid_z, concept_images, means, decode(gen, means), result_z, decode(gen, result_z),
                      perturb)


def arithmetic_figure(models, a: Sequence[int], b: Sequence[int], c: Sequence[int], grid_seed: int = 0,
                      grid_n: int = 64, perturb: float = 0.25, variations: int = 8, seed: int = 0):
    """A Figure: one row per concept (its samples, then the decoded mean code), then A - B + C and variations."""
    r = latent_arithmetic(models, a, b, c, grid_seed, grid_n, perturb, variations, seed)
    rows = []
    for name, idx, imgs, mean_img in zip(CONCEPTS, r.indices, r.concept_images, r.mean_images):
        tiles = list(to_display(imgs)) + [to_display(mean_img[None])[0]]
        rows.append((f"{name}: samples {', '.join(map(str, idx))}  |  decoded mean code", strip(tiles, [len(idx) - 1])))
    result_tiles = list(to_display(r.result_images))
    label = "mean(A) - mean(B) + mean(C)"
    if variations:
        label += f"  |  plus uniform noise in [-{perturb:g}, {perturb:g}]"
    rows.append((label, strip(result_tiles, [0])))
    width_px = max(img.shape[1] for _, img in rows)
    tile = r.result_images.shape[-1]
    scale = 0.55 / tile  # inches per pixel
    heights = [img.shape[0] * scale + 0.3 for _, img in rows]
    fig = new_figure(max(width_px * scale, 4.0), sum(heights) + 0.35)
    top = 1 - 0.35 / (sum(heights) + 0.35)
    total = sum(heights) + 0.35
    y = top
    for (title, img), h in zip(rows, heights):
        w = img.shape[1] * scale / max(width_px * scale, 4.0)
        ax = fig.add_axes((0, y - h / total, w, (h - 0.3) / total))
        show(ax, img, title, fontsize=8)
        y -= h / total
    fig.suptitle(f"latent arithmetic (grid seed {grid_seed}, {models.config.latent} prior)", fontsize=9, y=0.998,
                 va="top")
    return fig
