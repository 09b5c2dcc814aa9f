"""The raw-pixel baseline store."""
import numpy as np
import pytest

from gan_probe.baselines import pixel_features, pixel_matrix
from gan_probe.data.base import ImageSplit
from gan_probe.errors import DataError
from gan_probe.features.store import load_store


def test_pixel_matrix_values_and_order():
    img = np.zeros((1, 2, 2, 3), np.uint8)
    img[0, 0, 1, 2] = 255      # row 0, column 1, channel 2 -> feature (0 * 2 + 1) * 3 + 2 = 5
    img[0, 1, 0, 0] = 51       # row 1, column 0, channel 0 -> feature 6
    x = pixel_matrix(img)
    assert x.dtype == np.float32 and x.shape == (1, 12)
    assert np.flatnonzero(x).tolist() == [5, 6] and x[0, 5] == 1.0 and x[0, 6] == np.float32(0.2)


def test_pixel_store(tmp_path):
    rng = np.random.default_rng(0)
    train = ImageSplit(rng.integers(0, 256, (9, 4, 5, 3), dtype=np.uint8), rng.integers(0, 3, 9), None, "toy",
                       "train")
    test = ImageSplit(rng.integers(0, 256, (4, 4, 5, 3), dtype=np.uint8), rng.integers(0, 3, 4), None, "toy",
                      "test")
    store = load_store(pixel_features(train, test, tmp_path / "p", batch_size=2))
    assert store.train_features.shape == (9, 60) and store.test_features.shape == (4, 60)
    np.testing.assert_array_equal(store.train_features, train.images.reshape(9, -1) / np.float32(255))
    np.testing.assert_array_equal(store.test_labels, test.labels)
    assert store.meta["source"] == "pixels" and store.meta["n_features"] == 60
    assert store.meta["data"]["train"]["sha256"] == train.checksum
    assert 0.0 <= float(store.train_features.min()) and float(store.train_features.max()) <= 1.0
    with pytest.raises(DataError, match="no labels"):
        pixel_features(ImageSplit(train.images, None, None, "toy", "train"), test, tmp_path / "q")
