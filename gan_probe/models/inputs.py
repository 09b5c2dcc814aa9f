"""The models' input convention: datasets hand out uint8 NHWC images, the models read float NCHW in [-1, 1].

>>> import torch
>>> to_model_range(torch.tensor([[[[0, 255, 128]]]], dtype=torch.uint8)).tolist()
[[[[-1.0]], [[1.0]], [[0.003921627998352051]]]]
"""
from __future__ import annotations

import torch


def to_model_range(batch_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1] (``x / 127.5 - 1``, the DCGAN paper's scaling)."""
    return batch_uint8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
