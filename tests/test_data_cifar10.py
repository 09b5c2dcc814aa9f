"""CIFAR-10 reader: official python pickles and the image-folder layout, written here in the exact formats."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from gan_probe.data import load_split
from gan_probe.data.resize import resize_center_crop
from gan_probe.errors import DataError

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")


def _rows(images):
    """(N, 32, 32, 3) -> the official (N, 3072) rows: all red values, then green, then blue, row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def write_batches(folder, per_batch=3, seed=0):
    """Write data_batch_1..5, test_batch and batches.meta; return (train images, labels, test images, labels)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": _rows(images),
                 b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
        out[name] = (images, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"num_cases_per_batch": per_batch, b"label_names": NAMES, b"num_vis": 3072}, fh, protocol=2)
    train = [out[f"data_batch_{i}"] for i in range(1, 6)]
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
            out["test_batch"][0], np.asarray(out["test_batch"][1]))


def write_png_folders(root, seed=0, classes=("truck", "cat", "airplane"), per_class=2, size=(32, 32)):
    """train/<class>/<i>.png with random pixels; returns {relative path: pixels}."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for cls in classes:
        (root / "train" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / "train" / cls / f"{i}.png")
            pixels[f"{cls}/{i}.png"] = image
    return pixels


def test_pickles_round_trip_in_batch_order(tmp_path):
    train, train_labels, test, test_labels = write_batches(tmp_path / "cifar-10-batches-py")
    s = load_split("cifar10", tmp_path, "train")
    assert s.images.shape == (15, 32, 32, 3) and s.images.dtype == np.uint8
    np.testing.assert_array_equal(s.images, train)
    assert s.labels.tolist() == train_labels.tolist()
    assert s.classes == tuple(n.decode() for n in NAMES)
    assert s.dataset == "cifar10" and s.split == "train" and s.info["format"] == "cifar-10 python pickles"
    assert "data_batch_1" in s.source and "data_batch_5" in s.source
    t = load_split("cifar10", tmp_path, "test")
    np.testing.assert_array_equal(t.images, test)
    assert t.labels.tolist() == test_labels.tolist() and "test_batch" in t.source


def test_channel_major_row_layout():
    """Closed form: value k of a row is channel k // 1024, pixel row (k % 1024) // 32, column k % 32."""
    from gan_probe.data.cifar10 import chw_rows_to_hwc

    row = np.zeros((1, 3072), np.uint8)
    row[0, 0], row[0, 1], row[0, 32], row[0, 1024], row[0, 2048 + 33] = 10, 20, 30, 40, 50
    img = chw_rows_to_hwc(row)[0]
    assert img[0, 0].tolist() == [10, 40, 0]
    assert img[0, 1, 0] == 20 and img[1, 0, 0] == 30 and img[1, 1, 2] == 50
    assert int(img.sum()) == 150


def test_root_may_be_the_batches_folder_itself(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py")
    a = load_split("cifar10", tmp_path, "test")
    b = load_split("cifar10", tmp_path / "cifar-10-batches-py", "test")
    assert a.checksum == b.checksum


def test_pickles_resized(tmp_path):
    train, *_ = write_batches(tmp_path / "cifar-10-batches-py")
    s = load_split("cifar10", tmp_path, "train", image_size=48)
    assert s.images.shape == (15, 48, 48, 3)
    np.testing.assert_array_equal(s.images, resize_center_crop(train, 48))


def test_missing_meta_falls_back_to_official_names(tmp_path):
    write_batches(tmp_path / "b")
    os.remove(tmp_path / "b" / "batches.meta")
    assert load_split("cifar10", tmp_path / "b", "test").classes[0] == "airplane"


@pytest.mark.parametrize("case, message", [
    ("missing", "data_batch_3: missing CIFAR-10 batch file"),
    ("truncated", "data_batch_3: truncated or corrupt pickle"),
    ("shape", "data_batch_3: b'data' is uint8 (3, 3000); expected uint8 (N, 3072)"),
    ("dtype", "data_batch_3: b'data' is float32 (3, 3072)"),
    ("labels", "data_batch_3: b'labels' has shape (2,) for 3 images"),
    ("range", "data_batch_3: b'labels' has values in 0..12; expected 0..9"),
    ("keys", "data_batch_3: pickle has keys [b'pixels']"),
    ("list", "data_batch_3: pickle holds a list"),
    ("evil", "data_batch_3: truncated or corrupt pickle (refusing to load posix.system"),
])
def test_bad_batch_files(tmp_path, case, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    path = folder / "data_batch_3"
    good = pickle.loads(path.read_bytes(), encoding="bytes")
    if case == "missing":
        path.unlink()
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:
        obj = {"shape": {b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]},
               "dtype": {b"data": np.zeros((3, 3072), np.float32), b"labels": [0, 1, 2]},
               "labels": {b"data": good[b"data"], b"labels": [0, 1]},
               "range": {b"data": good[b"data"], b"labels": [0, 1, 12]},
               "keys": {b"pixels": good[b"data"]},
               "list": [1, 2],
               "evil": None}[case]
        if case == "evil":
            path.write_bytes(b"cposix\nsystem\n(S'echo hacked'\ntR.")
        else:
            path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError) as exc:
        load_split("cifar10", tmp_path, "train")
    text = str(exc.value)
    assert message in text and "\n" not in text
    assert str(path) in text


