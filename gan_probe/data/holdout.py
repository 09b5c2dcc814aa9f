"""Carve a fixed, seeded, stratified test set out of a training split (for data with no test split).

The hold-out is a pure function of the split's labels, ``n_test`` and ``seed``: each class contributes a
number of images proportional to its size (largest-remainder rounding, ties to the lower class index), the
images of a class are picked by a seeded permutation, and both parts keep the original order. The file order
of the images therefore does not matter once the reader returns them in a fixed order.

>>> from gan_probe.data import load_split
>>> train, test = holdout_split(load_split("digits", split="train"), n_test=347, seed=0)
>>> len(train), len(test), test.split
(1000, 347, 'holdout')
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..errors import DataError, MissingSplitError
from ..provenance import sha256_array
from .base import ImageSplit


HOLDOUT_HINT = "or pass --holdout N to hold out N training images (stratified, seeded) as the test set"


@contextmanager
def suggest_holdout(train_split: str = "train") -> Iterator[None]:
    """For commands with ``--holdout``: a missing test split's error adds that ``--holdout N`` carves one out of
    the training split (nothing is added when the training split itself is missing)."""
    try:
        yield
    except MissingSplitError as exc:
        if exc.split == train_split:
            raise
        raise MissingSplitError(f"{exc}; {HOLDOUT_HINT}", exc.split) from None


def stratified_counts(labels: np.ndarray, n_take: int) -> dict[int, int]:
    """How many items of each class a stratified sample of ``n_take`` takes (largest remainder).

    >>> stratified_counts(np.array([0, 0, 0, 1]), 2)
    {0: 2, 1: 0}
    """
    classes, sizes = np.unique(labels, return_counts=True)
    quota = sizes * (n_take / len(labels))
    take = np.floor(quota).astype(np.int64)
    remainder = n_take - int(take.sum())
    if remainder:
        order = np.lexsort((classes, -(quota - take)))  # largest fractional part first, then lower class
        take[order[:remainder]] += 1
    return {int(c): int(t) for c, t in zip(classes, take)}


def holdout_indices(labels: np.ndarray | None, n: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (keep, held_out) index arrays; stratified by ``labels`` when given."""
    if not 0 < n_test < n:
        raise DataError(f"--holdout {n_test}: expected between 1 and {n - 1} for a split of {n} images")
    rng = np.random.default_rng(seed)
    if labels is None:
        held = rng.permutation(n)[:n_test]
    else:
        labels = np.asarray(labels)
        parts = []
        for cls, count in stratified_counts(labels, n_test).items():
            members = np.flatnonzero(labels == cls)
            parts.append(members[rng.permutation(len(members))[:count]])
        held = np.concatenate(parts)
    held = np.sort(held)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def holdout_split(split: ImageSplit, n_test: int, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """Split ``split`` into (train, test): ``n_test`` images, stratified by class and seeded, become the test set.

    The test part is named ``holdout``; both parts record the hold-out (size, seed, checksum of the held-out
    indices) in ``info["holdout"]``. Deterministic: the same split, ``n_test`` and ``seed`` give the same parts.
    """
    n_test = int(n_test)
    keep, held = holdout_indices(split.labels, len(split), n_test, seed)
    record = {"of": split.split, "n_test": n_test, "n_train": int(len(keep)), "seed": int(seed),
              "stratified": split.labels is not None, "indices_sha256": sha256_array(held.astype(np.int64))}
    train, test = split.subset(keep), split.subset(held, split="holdout")
    train.info["holdout"] = record
    test.info["holdout"] = record
    return train, test


def holdout_count(holdout: float, n: int) -> int:
    """How many images a ``--holdout`` value holds out of a split of ``n``: a count as given, or a fraction of
    ``n`` (rounded) when it is below 1.

    >>> holdout_count(200, 1347), holdout_count(0.2, 1347)
    (200, 269)
    """
    return int(holdout) if holdout >= 1 else int(round(holdout * n))


def limit_split(split: ImageSplit, n_keep: int, seed: int) -> ImageSplit:
    """A stratified, seeded subset of ``n_keep`` images of ``split`` (``split`` itself when it has no more): the
    images :func:`holdout_split` would keep when holding out the rest. ``info["train_limit"]`` records the cut;
    the split's own hold-out record, if any, stays in ``info["holdout"]``."""
    if n_keep >= len(split):
        return split
    kept, _ = holdout_split(split, len(split) - n_keep, seed)
    record = kept.info.pop("holdout")
    if "holdout" in split.info:
        kept.info["holdout"] = split.info["holdout"]
    kept.info["train_limit"] = {**record, "n_train": int(n_keep)}
    return kept
