"""The raw-pixel baseline: each image's pixels scaled to [0, 1] and flattened, written as a feature store.

Feature ``(y * W + x) * C + c`` is channel ``c`` of pixel (row ``y``, column ``x``) divided by 255 (the
``(H, W, C)`` order of the uint8 arrays), float32, so a 32 x 32 RGB image gives 3,072 features.

>>> from gan_probe.data import load_split
>>> pixel_matrix(load_split("digits", split="test").images[:2]).shape
(2, 3072)
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..data.base import ImageSplit
from ..errors import ConfigError, DataError
from ..features.store import META, MatrixWriter, features_path, write_labels, write_meta
from ..provenance import provenance


def pixel_matrix(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) images -> float32 (N, H * W * C) in [0, 1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)


def pixel_features(train: ImageSplit, test: ImageSplit, out: str | os.PathLike, batch_size: int = 4096,
                   progress: bool = False, extra_meta: dict | None = None) -> Path:
    """Write the raw-pixel feature store for ``train`` and ``test`` into ``out`` and return it."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    for split in (train, test):
        if split.labels is None:
            raise DataError(f"--dataset {split.dataset}: the {split.split} split has no labels; "
                            f"the probe needs labels")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"train images are {train.images.shape[1:]} but test images {test.images.shape[1:]}; "
                        f"use --image-size")
    from .kmeans import reuse_store, store_key

    root = Path(out)
    key = store_key("pixels", train, test)
    if reuse_store(root, key):
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / META).unlink(missing_ok=True)
    t0 = time.perf_counter()
    dim = int(np.prod(train.images.shape[1:]))
    for name, split in (("train", train), ("test", test)):
        starts = range(0, len(split), batch_size)
        if progress:
            from ..progress import bar

            starts = bar(starts, desc=f"pixels ({name})", unit="batch", dynamic_ncols=True)
        with MatrixWriter(features_path(root, name), rows=len(split), dim=dim) as writer:
            for start in starts:
                writer.write(pixel_matrix(split.images[start:start + batch_size]))
        write_labels(root, name, split.labels)
    meta = {
        "format": "gan-probe-features", "format_version": 1, "key": key, "source": "pixels",
        "method": "raw pixels / 255, flattened in (H, W, C) order",
        "dataset": train.dataset, "data": {"train": train.describe(), "test": test.describe()},
        "holdout": train.info.get("holdout"), "image_shape": list(train.images.shape[1:]), "n_features": dim,
        "seconds": round(time.perf_counter() - t0, 3), "provenance": provenance(device="cpu"),
    }
    meta.update(extra_meta or {})
    write_meta(root, meta)
    return root
