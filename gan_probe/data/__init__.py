"""Dataset readers for the official on-disk formats, behind one function: :func:`load_split`.

>>> from gan_probe.data import load_split
>>> digits = load_split("digits", split="train")
>>> digits.images.shape, digits.images.dtype
((1347, 32, 32, 3), dtype('uint8'))
"""
from __future__ import annotations

import os

from ..errors import DataError
from .base import ImageSplit

DATASETS = ("cifar10", "svhn", "imagenet", "folder", "digits")


def load_split(name: str, root: str | os.PathLike | None = None, split: str = "train",
               image_size: int | None = None, download: bool = False) -> ImageSplit:
    """Load one split of a dataset as uint8 (N, H, W, 3) images plus int64 labels.

    ``image_size`` resizes (shorter side) and center-crops to the model resolution; ``None`` keeps the
    dataset's native size. ``download`` fetches cifar10/svhn's official files into ``root`` when missing.
    """
    if name not in DATASETS:
        raise DataError(f"--dataset {name!r}: unknown dataset; expected one of {', '.join(DATASETS)}")
    if name == "digits":
        from .digits import load_digits_split

        if split not in ("train", "test"):
            raise DataError(f"--split {split!r}: digits has the splits train and test")
        return load_digits_split(split, image_size or 32)
    raise DataError(f"--dataset {name}: reader not available yet")
