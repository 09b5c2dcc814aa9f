"""CIFAR-10: the official ``cifar-10-batches-py/`` pickles, or an image-folder copy.

Pickle layout (https://www.cs.toronto.edu/~kriz/cifar.html): ``data_batch_1`` .. ``data_batch_5`` (train),
``test_batch`` (test) and ``batches.meta``. Each batch is a pickled dict with ``b'data'``, a uint8 array of
shape (N, 3072) holding the 1024 red, then green, then blue values of each 32x32 image in row-major order,
and ``b'labels'``, a list of N ints in 0..9; ``batches.meta`` holds ``b'label_names'``.
Folder layout: ``train/<class>/*.png|jpg|jpeg`` and ``test/<class>/*``; class order = sorted folder names.

``root`` may be the folder that contains ``cifar-10-batches-py/``, that folder itself, or the folder layout's
root. Pickles are unpickled with a restricted unpickler that only builds plain containers and numpy arrays.

>>> chw_rows_to_hwc(__import__("numpy").arange(3072, dtype="uint8").reshape(1, 3072))[0, 0, 1].tolist()
[1, 1, 1]
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError, MissingSplitError
from .base import ImageSplit
from .download import CIFAR10_DIR, CIFAR10_URL, download_cifar10
from .files import require_dir
from .imagefolder import load_class_folders
from .resize import resize_center_crop

SPLITS = ("train", "test")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"
BATCH_FILES = TRAIN_BATCHES + TEST_BATCHES + (META,)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_EXPECTED = "a CIFAR-10 python batch (a dict with b'data' uint8 (N, 3072) and b'labels')"

# The only globals a CIFAR-10 pickle needs: numpy array reconstruction and Python 2 byte strings.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR-10 batch)")


def read_pickle(path: Path) -> dict:
    """Unpickle a CIFAR-10 batch file (bytes keys) safely; one-line DataError if missing or corrupt."""
    if not path.is_file():
        raise DataError(f"{path}: missing CIFAR-10 batch file; expected the official {CIFAR10_DIR}/ "
                        f"from {CIFAR10_URL} (or pass --download)")
    try:
        with open(path, "rb") as fh:
            obj = _RestrictedUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # EOFError, UnpicklingError, ValueError, ... from a damaged file
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: truncated or corrupt pickle ({reason}); expected {_EXPECTED}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: pickle holds a {type(obj).__name__}; expected {_EXPECTED}")
    return obj


def _get(obj: dict, key: str):
    return obj[key.encode()] if key.encode() in obj else obj.get(key)


def chw_rows_to_hwc(data: np.ndarray, size: int = 32) -> np.ndarray:
    """(N, 3*size*size) rows in channel-major, row-major order -> (N, size, size, 3)."""
    return np.ascontiguousarray(data.reshape(len(data), 3, size, size).transpose(0, 2, 3, 1))


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 (N, 32, 32, 3) images, int64 (N,) labels)."""
    obj = read_pickle(path)
    data, labels = _get(obj, "data"), _get(obj, "labels")
    if data is None or labels is None:
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        raise DataError(f"{path}: pickle has keys [{keys}]; expected {_EXPECTED}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' is {got}; expected uint8 (N, 3072) (3 x 32 x 32, channel-major)")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: b'labels' is not a list of ints") from None
    if labels.shape != (len(data),):
        raise DataError(f"{path}: b'labels' has shape {labels.shape} for {len(data)} images; expected ({len(data)},)")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{path}: b'labels' has values in {labels.min()}..{labels.max()}; expected 0..9")
    return chw_rows_to_hwc(data), labels


def read_classes(path: Path) -> tuple[str, ...]:
    """Class names from ``batches.meta`` (the official names if the file is absent)."""
    if not path.is_file():
        return CLASSES
    names = _get(read_pickle(path), "label_names")
    if not isinstance(names, (list, tuple)) or len(names) != len(CLASSES):
        raise DataError(f"{path}: expected b'label_names', a list of {len(CLASSES)} class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def find_layout(root: Path) -> tuple[str, Path] | None:
    """('pickles', batches folder) or ('folders', root), or None when ``root`` holds neither."""
    if (root / CIFAR10_DIR).is_dir():
        return "pickles", root / CIFAR10_DIR
    if any((root / name).is_file() for name in BATCH_FILES):
        return "pickles", root
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "folders", root
    return None


def load_pickles(batches: Path, split: str, image_size: int | None = None) -> ImageSplit:
    """Read the official pickles of ``split`` from ``batches`` (the cifar-10-batches-py folder)."""
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    try:
        parts = [read_batch(batches / name) for name in names]
    except DataError as exc:
        if not all((batches / name).is_file() for name in names):  # this split's files are absent
            raise MissingSplitError(str(exc), split) from None
        raise
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if image_size is not None and image_size != 32:
        images = resize_center_crop(images, image_size)
    return ImageSplit(images, labels, read_classes(batches / META), "cifar10", split,
                      source=", ".join(str(batches / n) for n in names),
                      info={"format": "cifar-10 python pickles"})


def load_cifar10(root: str | os.PathLike | None, split: str = "train", image_size: int | None = None,
                 download: bool = False, *, progress: bool = True, workers: int | None = None) -> ImageSplit:
    """Load the CIFAR-10 ``split`` (train or test) from ``root`` (see the module docstring for layouts)."""
    if split not in SPLITS:
        raise DataError(f"--split {split!r}: cifar10 has the splits {', '.join(SPLITS)}")
    if root is None:
        raise DataError("--data-root is required for cifar10: the folder holding cifar-10-batches-py/ "
                        "(or train/<class>/ image folders); add --download to fetch the official files")
    root = Path(root).expanduser()
    layout = find_layout(root) if root.is_dir() else None
    if download and (layout is None or layout[0] == "pickles"):
        batches = layout[1] if layout else root if root.name == CIFAR10_DIR else root / CIFAR10_DIR
        layout = ("pickles", download_cifar10(batches, BATCH_FILES, progress=progress))
    if layout is None:
        require_dir(root, "cifar10 data: cifar-10-batches-py/ or train/<class>/ image folders")
        raise DataError(f"{root}: no CIFAR-10 data; expected {CIFAR10_DIR}/ (official pickles from "
                        f"{CIFAR10_URL}, or pass --download) or train/<class>/*.png|jpg image folders")
    kind, where = layout
    if kind == "pickles":
        return load_pickles(where, split, image_size)
    split_dir = where / split
    if not split_dir.is_dir():
        present = [d for d in SPLITS if (where / d).is_dir()]
        raise MissingSplitError(f"{split_dir}: not found; this cifar10 image-folder root has only "
                                f"{', '.join(p + '/' for p in present)}; expected {split}/<class>/*.png|jpg", split)
    classes = None
    if (where / "train").is_dir() and split != "train":
        from .imagefolder import class_list

        classes = class_list(where / "train")
    return load_class_folders(split_dir, classes, dataset="cifar10", split=split, image_size=image_size,
                              progress=progress, workers=workers, fmt="cifar-10 image folders")
