"""Encode images with a learned dictionary: dense patches -> triangle (or hard) codes -> 4-quadrant sum pooling.

For every patch position of an image (a ``grid_h x grid_w`` grid: 27 x 27 for 32 x 32 images, 6 x 6 patches,
stride 1) the patch is normalised and whitened to ``w``; ``z_k = ||w - c_k||`` is its distance to centroid
``k``; the triangle code is ``f_k = max(0, mean_j(z_j) - z_k)`` and the hard code is the one-hot vector of the
nearest centroid. Codes are summed over the four quadrants of the grid, giving ``4 K`` features per image laid
out quadrant-major: feature ``q * K + k`` with ``q`` = 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.

Quadrants of an odd grid: the first ``ceil(g / 2)`` rows (columns) form the top (left) half, so the middle row
and column of a 27 x 27 grid belong to the top and left quadrants (14 + 13). This is what the original's
``halfr = round(prows / 2)`` does, MATLAB rounding 13.5 up.

How the work is organised (the distance matrix, ``positions x K`` per image, is the expensive part):

* patches are gathered from a strided view of the uint8 batch and converted to float32 in one copy;
  normalisation and whitening act on this ``positions x D`` matrix (D = 108), never on ``positions x K``;
  whitening is one matrix product (plus bias) that also writes the constant column of the augmented matrix below.
* squared distances come from a single matrix product ``[w, 1, ||w||^2] @ [-2 C^T; ||c||^2; 1]`` (NumPy's
  BLAS for large products on CPU, see :mod:`gan_probe.linalg`), so the product writes
  ``||w||^2 - 2 w.c + ||c||^2`` directly;
* the remaining element-wise steps (clamp, sqrt, mean, ``relu(mean - z)``) run in place on a reused block
  buffer of a few images' top or bottom halves, sized to stay in cache, and are pooled right away: a block
  is reduced over its rows, then split at the middle column. The per-image ``positions x K`` responses never
  exist for more than one block at a time.

On CPU the matrix product takes about 55% of the time and the element-wise tail about 30%. ``torch.compile``
fuses the tail into two passes (1.55x faster tail, about 9% of the total, measured on a 2-core EPYC) at about
20 s of compilation per block shape; it is not used.
"""
from __future__ import annotations

import numpy as np
import torch

from ..linalg import check_backend, mm, prefer_numpy
from .patches import extract_patches, normalise_patches_, patch_grid, row_dots

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def quadrant_halves(grid_h: int, grid_w: int) -> tuple[int, int]:
    """Rows in the top half and columns in the left half of a ``grid_h x grid_w`` response grid.

    >>> quadrant_halves(27, 27)
    (14, 14)
    >>> quadrant_halves(4, 1)
    (2, 1)
    """
    return (grid_h + 1) // 2, (grid_w + 1) // 2


def pool_quadrants(maps: torch.Tensor) -> torch.Tensor:
    """Sum-pool (B, grid_h, grid_w, K) response maps over the four quadrants -> (B, 4 K), quadrant-major.

    The straightforward version (used as the reference in tests); the encoder pools block by block.
    """
    b, gh, gw, k = maps.shape
    hr, hc = quadrant_halves(gh, gw)
    parts = [maps[:, :hr, :hc], maps[:, :hr, hc:], maps[:, hr:, :hc], maps[:, hr:, hc:]]
    return torch.cat([p.sum(dim=(1, 2)) for p in parts], dim=1).reshape(b, 4 * k)


def default_block_elements(device: torch.device) -> int:
    """Size (in floats) of the distance block processed at once: cache-sized on CPU, large on GPUs."""
    return 1 << 26 if device.type == "cuda" else 1 << 21


