"""The Coates & Ng single-layer k-means baseline end to end: learn a dictionary, encode both splits, write a store.

The store has the layout of :mod:`gan_probe.features.store` (what ``gan-probe extract`` writes), so every
probe protocol runs on it unchanged; the dictionary is saved beside it as ``dictionary.npz``.

>>> from gan_probe.data import load_split                                    # doctest: +SKIP
>>> train, test = load_split("digits", split="train"), load_split("digits", split="test")  # doctest: +SKIP
>>> kmeans_features(train, test, "feats", KMeansConfig(centroids=100, patches=20_000))     # doctest: +SKIP
PosixPath('feats')
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from ..atomic import remove_stale_temporaries
from ..data.base import ImageSplit
from ..devices import resolve_device
from ..errors import ConfigError, DataError, FeatureStoreError
from ..features.store import META, MatrixWriter, features_path, is_complete, write_labels, write_meta
from ..provenance import provenance, sha256_array, sha256_file, sha256_json
from .config import KMeansConfig
from .dictionary import KMeansDictionary, learn_dictionary
from .encode import QUADRANTS, quadrant_halves

FORMAT = "gan-probe-features"
DICTIONARY = "dictionary.npz"


def check_labelled(split: ImageSplit) -> None:
    if split.labels is None:
        raise DataError(f"--dataset {split.dataset}: the {split.split} split has no labels; the probe needs labels")


def store_key(source: str, train: ImageSplit, test: ImageSplit, **inputs) -> str:
    """Content key of a baseline store: its kind, its inputs and the checksums of both splits' pixels + labels."""
    return sha256_json({"format": FORMAT, "version": 1, "source": source, **inputs, "train": train.checksum,
                        "test": test.checksum})


def reuse_store(root: Path, key: str) -> bool:
    """True when ``root`` already holds the finished store of ``key``; an error when it holds another one."""
    if not is_complete(root):
        return False
    try:
        existing = json.loads((root / META).read_text()).get("key")
    except (OSError, json.JSONDecodeError):
        existing = None
    if existing == key:
        return True
    raise FeatureStoreError(f"{root}: holds features of other inputs (key {str(existing)[:12]}); choose another "
                            f"--out or remove it")


def write_split_features(dictionary: KMeansDictionary, split: ImageSplit, root: Path, name: str,
                         batch_size: int, device: torch.device, progress: bool) -> None:
    """Encode one split batch by batch straight into ``root/<name>_features.npy`` and write its labels."""
    with MatrixWriter(features_path(root, name), rows=len(split), dim=dictionary.n_features) as writer:
        for block in dictionary.iter_encode(split.images, batch_size, device, progress, desc=f"encode ({name})"):
            writer.write(block)
    write_labels(root, name, split.labels)


def kmeans_features(train: ImageSplit, test: ImageSplit, out: str | os.PathLike,
                    config: KMeansConfig = KMeansConfig(), device: str | torch.device = "auto",
                    batch_size: int = 256, progress: bool = False,
                    dictionary: KMeansDictionary | None = None, extra_meta: dict | None = None) -> Path:
    """Learn a dictionary on ``train`` (unless given), encode ``train`` and ``test``, write the feature store.

    Returns the store directory ``out``, holding ``{train,test}_{features,labels}.npy``, ``dictionary.npz`` and
    ``meta.json`` (written last: constants, data checksums, seeds, timings, provenance). The store is keyed by
    its inputs (constants or dictionary, and the checksums of both splits): re-running with the same inputs
    returns the finished store as it is, and an ``out`` holding another store is an error.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    for split in (train, test):
        check_labelled(split)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"train images are {train.images.shape[1:]} but test images {test.images.shape[1:]}; "
                        f"use --image-size")
    dev = resolve_device(device)
    root = Path(out)
    source = ({"config": config.to_dict()} if dictionary is None else
              {"dictionary": sha256_json([dictionary.config.to_dict(), sha256_array(dictionary.centroids),
                                          None if dictionary.whitening is None else
                                          sha256_array(dictionary.whitening)])})
    key = store_key("kmeans", train, test, **source)
    if reuse_store(root, key):
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / META).unlink(missing_ok=True)  # the store is complete again only once the new meta.json is written
    remove_stale_temporaries(root)  # what an interrupted run was writing (gigabytes for a large store)
    t0 = time.perf_counter()
    if dictionary is None:
        dictionary = learn_dictionary(train.images, config, device=dev, progress=progress)
    config = dictionary.config
    dictionary.save(root / DICTIONARY)
    t1 = time.perf_counter()
    for name, split in (("train", train), ("test", test)):
        write_split_features(dictionary, split, root, name, batch_size, dev, progress)
    t2 = time.perf_counter()
    _, height, width, _ = train.images.shape
    grid = dictionary.encoder("cpu").grid(height, width)
    halves = quadrant_halves(*grid)
    meta = {
        "format": FORMAT, "format_version": 1, "key": key, "source": "kmeans",
        "method": "Coates & Ng (2011) single-layer k-means, " + config.encoder + " encoding, 4-quadrant sum pooling",
        "dataset": train.dataset, "data": {"train": train.describe(), "test": test.describe()},
        "holdout": train.info.get("holdout"), "config": config.to_dict(), "n_features": dictionary.n_features,
        "grid": list(grid), "quadrant_rows_cols": [list(halves), [grid[0] - halves[0], grid[1] - halves[1]]],
        "feature_layout": "quadrant-major: feature q*K + k, q in " + ", ".join(QUADRANTS),
        "dictionary": {"path": DICTIONARY, "sha256": sha256_file(root / DICTIONARY),
                       **{k: v for k, v in dictionary.info.items() if k != "eigenvalues"}},
        "batch_size": batch_size,
        "seconds": {"dictionary": round(t1 - t0, 3), "encode": round(t2 - t1, 3)},
        "provenance": provenance(device=str(dev), seeds={"patches": config.seed, "kmeans_init": config.seed}),
    }
    if extra_meta:
        meta.update(extra_meta)
    write_meta(root, meta)
    return root


def kmeans_store_dictionary(root: str | os.PathLike) -> KMeansDictionary:
    """The dictionary saved in a k-means feature store."""
    return KMeansDictionary.load(Path(root) / DICTIONARY)


__all__ = ["kmeans_features", "kmeans_store_dictionary", "resolve_device", "store_key", "reuse_store", "DICTIONARY",
           "FORMAT"]
