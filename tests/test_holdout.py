import numpy as np
import pytest

from gan_probe.data.base import ImageSplit
from gan_probe.data.holdout import holdout_split, stratified_counts
from gan_probe.errors import DataError


def _split(labels, h=4):
    labels = np.asarray(labels, dtype=np.int64)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None] * np.ones((1, h, h, 3), np.uint8)
    return ImageSplit(images, labels, tuple("abc"), "toy", "train")


def test_stratified_counts_largest_remainder():
    # quotas 3 * (6, 3, 1) / 10 = (1.8, 0.9, 0.3): floors (1, 0, 0), two left go to .9 and .8
    assert stratified_counts(np.array([0] * 6 + [1] * 3 + [2]), 3) == {0: 2, 1: 1, 2: 0}
    assert stratified_counts(np.repeat(np.arange(3), 4), 6) == {0: 2, 1: 2, 2: 2}


def test_holdout_is_stratified_disjoint_ordered_and_seeded():
    split = _split(np.repeat([0, 1, 2], [50, 30, 20]))
    train, test = holdout_split(split, 10, seed=3)
    assert (len(train), len(test)) == (90, 10)
    assert np.bincount(test.labels).tolist() == [5, 3, 2]
    ids_train, ids_test = train.images[:, 0, 0, 0], test.images[:, 0, 0, 0]
    assert set(ids_train) | set(ids_test) == set(range(100)) and not set(ids_train) & set(ids_test)
    assert (np.diff(ids_test.astype(int)) > 0).all() and (np.diff(ids_train.astype(int)) > 0).all()
    assert (split.labels[ids_test] == test.labels).all()
    again = holdout_split(split, 10, seed=3)[1]
    assert (again.images == test.images).all()
    other = holdout_split(split, 10, seed=4)[1]
    assert not (other.images[:, 0, 0, 0] == ids_test).all()
    assert test.split == "holdout" and train.split == "train"
    assert test.info["holdout"]["seed"] == 3 and train.info["holdout"]["n_test"] == 10


def test_holdout_unlabelled_and_bad_sizes():
    split = ImageSplit(np.zeros((8, 2, 2, 3), np.uint8), None, None, "folder", "train")
    train, test = holdout_split(split, 3, seed=0)
    assert (len(train), len(test)) == (5, 3) and test.labels is None
    for bad in (0, 8, -1):
        with pytest.raises(DataError, match="--holdout"):
            holdout_split(split, bad, seed=0)
