"""Walks in latent space between random points (``gan-probe viz interpolate``; the DCGAN paper's figure 4).

Each row decodes ``steps`` codes on the path from one random code to another: straight lines (``linear``) or
great circles (``slerp``, which keeps the norm typical of a Gaussian prior). The first and last columns are
exactly the decoded endpoints.

>>> z0, z1 = torch.zeros(1, 2), torch.tensor([[2.0, 0.0]])
>>> interpolation_path(z0, z1, 3, "linear")[0].tolist()
[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]
>>> path = interpolation_path(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 3, "slerp")
>>> [round(v, 4) for v in path[0, 1].tolist()]
[0.7071, 0.7071]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .common import decode, latents, mosaic, new_figure, require_generator, show, to_display

MODES = ("linear", "slerp")


def default_mode(latent: str) -> str:
    """``slerp`` for the Gaussian prior, ``linear`` for uniform and mixture priors."""
    return "slerp" if latent == "normal" else "linear"


def interpolation_path(z0: torch.Tensor, z1: torch.Tensor, steps: int, mode: str = "linear") -> torch.Tensor:
    """Codes (B, steps, nz) from ``z0`` (B, nz) to ``z1``; the endpoints are copied exactly."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
    if steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {steps}")
    a, b = z0.double(), z1.double()
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[None, :, None]
    lin = a[:, None] * (1 - t) + b[:, None] * t
    if mode == "linear":
        path = lin
    else:
        cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
        omega = torch.arccos(cos.clamp(-1, 1))[:, None, None]
        sin = torch.sin(omega)
        safe = sin.abs() > 1e-6  # (anti)parallel codes: fall back to the straight line
        sin = torch.where(safe, sin, torch.ones_like(sin))
        sph = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin
        path = torch.where(safe, sph, lin)
    path = path.to(z0.dtype)
    path[:, 0], path[:, -1] = z0, z1
    return path


@dataclass
class Interpolation:
    """The codes (rows, steps, nz) and images (rows, steps, C, H, W) of an interpolation figure."""

    z: torch.Tensor
    images: torch.Tensor
    mode: str


def interpolate(models, rows: int = 10, steps: int = 10, mode: str | None = None, seed: int = 0) -> Interpolation:
    """Decode ``rows`` walks of ``steps`` codes between pairs of codes drawn from the prior with ``seed``."""
    if rows < 1:
        raise ConfigError(f"--rows must be positive, got {rows}")
    gen = require_generator(models)
    mode = mode or default_mode(models.config.latent)
    ends = latents(gen.prior, 2 * rows, seed)
    path = interpolation_path(ends[:rows], ends[rows:], steps, mode)
    images = decode(gen, path.reshape(rows * steps, -1))
    return Interpolation(path, images.reshape(rows, steps, *images.shape[1:]), mode)


def interpolate_figure(models, rows: int = 10, steps: int = 10, mode: str | None = None, seed: int = 0):
    """A Figure with one latent walk per row, left to right (see :func:`interpolate`)."""
    result = interpolate(models, rows, steps, mode, seed)
    tiles = to_display(result.images.reshape(rows * steps, *result.images.shape[2:]))
    grid = mosaic(tiles, nrow=steps, pad=2)
    scale = 0.6
    fig = new_figure(steps * scale, rows * scale + 0.3)
    ax = fig.add_axes((0, 0, 1, 1 - 0.3 / (rows * scale + 0.3)))
    show(ax, grid)
    fig.suptitle(f"{result.mode} interpolation in latent space ({models.config.latent} prior)", fontsize=9,
                 y=0.995, va="top")
    return fig
