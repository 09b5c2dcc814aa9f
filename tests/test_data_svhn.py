"""SVHN reader: format-2 .mat files written here with scipy.io.savemat exactly as the official ones."""
import numpy as np
import pytest
from scipy.io import savemat

from gan_probe.data import load_split
from gan_probe.data.resize import resize_center_crop
from gan_probe.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")


def write_mat(path, n=7, seed=0, **override):
    """X uint8 (32, 32, 3, N) and y uint8 (N, 1) with 10 for the digit 0; returns (images, digits)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    digits = np.arange(n) % 10
    mat = {"X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)),
           "y": np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)}
    mat.update(override)
    savemat(path, mat)
    return images, digits


def test_round_trip_pixels_and_zero_label(tmp_path):
    images, digits = write_mat(tmp_path / "train_32x32.mat", n=12)
    s = load_split("svhn", tmp_path, "train")
    np.testing.assert_array_equal(s.images, images)
    assert s.labels.tolist() == digits.tolist() and s.labels[0] == 0 and s.labels[10] == 0
    assert s.classes == tuple("0123456789")
    assert s.source == str(tmp_path / "train_32x32.mat") and s.info["format"].startswith("svhn format-2")


def test_pixel_layout_closed_form(tmp_path):
    x = np.zeros((32, 32, 3, 2), np.uint8)
    x[3, 5, 1, 1] = 200  # row 3, column 5, green, second image
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[10], [4]], np.uint8)})
    s = load_split("svhn", tmp_path, "test")
    assert s.images[1, 3, 5, 1] == 200 and int(s.images.sum()) == 200 and s.labels.tolist() == [0, 4]


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_each_split_reads_its_file(tmp_path, split):
    seeds = {"train": 1, "test": 2, "extra": 3}
    expected = {name: write_mat(tmp_path / f"{name}_32x32.mat", seed=seed)[0] for name, seed in seeds.items()}
    np.testing.assert_array_equal(load_split("svhn", tmp_path, split).images, expected[split])


def test_root_may_be_a_renamed_mat_file(tmp_path):
    images, _ = write_mat(tmp_path / "svhn-slice-dev_32x32.mat")
    s = load_split("svhn", tmp_path / "svhn-slice-dev_32x32.mat", "test")
    np.testing.assert_array_equal(s.images, images)
    assert s.split == "test" and s.source.endswith("svhn-slice-dev_32x32.mat")


def test_resize(tmp_path):
    images, _ = write_mat(tmp_path / "test_32x32.mat")
    s = load_split("svhn", tmp_path, "test", image_size=64)
    np.testing.assert_array_equal(s.images, resize_center_crop(images, 64))


def test_v73_hdf5_file_is_refused(tmp_path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n" + b"\0" * 600)
    with pytest.raises(DataError, match=r"train_32x32.mat: MATLAB v7.3 \(HDF5\) file; expected a MATLAB v5"):
        load_split("svhn", tmp_path, "train")


@pytest.mark.parametrize("override, message", [
    ({"X": np.zeros((28, 28, 3, 7), np.uint8)}, r"X is uint8 \(28, 28, 3, 7\); expected uint8 \(32, 32, 3, N\)"),
    ({"X": np.zeros((32, 32, 3, 7))}, r"X is float64 \(32, 32, 3, 7\)"),
    ({"y": np.ones((6, 1), np.uint8)}, r"y has shape \(6, 1\) for 7 images; expected \(7, 1\)"),
    ({"y": np.full((7, 1), 11, np.uint8)}, r"y has values outside the integers 0..10"),
    ({"y": np.full((7, 1), 1.5)}, r"y has values outside the integers 0..10"),
])
def test_bad_arrays(tmp_path, override, message):
    write_mat(tmp_path / "train_32x32.mat", **override)
    with pytest.raises(DataError, match=r"train_32x32.mat: " + message) as exc:
        load_split("svhn", tmp_path, "train")
    assert "\n" not in str(exc.value)


def test_wrong_keys(tmp_path):
    savemat(tmp_path / "train_32x32.mat", {"images": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DataError, match=r"train_32x32.mat: has variables \['images', 'y'\]; expected X and y"):
        load_split("svhn", tmp_path, "train")


def test_truncated_and_foreign_files(tmp_path):
    write_mat(tmp_path / "train_32x32.mat", n=50)
    data = (tmp_path / "train_32x32.mat").read_bytes()
    (tmp_path / "train_32x32.mat").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=r"train_32x32.mat: truncated or corrupt .mat"):
        load_split("svhn", tmp_path, "train")
    (tmp_path / "test_32x32.mat").write_text("just some text, not MATLAB")
    with pytest.raises(DataError, match=r"test_32x32.mat: not a MATLAB .mat file"):
        load_split("svhn", tmp_path, "test")


def test_missing_files_and_bad_split(tmp_path):
    with pytest.raises(DataError, match=r"extra_32x32.mat: not found; expected the SVHN format-2 file from "
                                        r"http://ufldl.stanford.edu/housenumbers/extra_32x32.mat"):
        load_split("svhn", tmp_path, "extra")
    with pytest.raises(DataError, match=r"nope: not found; expected a folder holding train_32x32.mat"):
        load_split("svhn", tmp_path / "nope", "train")
    with pytest.raises(DataError, match=r"--split 'val': svhn has the splits train, test, extra"):
        load_split("svhn", tmp_path, "val")
