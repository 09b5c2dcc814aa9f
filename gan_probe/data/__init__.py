"""Dataset readers for the official on-disk formats, behind one function: :func:`load_split`.

=========  ===============================================================  ==================
name       formats under ``root``                                           splits
=========  ===============================================================  ==================
cifar10    ``cifar-10-batches-py/`` pickles; ``train|test/<class>/*.png``    train, test
svhn       format-2 ``<split>_32x32.mat`` (or ``root`` = one .mat file)      train, test, extra
imagenet   ``train/<wnid>/**``, ``val/`` (+ Tiny-ImageNet annotations);      train, val (test)
           Imagenet32/64 ``train_data_batch_*.npz``, ``val_data.npz``
folder     any images below ``root``, unlabelled                            train
digits     scikit-learn's bundled digits (no files needed)                  train, test
=========  ===============================================================  ==================

Image folders are decoded once into ``$GAN_PROBE_CACHE`` (default ``~/.cache/gan_probe``) and memory-mapped
on later loads. ``progress=None`` shows progress bars unless ``GAN_PROBE_PROGRESS=0``.

>>> from gan_probe.data import load_split
>>> digits = load_split("digits", split="train")
>>> digits.images.shape, digits.images.dtype
((1347, 32, 32, 3), dtype('uint8'))
"""
from __future__ import annotations

import os

from ..errors import DataError
from ..progress import default_progress
from .base import ImageSplit

DATASETS = ("cifar10", "svhn", "imagenet", "folder", "digits")
SPLITS = {"cifar10": ("train", "test"), "svhn": ("train", "test", "extra"), "imagenet": ("train", "val", "test"),
          "folder": ("train",), "digits": ("train", "test")}


def load_split(name: str, root: str | os.PathLike | None = None, split: str = "train",
               image_size: int | None = None, download: bool = False, *, progress: bool | None = None,
               workers: int | None = None) -> ImageSplit:
    """Load one split of a dataset as uint8 (N, H, W, 3) images plus int64 labels (None for ``folder``).

    ``image_size`` resizes (shorter side) and center-crops to the model resolution; ``None`` keeps the
    dataset's native size. ``download`` fetches cifar10/svhn's official files into ``root`` when missing.
    ``workers`` sets the decoding processes for image folders (None: automatic, 0: none).
    """
    if name not in DATASETS:
        raise DataError(f"--dataset {name!r}: unknown dataset; expected one of {', '.join(DATASETS)}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"--image-size {image_size!r}: expected a positive number of pixels")
    if download and name not in ("cifar10", "svhn"):
        raise DataError(f"--download: only cifar10 and svhn can be downloaded, not {name}")
    progress = default_progress() if progress is None else progress
    if name == "digits":
        from .digits import load_digits_split

        if split not in SPLITS["digits"]:
            raise DataError(f"--split {split!r}: digits has the splits train and test")
        return load_digits_split(split, image_size or 32)
    if name == "cifar10":
        from .cifar10 import load_cifar10

        return load_cifar10(root, split, image_size, download, progress=progress, workers=workers)
    if name == "svhn":
        from .svhn import load_svhn

        return load_svhn(root, split, image_size, download, progress=progress)
    if name == "imagenet":
        from .imagenet import load_imagenet

        return load_imagenet(root, split, image_size, progress=progress, workers=workers)
    from .folder import load_folder

    return load_folder(root, split, image_size, progress=progress, workers=workers)


__all__ = ["DATASETS", "SPLITS", "ImageSplit", "load_split", "default_progress"]