def test_folder_layout_sorted_classes_exact_pixels(tmp_path):
    pixels = write_png_folders(tmp_path)
    s = load_split("cifar10", tmp_path, "train")
    assert s.classes == ("airplane", "cat", "truck")
    order = sorted(pixels)  # class folders sorted, then files sorted
    assert s.labels.tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(s.images, np.stack([pixels[k] for k in order]))
    assert s.info["format"] == "cifar-10 image folders" and s.source == str(tmp_path / "train")


def test_folder_test_split_uses_train_class_list(tmp_path):
    write_png_folders(tmp_path)
    (tmp_path / "test" / "truck").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "test" / "truck" / "x.jpeg")
    t = load_split("cifar10", tmp_path, "test")
    assert t.classes == ("airplane", "cat", "truck") and t.labels.tolist() == [2]


def test_folder_without_test_split_is_a_clear_error(tmp_path):
    write_png_folders(tmp_path)
    with pytest.raises(DataError, match=r"test: not found; this cifar10 image-folder root has only train/"):
        load_split("cifar10", tmp_path, "test")


def test_folder_resize_and_cache_reuse(tmp_path, monkeypatch):
    pixels = write_png_folders(tmp_path, size=(40, 36))
    s = load_split("cifar10", tmp_path, "train", image_size=32)
    assert s.images.shape == (6, 32, 32, 3) and s.info["cache_hit"] is False
    expected = np.stack([resize_center_crop(pixels[k][None], 32)[0] for k in sorted(pixels)])
    np.testing.assert_array_equal(s.images, expected)

    import gan_probe.data.decode as decode

    monkeypatch.setattr(decode, "read_rgb", lambda path: pytest.fail("decoded again"))
    again = load_split("cifar10", tmp_path, "train", image_size=32)
    assert isinstance(again.images, np.memmap) and again.info["cache_hit"] is True
    assert again.info["cache"].startswith(str(tmp_path / "cache"))
    np.testing.assert_array_equal(again.images, expected)


def test_folder_mixed_sizes_need_image_size(tmp_path):
    write_png_folders(tmp_path)
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "train" / "cat" / "z.png")
    with pytest.raises(DataError, match=r"z.png: image is 30x30 but the first image .* pass --image-size"):
        load_split("cifar10", tmp_path, "train")
    assert load_split("cifar10", tmp_path, "train", image_size=16).images.shape == (7, 16, 16, 3)


def test_folder_errors(tmp_path):
    write_png_folders(tmp_path)
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(DataError, match=r"train/dog: class folder has no images"):
        load_split("cifar10", tmp_path, "train")
    (tmp_path / "train" / "dog" / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"train/dog/bad.png: unreadable image"):
        load_split("cifar10", tmp_path, "train")
    assert not list((tmp_path / "cache").rglob("*.npy"))  # a failed decode leaves no cache entry


def test_root_errors(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: not found"):
        load_split("cifar10", tmp_path / "nowhere", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no CIFAR-10 data; expected cifar-10-batches-py/"):
        load_split("cifar10", tmp_path / "empty", "train")
    with pytest.raises(DataError, match=r"--split 'valid': cifar10 has the splits train, test"):
        load_split("cifar10", tmp_path, "valid")
    with pytest.raises(DataError, match=r"--data-root is required for cifar10"):
        load_split("cifar10", None, "train")
