"""Image sources for IS / FID: arrays, folders, checkpoints, dataset specs, and their error messages."""
import numpy as np
import pytest
import torch
from PIL import Image

from gan_probe.models.checkpoint import save_checkpoint
from gan_probe.errors import DataError
from gan_probe.metrics.fid import FeatureStats
from gan_probe.metrics.sources import (ArraySource, open_checkpoint, open_images, parse_dataset_spec, parse_source,
                                       samples_to_uint8)
from gan_probe.models import Discriminator, Generator, preset_config


def _all(source, batch_size):
    return torch.cat(list(source.batches(batch_size))).numpy()


def _checkpoint(path):
    cfg = preset_config("small32", ngf=4, ndf=4)
    torch.manual_seed(0)
    save_checkpoint(path, {"generator": Generator(cfg).state_dict(), "discriminator": Discriminator(cfg).state_dict(),
                           "step": 7, "config": {"model": cfg.to_dict(), "train": {}}})
    return path


def test_npz_key_choice_and_labels(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.arange(5))
    np.savez(tmp_path / "b.npz", imgs)                        # arr_0
    np.savez(tmp_path / "c.npz", zzz=imgs)                    # first array
    np.save(tmp_path / "d.npy", imgs)
    for name in ("a.npz", "b.npz", "c.npz", "d.npy"):
        src = open_images(tmp_path / name)
        np.testing.assert_array_equal(_all(src, 2), imgs.transpose(0, 3, 1, 2))
    assert open_images(tmp_path / "a.npz").labels.tolist() == [0, 1, 2, 3, 4]
    assert open_images(tmp_path / "d.npy").labels is None


@pytest.mark.parametrize("array, what", [
    (np.zeros((4, 8, 8, 3), np.float32), "float32"),
    (np.zeros((4, 3, 8, 8), np.uint8), r"\(4, 3, 8, 8\)"),
    (np.zeros((8, 8, 3), np.uint8), r"\(8, 8, 3\)"),
])
def test_wrong_arrays_are_clear_errors(tmp_path, array, what):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=f"x.npy: expected a uint8 image array of shape \\(N, H, W, 3\\), got .*{what}"):
        open_images(tmp_path / "x.npy")


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_images(tmp_path / "nope.npy")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        open_images(tmp_path / "x.txt")
    with pytest.raises(DataError, match="not found"):
        parse_source(str(tmp_path / "nope"), samples=None, seed=0, device=torch.device("cpu"))


def test_image_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    imgs = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    (tmp_path / "pics" / "sub").mkdir(parents=True)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / "pics" / "sub" / f"{i}.png")
    src = open_images(tmp_path / "pics")
    assert src.n == 3
    np.testing.assert_array_equal(_all(src, 2), imgs.transpose(0, 3, 1, 2))


def test_subset_is_seeded_and_ordered():
    imgs = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=3)
    src = ArraySource(imgs)
    a, b, c = src.subset(4, seed=0), src.subset(4, seed=0), src.subset(4, seed=1)
    first = _all(a, 10)[:, 0, 0, 0].tolist()
    assert first == _all(b, 10)[:, 0, 0, 0].tolist() and first == sorted(first) and len(first) == 4
    assert first != _all(c, 10)[:, 0, 0, 0].tolist()
    assert src.subset(None, 0) is src and src.subset(50, 0) is src
    assert a.describe()["subset"]["of"] == 10


def test_samples_to_uint8_matches_saved_png(tmp_path):
    from torchvision.utils import save_image

    x = torch.linspace(-1.1, 1.1, 3 * 16 * 16).reshape(1, 3, 16, 16)
    x[0, 0, 0, :4] = torch.tensor([-1 + 1 / 255, -1 + 3 / 255, 1 / 255, 0.0])  # values at exact .5 boundaries
    save_image(x, tmp_path / "s.png", normalize=True, value_range=(-1, 1), padding=0)
    png = np.asarray(Image.open(tmp_path / "s.png").convert("RGB"))
    np.testing.assert_array_equal(samples_to_uint8(x)[0].permute(1, 2, 0).numpy(), png)


def test_checkpoint_samples_are_seeded_and_batch_size_invariant(tmp_path):
    path = _checkpoint(tmp_path / "g.pt")
    cpu = torch.device("cpu")
    src = open_checkpoint(path, 11, seed=5, device=cpu, block=4)
    a, b = _all(src, 3), _all(src, 8)
    assert a.shape == (11, 3, 32, 32) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, _all(open_checkpoint(path, 11, seed=5, device=cpu, block=4), 11))
    assert not np.array_equal(a, _all(open_checkpoint(path, 11, seed=6, device=cpu, block=4), 11))
    desc = src.describe()
    assert desc["kind"] == "checkpoint" and desc["seed"] == 5 and desc["step"] == 7 and len(desc["sha256"]) == 64


def test_parse_source_kinds(tmp_path):
    cpu = torch.device("cpu")
    ckpt = _checkpoint(tmp_path / "g.pt")
    assert parse_source(str(ckpt), samples=3, seed=0, device=cpu).n == 3
    stats = FeatureStats(np.zeros(4), np.eye(4), 9)
    stats.save(tmp_path / "s.npz")
    assert isinstance(parse_source(str(tmp_path / "s.npz"), samples=None, seed=0, device=cpu), FeatureStats)
    with pytest.raises(DataError, match="statistics file cannot be scored"):
        parse_source(str(tmp_path / "s.npz"), samples=None, seed=0, device=cpu, allow_stats=False)
    digits = parse_source("dataset:digits::test", samples=20, seed=0, device=cpu)
    assert digits.n == 20 and digits.labels is not None and digits.kind == "dataset"


def test_dataset_spec_syntax():
    assert parse_dataset_spec("dataset:cifar10:/data/c10:test") == ("cifar10", "/data/c10", "test")
    assert parse_dataset_spec("dataset:cifar10:/data/c10") == ("cifar10", "/data/c10", "train")
    assert parse_dataset_spec("dataset:folder:C:/pics:train") == ("folder", "C:/pics", "train")
    assert parse_dataset_spec("dataset:digits") == ("digits", None, "train")
    with pytest.raises(DataError, match="dataset:NAME"):
        parse_dataset_spec("dataset:")