class PatchEncoder:
    """A dictionary prepared on one device, turning uint8 (B, H, W, C) image batches into (B, 4 K) features.

    >>> enc = PatchEncoder(np.eye(3, 12, dtype=np.float32), None, None, patch=2)
    >>> enc(torch.zeros(5, 4, 4, 3, dtype=torch.uint8)).shape
    torch.Size([5, 12])
    """

    def __init__(self, centroids: np.ndarray, mean: np.ndarray | None, whitening: np.ndarray | None,
                 patch: int, stride: int = 1, encoder: str = "triangle", norm_eps: float = 10.0,
                 device: str | torch.device = "cpu", block_elements: int | None = None, gemm: str = "auto"):
        self.device = torch.device(device)
        self.gemm = check_backend(gemm, self.device)
        self.patch, self.stride, self.encoder, self.norm_eps = int(patch), int(stride), encoder, float(norm_eps)
        c = torch.as_tensor(np.asarray(centroids, dtype=np.float64))
        self.k, self.dim = c.shape
        self.proj = self.bias = None
        if whitening is not None:
            # one addmm writes [w, 1, 0] = [x_n, 1] @ [[P, 0, 0], [-mean P, 1, 0]] for normalised patches x_n
            p = torch.as_tensor(np.asarray(whitening, dtype=np.float64))
            proj = torch.zeros(self.dim, self.dim + 2, dtype=torch.float64)
            proj[:, :self.dim] = p
            bias = torch.zeros(self.dim + 2, dtype=torch.float64)
            bias[:self.dim] = -torch.as_tensor(np.asarray(mean, dtype=np.float64)) @ p
            bias[self.dim] = 1.0
            self.proj, self.bias = proj.to(self.device, torch.float32), bias.to(self.device, torch.float32)
        # [w, 1, ||w||^2] @ caug = ||c||^2 - 2 w.c + ||w||^2
        caug = torch.cat([-2.0 * c.T, c.square().sum(dim=1)[None], torch.ones(1, self.k, dtype=torch.float64)])
        self.caug = caug.to(self.device, torch.float32).contiguous()
        self.block_elements = block_elements or default_block_elements(self.device)
        self._buffer = torch.empty(0, device=self.device)

    @property
    def n_features(self) -> int:
        return 4 * self.k

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return patch_grid(height, width, self.patch, self.stride)

    def whitened_patches(self, images: torch.Tensor) -> torch.Tensor:
        """(B, positions, D + 2) float32: each normalised, whitened patch ``w`` followed by 1 and ``||w||^2``."""
        x = extract_patches(images.to(self.device), self.patch, self.stride)
        b, n, d = x.shape
        if d != self.dim:
            raise ValueError(f"patches have {d} values but the centroids {self.dim}")
        flat = normalise_patches_(x, self.norm_eps).view(b * n, d)
        if self.proj is not None:
            aug = mm(flat, self.proj, out=torch.empty(b * n, d + 2, device=self.device), backend=self.gemm)
            aug.add_(self.bias)
        else:
            aug = torch.empty(b * n, d + 2, device=self.device)
            aug[:, :d] = flat
            aug[:, d] = 1.0
        aug[:, d + 1:] = row_dots(aug[:, :d])
        return aug.view(b, n, d + 2)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a uint8 (B, H, W, C) batch (on any device) as a float32 (B, 4 K) tensor on ``device``."""
        with prefer_numpy():  # as in the worker threads: NumPy's BLAS at every size on a CPU (gan_probe.linalg)
            return self._encode(images)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        b, height, width, _ = images.shape
        gh, gw = self.grid(height, width)
        hr, hc = quadrant_halves(gh, gw)
        aug = self.whitened_patches(images)
        out = torch.zeros(b, 4, self.k, device=self.device)
        for half, (r0, r1) in enumerate(((0, hr), (hr, gh))):
            rows = (r1 - r0) * gw
            if rows == 0:
                continue
            part = aug[:, r0 * gw:r1 * gw]
            per_block = max(1, self.block_elements // (rows * self.k))
            for i0 in range(0, b, per_block):
                block = part[i0:i0 + per_block]
                m = block.shape[0]
                dist2 = mm(block.reshape(m * rows, -1).contiguous(), self.caug, out=self._block(m * rows),
                           backend=self.gemm)
                out[i0:i0 + m, 2 * half:2 * half + 2] = self._pool(dist2, m, r1 - r0, gw, hc)
        return out.view(b, 4 * self.k)

    def _block(self, rows: int) -> torch.Tensor:
        if self._buffer.numel() < rows * self.k:
            self._buffer = torch.empty(rows * self.k, device=self.device)
        return self._buffer[:rows * self.k].view(rows, self.k)

    def _pool(self, dist2: torch.Tensor, m: int, nrows: int, gw: int, hc: int) -> torch.Tensor:
        """Squared distances of ``m`` images' half-grids (m * nrows * gw, K) -> (m, 2, K) left/right sums."""
        if self.encoder == "hard":
            nearest = dist2.argmin(dim=1).view(m, nrows, gw)
            side = (torch.arange(gw, device=self.device) >= hc).long()
            slot = (torch.arange(m, device=self.device)[:, None, None] * 2 + side) * self.k + nearest
            return torch.bincount(slot.flatten(), minlength=m * 2 * self.k).view(m, 2, self.k).float()
        z = dist2.clamp_(min=0).sqrt_()
        mu = z.mean(dim=1, keepdim=True)
        act = torch.sub(mu, z, out=z).clamp_(min=0)                      # relu(mean_k z - z_k), in place
        rows = act.view(m, nrows, gw, self.k).sum(dim=1)                # (m, gw, K)
        return torch.stack([rows[:, :hc].sum(dim=1), rows[:, hc:].sum(dim=1)], dim=1)
