"""Resizing uint8 image batches to a model's resolution."""
from __future__ import annotations

import numpy as np


def resize_center_crop(images: np.ndarray, size: int, batch: int = 1024) -> np.ndarray:
    """Resize (N, H, W, 3) uint8 images so the shorter side is ``size``, then center-crop to size x size.

    Downscaling uses antialiased bilinear interpolation; images already at ``size`` are returned unchanged.
    """
    n, h, w, _ = images.shape
    if h == size and w == size:
        return images
    import torch
    import torch.nn.functional as F

    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    for start in range(0, n, batch):
        x = torch.from_numpy(np.array(images[start:start + batch], order="C")).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                          antialias=scale < 1)
        x = x[:, :, top:top + size, left:left + size]
        out[start:start + batch] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
