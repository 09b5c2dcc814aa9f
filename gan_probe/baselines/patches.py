"""Image patches: random sampling for dictionary learning, dense extraction for encoding, normalisation.

A patch vector lists its pixels row by row, column by column, channel last (``(p, p, C)`` flattened, the
memory order of the (N, H, W, C) uint8 arrays), both for the random patches the dictionary is learned on and
for the dense patches of encoding. Values stay on the 0..255 pixel scale, as in the original code (its
normalisation constant 10 assumes that scale).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError


def patch_grid(height: int, width: int, patch: int, stride: int = 1) -> tuple[int, int]:
    """Number of patch positions (rows, columns) in an image.

    >>> patch_grid(32, 32, 6)
    (27, 27)
    >>> patch_grid(32, 32, 6, stride=2)
    (14, 14)
    """
    if patch > height or patch > width:
        raise ConfigError(f"--patch {patch}: larger than the {height}x{width} images")
    return (height - patch) // stride + 1, (width - patch) // stride + 1


def sample_patches(images: np.ndarray, n: int, patch: int, seed: int, chunk: int = 50_000) -> np.ndarray:
    """``n`` random ``patch`` x ``patch`` patches as a float32 (n, patch**2 * C) matrix on the 0..255 scale.

    Patch ``i`` comes from image ``order[i % N]`` of a seeded random permutation ``order`` of the N images (so
    every image gives ``n // N`` or ``n // N + 1`` patches, like the original demo which cycles through the
    training set), at a uniformly random position. ``images`` is uint8 (N, H, W, C) and may be memory-mapped:
    it is read in index order, a chunk at a time.

    >>> x = sample_patches(np.zeros((4, 8, 8, 3), np.uint8), n=10, patch=3, seed=0)
    >>> x.shape, x.dtype
    ((10, 27), dtype('float32'))
    """
    count, height, width, channels = images.shape
    patch_grid(height, width, patch)
    rng = np.random.default_rng(seed)
    order = rng.permutation(count)
    which = order[np.arange(n) % count]
    rows = rng.integers(0, height - patch + 1, size=n)
    cols = rng.integers(0, width - patch + 1, size=n)
    out = np.empty((n, channels * patch * patch), dtype=np.float32)
    offsets = np.arange(patch)
    by_image = np.argsort(which, kind="stable")
    for start in range(0, n, chunk):
        sel = by_image[start:start + chunk]
        lo, hi = int(which[sel].min()), int(which[sel].max()) + 1
        block = np.asarray(images[lo:hi])
        r = rows[sel, None, None] + offsets[None, :, None]
        c = cols[sel, None, None] + offsets[None, None, :]
        got = block[(which[sel] - lo)[:, None, None], r, c]           # (m, p, p, C)
        out[sel] = got.reshape(len(sel), -1)
    return out


def extract_patches(images: torch.Tensor, patch: int, stride: int = 1) -> torch.Tensor:
    """All patches of a uint8 (B, H, W, C) batch as a float32 (B, positions, patch**2 * C) tensor.

    Positions are in row-major grid order (row ``r``, column ``c`` is position ``r * grid_width + c``). The
    patches are gathered from a strided view and converted to float32 in one copy.

    >>> extract_patches(torch.arange(16, dtype=torch.uint8).view(1, 4, 4, 1), patch=2, stride=2)[0].tolist()
    [[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0], [8.0, 9.0, 12.0, 13.0], [10.0, 11.0, 14.0, 15.0]]
    """
    b, height, width, c = images.shape
    gh, gw = patch_grid(height, width, patch, stride)
    view = images.unfold(1, patch, stride).unfold(2, patch, stride)    # (B, gh, gw, C, p, p)
    out = torch.empty((b, gh, gw, patch, patch, c), dtype=torch.float32, device=images.device)
    out.copy_(view.permute(0, 1, 2, 4, 5, 3))
    return out.view(b, gh * gw, patch * patch * c)


def normalise_patches_(x: torch.Tensor, eps: float = 10.0) -> torch.Tensor:
    """In place: per-patch brightness/contrast normalisation ``(x - mean) / sqrt(var + eps)`` along the last axis.

    ``var`` is the unbiased sample variance (denominator D - 1), as MATLAB's ``var`` in the original code.

    >>> normalise_patches_(torch.tensor([[0., 2., 4.]]), eps=0.0)
    tensor([[-1.,  0.,  1.]])
    """
    dim = x.shape[-1]
    x.sub_(x.sum(dim=-1, keepdim=True).div_(dim))
    var = row_dots(x).div_(max(dim - 1, 1))
    return x.mul_(var.add_(eps).rsqrt_())


def row_dots(x: torch.Tensor) -> torch.Tensor:
    """``(x * x).sum(-1, keepdim=True)`` without the temporary (a batched 1 x D @ D x 1 product; much faster on
    CPU than ``var_mean`` or ``vecdot`` for short rows).

    >>> row_dots(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [[5.0], [25.0]]
    """
    rows = x.reshape(-1, 1, x.shape[-1])
    return torch.bmm(rows, rows.transpose(1, 2)).view(*x.shape[:-1], 1)


def normalise_patches(x: np.ndarray, eps: float = 10.0) -> np.ndarray:
    """NumPy version of :func:`normalise_patches_` (returns a new array of the same dtype)."""
    x = np.asarray(x)
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.square(centred).sum(axis=-1, keepdims=True) / max(x.shape[-1] - 1, 1)
    return (centred / np.sqrt(var + eps)).astype(x.dtype, copy=False)
