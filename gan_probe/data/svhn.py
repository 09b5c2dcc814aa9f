"""SVHN cropped digits: the official format-2 files ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``.

Each is a MATLAB v5 file with ``X``, uint8 of shape (32, 32, 3, N), and ``y`` of shape (N, 1) holding the
digit, where 10 stands for the digit 0 (mapped to label 0 here). ``root`` is the folder holding the files
(``<split>_32x32.mat``) or one ``.mat`` file, which is then read as the requested split whatever its name.

>>> digit_labels(__import__("numpy").array([[10], [1], [9]], dtype="uint8"), "y.mat").tolist()
[0, 1, 9]
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError, MissingSplitError
from .base import ImageSplit
from .download import download_svhn, svhn_url
from .resize import resize_center_crop

SPLITS = ("train", "test", "extra")
CLASSES = tuple(str(d) for d in range(10))
_EXPECTED = "an SVHN format-2 MATLAB v5 .mat with X uint8 (32, 32, 3, N) and y (N, 1) in 1..10"


def split_file(split: str) -> str:
    return f"{split}_32x32.mat"


def digit_labels(y: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """SVHN's ``y`` (N, 1) with 10 meaning zero -> int64 (N,) digits 0..9."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{path}: y has dtype {y.dtype}; expected integers 1..10")
    flat = y.reshape(-1)
    labels = flat.astype(np.int64)
    if len(flat) and (np.any(labels != flat) or labels.min() < 0 or labels.max() > 10):
        raise DataError(f"{path}: y has values outside the integers 0..10; expected digits 1..10 (10 = zero)")
    return labels % 10


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read X and y from one format-2 file -> (uint8 (N, 32, 32, 3) images, int64 (N,) labels)."""
    from scipy.io import loadmat
    from scipy.io.matlab import matfile_version

    try:
        major, _ = matfile_version(str(path))
    except Exception as exc:  # ValueError "Unknown mat file type", OSError, ...
        raise DataError(f"{path}: not a MATLAB .mat file ({' '.join(str(exc).split())}); expected {_EXPECTED}") \
            from None
    if major == 2:
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) file; expected a MATLAB v5 .mat like the official SVHN "
                        f"files (re-save it with save(..., '-v7') or use the original from {svhn_url('train')})")
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except Exception as exc:  # truncated or damaged files raise many types
        raise DataError(f"{path}: truncated or corrupt .mat ({' '.join(str(exc).split()) or type(exc).__name__}); "
                        f"expected {_EXPECTED}") from None
    if "X" not in mat or "y" not in mat:
        from scipy.io import whosmat

        found = [name for name, _, _ in whosmat(str(path))]
        raise DataError(f"{path}: has variables {found}; expected X and y ({_EXPECTED})")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X is {x.dtype} {x.shape}; expected uint8 (32, 32, 3, N)")
    n = x.shape[3]
    if n == 0:
        raise DataError(f"{path}: X holds no images; expected uint8 (32, 32, 3, N) with N > 0")
    if y.size != n or y.ndim != 2 or min(y.shape) != 1:
        raise DataError(f"{path}: y has shape {y.shape} for {n} images; expected ({n}, 1)")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), digit_labels(y, path)


def load_svhn(root: str | os.PathLike | None, split: str = "train", image_size: int | None = None,
              download: bool = False, *, progress: bool = True) -> ImageSplit:
    """Load the SVHN ``split`` (train, test or extra) from ``root`` (a folder, or one .mat file)."""
    if split not in SPLITS:
        raise DataError(f"--split {split!r}: svhn has the splits {', '.join(SPLITS)}")
    if root is None:
        raise DataError(f"--data-root is required for svhn: the folder holding {split_file(split)} "
                        f"(or the .mat file itself); add --download to fetch the official files")
    root = Path(root).expanduser()
    if root.is_file():
        path = root
    else:
        path = root / split_file(split)
        if root.exists() and not root.is_dir():
            raise DataError(f"{root}: not a folder or .mat file; expected {_EXPECTED}")
        if not path.is_file():
            if download:
                path = download_svhn(root, split, progress=progress)
            elif not root.exists():
                raise DataError(f"{root}: not found; expected a folder holding {split_file(split)} (from "
                                f"{svhn_url(split)}, or pass --download) or a .mat file")
            else:
                raise MissingSplitError(f"{path}: not found; expected the SVHN format-2 file from "
                                        f"{svhn_url(split)} (or pass --download, or give the .mat file itself as "
                                        f"the data root)", split)
    images, labels = read_mat(path)
    if image_size is not None and image_size != 32:
        images = resize_center_crop(images, image_size)
    return ImageSplit(images, labels, CLASSES, "svhn", split, source=str(path),
                      info={"format": "svhn format-2 .mat (MATLAB v5)"})
