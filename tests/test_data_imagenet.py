"""ImageNet-style reader: Tiny-ImageNet folders (with val_annotations.txt), class-folder val, npz batches."""
import numpy as np
import pytest
from PIL import Image

from gan_probe.data import load_split
from gan_probe.data.resize import resize_center_crop
from gan_probe.errors import DataError

WNIDS = ["n04067472", "n01443537", "n02124075"]  # wnids.txt order is not sorted, as in Tiny-ImageNet


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")


def decoded(path):
    return np.asarray(Image.open(path).convert("RGB"))


def write_tiny(root, per_class=2, n_val=11, size=8, wnids_file=True, seed=0):
    """Tiny-ImageNet layout: train/<wnid>/images/<wnid>_<i>.JPEG, <wnid>_boxes.txt, val/images + annotations."""
    rng = np.random.default_rng(seed)
    for wnid in WNIDS:
        (root / "train" / wnid / "images").mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t7\t7\n")
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", quality=90)
    (root / "val" / "images").mkdir(parents=True)
    lines, truth = [], {}
    for i in range(n_val):
        wnid = WNIDS[(i * 2) % 3]
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            root / "val" / "images" / f"val_{i}.JPEG", quality=90)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t1\t6\t7")
        truth[f"val_{i}.JPEG"] = wnid
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    if wnids_file:
        (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n00001740\tentity\nn01443537\tgoldfish, Carassius auratus\n"
                                    "n02124075\tEgyptian cat\nn04067472\treel\n")
    return truth


def test_tiny_train(tmp_path):
    write_tiny(tmp_path)
    s = load_split("imagenet", tmp_path, "train")
    assert s.classes == tuple(sorted(WNIDS))
    assert s.labels.tolist() == [0, 0, 1, 1, 2, 2]
    files = sorted((tmp_path / "train").rglob("*.JPEG"))
    np.testing.assert_array_equal(s.images, np.stack([decoded(p) for p in files]))
    assert s.info["class_names"] == ["goldfish, Carassius auratus", "Egyptian cat", "reel"]
    assert s.source == str(tmp_path / "train")


def test_tiny_val_from_annotations_in_sorted_file_order(tmp_path):
    truth = write_tiny(tmp_path)
    s = load_split("imagenet", tmp_path, "val")
    names = sorted(truth)  # val_0, val_1, val_10, val_2, ...
    assert names[:3] == ["val_0.JPEG", "val_1.JPEG", "val_10.JPEG"]
    classes = sorted(WNIDS)
    assert s.labels.tolist() == [classes.index(truth[n]) for n in names]
    np.testing.assert_array_equal(s.images, np.stack([decoded(tmp_path / "val" / "images" / n) for n in names]))
    assert "val_annotations.txt" in s.source and s.info["format"].startswith("tiny-imagenet val")
    t = load_split("imagenet", tmp_path, "test")  # test reads val
    assert t.split == "test" and t.checksum == s.checksum


def test_labels_same_without_wnids_txt(tmp_path):
    write_tiny(tmp_path / "a")
    write_tiny(tmp_path / "b", wnids_file=False)
    for split in ("train", "val"):
        a, b = load_split("imagenet", tmp_path / "a", split), load_split("imagenet", tmp_path / "b", split)
        assert a.classes == b.classes and a.checksum == b.checksum


def test_val_class_folders_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    raw = {}
    for split in ("train", "val"):
        for wnid in ("n02", "n01"):
            (tmp_path / split / wnid).mkdir(parents=True)
            for i, (h, w) in enumerate([(30, 40), (50, 20)]):
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(img).save(tmp_path / split / wnid / f"{i}.png")
                raw[(split, wnid, i)] = img
    with pytest.raises(DataError, match=r"pass --image-size"):
        load_split("imagenet", tmp_path, "val")
    s = load_split("imagenet", tmp_path, "val", image_size=16)
    assert s.images.shape == (4, 16, 16, 3) and s.labels.tolist() == [0, 0, 1, 1]
    expected = [resize_center_crop(raw[("val", w, i)][None], 16)[0] for w in ("n01", "n02") for i in (0, 1)]
    np.testing.assert_array_equal(s.images, np.stack(expected))


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn09999999\t0\t0\t1\t1\n"),
     r"val_annotations.txt:1: wnid n09999999 is not one of the 3 classes of .*wnids.txt"),
    (lambda r: (r / "val" / "val_annotations.txt").write_text("val_0.JPEG n01443537\n"),
     r"val_annotations.txt:1: expected 'file<TAB>wnid<TAB>box...'"),
    (lambda r: (r / "val" / "images" / "val_3.JPEG").unlink(),
     r"val/images/val_3.JPEG: listed in .*val_annotations.txt but not found"),
    (lambda r: (r / "val" / "images" / "extra.JPEG").write_bytes((r / "val" / "images" / "val_0.JPEG").read_bytes()),
     r"val/images/extra.JPEG: image has no line in .*val_annotations.txt"),
    (lambda r: (r / "val" / "images" / "val_5.JPEG").write_bytes(b"\xff\xd8\xff truncated"),
     r"val/images/val_5.JPEG: unreadable image"),
])
def test_val_errors(tmp_path, damage, message):
    write_tiny(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=message) as exc:
        load_split("imagenet", tmp_path, "val")
    assert "\n" not in str(exc.value)


