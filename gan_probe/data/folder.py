"""Any folder of images, unlabelled (for GAN training): every png/jpg/jpeg/bmp/webp file below ``root``.

Files are found recursively (extensions case-insensitive, hidden files skipped), sorted by relative path and
decoded once into the memory-mapped image cache. There is one split, ``train``.

>>> import numpy as np, tempfile, pathlib, os
>>> from PIL import Image
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> saved = dict(os.environ); os.environ["GAN_PROBE_CACHE"] = str(root / "cache")  # cache inside root
>>> (root / "pics" / "sub").mkdir(parents=True)
>>> Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(root / "pics" / "sub" / "a.PNG")
>>> s = load_folder(root / "pics", image_size=8, progress=False)
>>> s.images.shape, s.labels
((1, 8, 8, 3), None)
>>> os.environ.clear(); os.environ.update(saved)
"""
from __future__ import annotations

import os

from ..errors import DataError, MissingSplitError
from .base import ImageSplit
from .files import require_dir, scan_images
from .imagefolder import extensions_text, load_files_cached

SPLITS = ("train",)


def load_folder(root: str | os.PathLike | None, split: str = "train", image_size: int | None = None, *,
                progress: bool = True, workers: int | None = None) -> ImageSplit:
    """All images below ``root`` as one unlabelled ``train`` split."""
    if split not in SPLITS:
        raise MissingSplitError(f"--split {split!r}: a folder dataset has one split, train (its images are "
                                f"unlabelled)", split)
    if root is None:
        raise DataError("--data-root is required for --dataset folder: a folder of images (searched recursively)")
    root = require_dir(root, "a folder of images")
    entries = scan_images(root)
    if not entries:
        raise DataError(f"{root}: no images found (searched recursively for {extensions_text()})")
    images, info = load_files_cached(root, entries, image_size, kind="folder", progress=progress, workers=workers,
                                     desc="decoding folder")
    return ImageSplit(images, None, None, "folder", split, source=str(root), info={"format": "image folder", **info})
