"""Bilinear resizing exactly as TensorFlow 1.x ``tf.image.resize_bilinear`` does it.

The reference Inception graph (2015-12-05) was always fed through TF1's bilinear resize, which differs from
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``: TF1 maps output pixel ``d`` to the
source coordinate ``d * in_size / out_size`` (no half-pixel offset), takes the two neighbouring pixels
``floor(src)`` and ``min(floor(src) + 1, in_size - 1)`` and blends them linearly. There is no antialiasing,
so downscaling skips pixels. All coordinate arithmetic is done in float32, as in TF1's kernel, and the
blend is applied along the width first, then along the height, in TF1's order of operations.

>>> import torch
>>> x = torch.tensor([[[[0., 10.], [20., 30.]]]])
>>> tf1_bilinear_resize(x, (3, 3))[0, 0]
tensor([[ 0.0000,  6.6667, 10.0000],
        [13.3333, 20.0000, 23.3333],
        [20.0000, 26.6667, 30.0000]])
"""
from __future__ import annotations

import torch


def tf1_interpolation_weights(in_size: int, out_size: int,
                              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """Indices and weights of TF1's bilinear resize along one axis (``align_corners=False``).

    Returns ``(lower, upper, lerp)``: output position ``d`` reads ``in[lower[d]]`` and ``in[upper[d]]`` and
    blends them as ``in[lower] + (in[upper] - in[lower]) * lerp``.

    >>> lo, hi, w = tf1_interpolation_weights(2, 3)
    >>> lo.tolist(), hi.tolist(), [round(v, 4) for v in w.tolist()]
    ([0, 0, 1], [1, 1, 1], [0.0, 0.6667, 0.3333])
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}")
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)  # TF1: float(in) / out
    src = torch.arange(out_size, dtype=torch.float32) * scale
    lower = src.floor().to(torch.int64).clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    lerp = src - lower.to(torch.float32)
    return lower.to(device), upper.to(device), lerp.to(device)


def tf1_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a float batch ``x`` of shape (N, C, H, W) to ``size = (out_h, out_w)`` like TF1.

    The input dtype is kept (use float32 for parity with TF1 and torch-fidelity). Integer input is rejected:
    convert uint8 images with ``.float()`` first.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"expected a floating-point tensor, got {x.dtype}")
    out_h, out_w = int(size[0]), int(size[1])
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return x
    x_lo, x_hi, x_w = tf1_interpolation_weights(in_w, out_w, x.device)
    y_lo, y_hi, y_w = tf1_interpolation_weights(in_h, out_h, x.device)
    x_w = x_w.to(x.dtype)
    y_w = y_w.to(x.dtype)
    left = x.index_select(3, x_lo)
    right = x.index_select(3, x_hi)
    rows = left + (right - left) * x_w          # (N, C, in_h, out_w): width blended first
    top = rows.index_select(2, y_lo)
    bottom = rows.index_select(2, y_hi)
    return top + (bottom - top) * y_w.view(-1, 1)
