"""Unlabelled image folders, the image cache and the parallel decoder."""
import os

import numpy as np
import pytest
from PIL import Image

from gan_probe.data import default_progress, load_split
from gan_probe.data.decode import decode_into
from gan_probe.data.files import scan_images
from gan_probe.data.resize import resize_center_crop
from gan_probe.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")


def write_images(root, names, size=(10, 10), seed=0):
    """Save random images (format from the extension); returns {relative path: pixels as decoded}."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        out[name] = np.asarray(Image.open(path).convert("RGB"))
    return out


def test_recursive_case_insensitive_sorted(tmp_path):
    names = ["b/z.PNG", "a.png", "b/c/d.JpG", "e.jpeg", "f.bmp", "g.webp", "a2.PNG"]
    pixels = write_images(tmp_path / "pics", names)
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    (tmp_path / "pics" / ".hidden.png").write_bytes(b"junk")
    s = load_split("folder", tmp_path / "pics")
    assert [e.relpath for e in scan_images(tmp_path / "pics")] == sorted(names)
    np.testing.assert_array_equal(s.images, np.stack([pixels[n] for n in sorted(names)]))
    assert s.labels is None and s.classes is None and s.split == "train"
    assert s.source == str(tmp_path / "pics") and s.info["format"] == "image folder"


def test_png_round_trip_is_exact(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    (tmp_path / "p").mkdir()
    Image.fromarray(img).save(tmp_path / "p" / "x.png")
    Image.fromarray(img[..., 0]).save(tmp_path / "p" / "y.png")  # grey image -> replicated to RGB
    Image.fromarray(np.dstack([img, np.full((12, 12), 9, np.uint8)])).save(tmp_path / "p" / "z.png")  # RGBA
    s = load_split("folder", tmp_path / "p")
    np.testing.assert_array_equal(s.images[0], img)
    np.testing.assert_array_equal(s.images[1], np.repeat(img[..., :1], 3, axis=2))
    np.testing.assert_array_equal(s.images[2], img)


def test_order_does_not_depend_on_creation_order(tmp_path):
    names = [f"{c}/{i}.png" for c in "qwerty" for i in range(3)]
    write_images(tmp_path / "one", names, seed=5)
    write_images(tmp_path / "two", names[::-1], seed=99)  # other creation order, other pixels ...
    for n in names:  # ... then the same bytes as "one"
        (tmp_path / "two" / n).write_bytes((tmp_path / "one" / n).read_bytes())
    assert load_split("folder", tmp_path / "one").checksum == load_split("folder", tmp_path / "two").checksum


def test_sizes_and_resize(tmp_path):
    pixels = write_images(tmp_path / "mixed", ["a.png", "b.png"], size=(20, 20))
    pixels.update(write_images(tmp_path / "mixed", ["c.png"], size=(40, 10)))
    with pytest.raises(DataError, match=r"c.png: image is 10x40 but the first image .*a.png is 20x20; .*--image-size"):
        load_split("folder", tmp_path / "mixed")
    s = load_split("folder", tmp_path / "mixed", image_size=8)
    expected = np.stack([resize_center_crop(pixels[n][None], 8)[0] for n in ("a.png", "b.png", "c.png")])
    np.testing.assert_array_equal(s.images, expected)
    write_images(tmp_path / "wide", ["a.png"], size=(20, 30))
    with pytest.raises(DataError, match=r"a.png: image is 30x20, not square; pass --image-size"):
        load_split("folder", tmp_path / "wide")


def test_cache_reused_then_invalidated(tmp_path, monkeypatch):
    write_images(tmp_path / "p", ["a.png", "b.png"])
    first = load_split("folder", tmp_path / "p", image_size=6)
    assert first.info["cache_hit"] is False
    assert os.path.dirname(first.info["cache"]) == str(tmp_path / "cache" / "images")
    assert os.path.isfile(first.info["cache"].replace(".npy", ".json"))

    import gan_probe.data.decode as decode

    real = decode.read_rgb
    monkeypatch.setattr(decode, "read_rgb", lambda path: pytest.fail(f"decoded {path} again"))
    second = load_split("folder", tmp_path / "p", image_size=6)
    assert isinstance(second.images, np.memmap) and str(second.images.filename) == first.info["cache"]
    assert second.info["cache_hit"] is True and second.checksum == first.checksum

    monkeypatch.setattr(decode, "read_rgb", real)
    new = np.zeros((14, 14, 3), np.uint8)
    Image.fromarray(new).save(tmp_path / "p" / "b.png")  # other size and mtime -> other key
    third = load_split("folder", tmp_path / "p", image_size=6)
    assert third.info["cache_hit"] is False and third.info["cache"] != first.info["cache"]
    assert int(third.images[1].max()) == 0
    assert load_split("folder", tmp_path / "p", image_size=5).info["cache_hit"] is False


def test_changed_files_replace_their_cache_entry_and_nothing_else(tmp_path):
    import json
    import time

    write_images(tmp_path / "p", ["a.png", "b.png"])
    write_images(tmp_path / "q", ["a.png", "b.png"], seed=1)
    first = load_split("folder", tmp_path / "p", image_size=6)
    other_size = load_split("folder", tmp_path / "p", image_size=5)
    other_folder = load_split("folder", tmp_path / "q", image_size=6)
    legacy = tmp_path / "cache" / "images" / ("0" * 64 + ".json")  # an entry written before sources were recorded
    legacy.write_text(json.dumps({"kind": "folder", "base": str(tmp_path / "p"), "image_size": 6}))
    legacy.with_suffix(".npy").write_bytes(b"x")
    time.sleep(0.01)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "p" / "b.png")
    again = load_split("folder", tmp_path / "p", image_size=6)
    assert again.info["cache_hit"] is False and int(again.images[1].max()) == 0
    assert not os.path.exists(first.info["cache"]) and not os.path.exists(first.info["cache"].replace(".npy", ".json"))
    assert json.loads(open(again.info["cache"].replace(".npy", ".json")).read())["source"]
    for kept in (other_size, other_folder):
        assert os.path.isfile(kept.info["cache"])
    assert legacy.is_file() and legacy.with_suffix(".npy").is_file()
    np.testing.assert_array_equal(first.images[0], again.images[0])  # the old map stays readable
    assert load_split("folder", tmp_path / "p", image_size=6).info["cache_hit"] is True


def test_parallel_decoding_matches_inline(tmp_path):
    names = [f"{i:02d}.png" for i in range(11)]
    write_images(tmp_path / "p", names, size=(12, 9))
    paths = [tmp_path / "p" / n for n in names]
    inline, pooled = np.empty((11, 8, 8, 3), np.uint8), np.empty((11, 8, 8, 3), np.uint8)
    decode_into(inline, paths, 8, workers=0, progress=False, chunk=4)
    decode_into(pooled, paths, 8, workers=2, progress=False, chunk=4)
    np.testing.assert_array_equal(inline, pooled)
    (tmp_path / "p" / "05.png").write_bytes(b"broken")
    with pytest.raises(DataError, match=r"05.png: unreadable image"):
        decode_into(pooled, paths, 8, workers=2, progress=False, chunk=4)


def test_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"empty: no images found \(searched recursively for png/jpg/jpeg/bmp/webp\)"):
        load_split("folder", tmp_path / "empty")
    with pytest.raises(DataError, match=r"missing: not found; expected a folder of images"):
        load_split("folder", tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match=r"file.png: is a file; expected a directory"):
        load_split("folder", tmp_path / "file.png")
    write_images(tmp_path / "ok", ["a.png"])
    with pytest.raises(DataError, match=r"--split 'test': a folder dataset has one split, train"):
        load_split("folder", tmp_path / "ok", "test")
    (tmp_path / "ok" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"b.png: unreadable image") as exc:
        load_split("folder", tmp_path / "ok")
    assert "\n" not in str(exc.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing half-written left


def test_progress_default_from_environment(monkeypatch):
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")
    assert default_progress() is False
    monkeypatch.delenv("GAN_PROBE_PROGRESS")
    assert default_progress() is True