def test_train_folder_not_in_wnids(tmp_path):
    write_tiny(tmp_path)
    (tmp_path / "train" / "n00000001").mkdir()
    with pytest.raises(DataError, match=r"train/n00000001: class folder not in the 3-class list of imagenet"):
        load_split("imagenet", tmp_path, "train")


def test_folder_errors(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"train: no class sub-folders"):
        load_split("imagenet", tmp_path, "train")
    with pytest.raises(DataError, match=r"val: not found; expected val/<wnid>/\*\*/\*.JPEG or val/images/"):
        load_split("imagenet", tmp_path, "val")
    with pytest.raises(DataError, match=r"--split 'extra': imagenet has the splits train and val"):
        load_split("imagenet", tmp_path, "extra")


# ------------------------------------------------------------------------------------------ npz batches
def write_npz(folder, side=8, sizes=None, compressed=True, seed=0):
    """train_data_batch_<i>.npz + val_data.npz: data uint8 (N, 3*S*S) channel-major, labels 1-based, mean."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    out = {}
    for name, n in (sizes or {"train_data_batch_1": 3, "train_data_batch_2": 2, "train_data_batch_10": 4,
                              "val_data": 3}).items():
        images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        labels = rng.integers(1, 6, n)
        data = images.transpose(0, 3, 1, 2).reshape(n, -1)
        save(folder / f"{name}.npz", data=data, labels=labels.tolist(), mean=data.mean(0))
        out[name] = (images, labels)
    return out


@pytest.mark.parametrize("compressed", [True, False])
def test_npz_batches_in_numeric_order(tmp_path, compressed):
    written = write_npz(tmp_path / "Imagenet8_train", compressed=compressed)
    s = load_split("imagenet", tmp_path, "train")
    order = ["train_data_batch_1", "train_data_batch_2", "train_data_batch_10"]
    np.testing.assert_array_equal(s.images, np.concatenate([written[k][0] for k in order]))
    assert s.labels.tolist() == (np.concatenate([written[k][1] for k in order]) - 1).tolist()
    top = max(int(v[1].max()) for v in written.values())
    assert s.classes == tuple(str(i) for i in range(top))
    assert s.source.endswith("train_data_batch_10.npz") and s.info["format"] == "downsampled-imagenet npz"
    v = load_split("imagenet", tmp_path, "val")
    np.testing.assert_array_equal(v.images, written["val_data"][0])
    assert v.classes == s.classes


def test_npz_resize_and_cache(tmp_path, monkeypatch):
    written = write_npz(tmp_path)
    s = load_split("imagenet", tmp_path, "val", image_size=12)
    np.testing.assert_array_equal(s.images, resize_center_crop(written["val_data"][0], 12))
    assert s.info["cache_hit"] is False

    import gan_probe.data.imagenet as imagenet

    monkeypatch.setattr(imagenet, "read_npz_images", lambda *a: pytest.fail("read the pixels again"))
    again = load_split("imagenet", tmp_path, "val", image_size=12)
    assert isinstance(again.images, np.memmap) and again.info["cache_hit"] is True
    assert again.checksum == s.checksum


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:200]), r"truncated or corrupt npz"),
    (lambda p: np.savez(p, pixels=np.zeros((2, 192), np.uint8), labels=[1, 2]),
     r"has keys \['pixels', 'labels'\]; expected data and labels"),
    (lambda p: np.savez(p, data=np.zeros((3, 100), np.uint8), labels=[1, 2, 3]),
     r"data has shape \(3, 100\); expected \(N, 3\*S\*S\)"),
    (lambda p: np.savez(p, data=np.zeros((3, 192), np.uint8), labels=[0, 1, 2]),
     r"labels must be 1-based integers"),
])
def test_npz_errors(tmp_path, damage, message):
    write_npz(tmp_path, sizes={"train_data_batch_1": 3})
    path = tmp_path / "train_data_batch_1.npz"
    damage(path)
    with pytest.raises(DataError, match=str(path).replace(".", r"\.") + ": .*" + message) as exc:
        load_split("imagenet", tmp_path, "train")
    assert "\n" not in str(exc.value)


def test_npz_batches_must_agree(tmp_path):
    write_npz(tmp_path, sizes={"train_data_batch_1": 3})
    write_npz(tmp_path, side=4, sizes={"train_data_batch_2": 3})
    with pytest.raises(DataError, match=r"train_data_batch_2.npz: data is uint8 \(3, 48\); expected uint8 \(3, 192\)"):
        load_split("imagenet", tmp_path, "train")
