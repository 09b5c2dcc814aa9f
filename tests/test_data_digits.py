"""The bundled digits dataset and the registry's argument checks."""
import numpy as np
import pytest

from gan_probe.data import DATASETS, load_split
from gan_probe.errors import DataError


def test_digits_splits_are_fixed_and_disjoint():
    from sklearn.datasets import load_digits

    train, test = load_split("digits", split="train"), load_split("digits", split="test")
    assert train.images.shape == (1347, 32, 32, 3) and test.images.shape == (450, 32, 32, 3)
    target = load_digits().target
    assert train.labels.tolist() == target[:1347].tolist() and test.labels.tolist() == target[1347:].tolist()
    assert train.classes == tuple("0123456789")
    np.testing.assert_array_equal(train.images[..., 0], train.images[..., 2])  # grey replicated to RGB
    assert train.images.max() == 255 and train.images.min() == 0


def test_digits_deterministic_and_resizable():
    a, b = load_split("digits", split="test"), load_split("digits", split="test")
    assert a.checksum == b.checksum
    assert load_split("digits", split="test", image_size=64).images.shape == (450, 64, 64, 3)


def test_registry_errors():
    assert DATASETS == ("cifar10", "svhn", "imagenet", "folder", "digits")
    with pytest.raises(DataError, match=r"--dataset 'mnist': unknown dataset; expected one of cifar10, svhn"):
        load_split("mnist", split="train")
    with pytest.raises(DataError, match=r"--split 'val': digits has the splits train and test"):
        load_split("digits", split="val")
    with pytest.raises(DataError, match=r"--image-size 0: expected a positive number of pixels"):
        load_split("digits", split="train", image_size=0)
