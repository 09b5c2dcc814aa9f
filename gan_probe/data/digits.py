"""The embedded default dataset: scikit-learn's bundled handwritten digits (no download needed).

1,797 real 8x8 grey-level images (values 0..16) of the digits 0-9, from the UCI optical-recognition
data set shipped inside scikit-learn. They are scaled to 0..255, upsampled to 32x32 with bilinear
interpolation and replicated to 3 channels. The split is fixed: the first 1,347 images in scikit-learn's
order are ``train`` and the last 450 are ``test`` (a 75/25 split by position, never shuffled).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import ImageSplit

N_TRAIN = 1347
CLASSES = tuple(str(d) for d in range(10))


def load_digits_split(split: str = "train", image_size: int = 32) -> ImageSplit:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
    labels = bunch.target.astype(np.int64)
    index = slice(0, N_TRAIN) if split == "train" else slice(N_TRAIN, None)
    return ImageSplit(np.ascontiguousarray(images[index]), labels[index], CLASSES, "digits", split,
                      source="sklearn.datasets.load_digits (bundled)")
