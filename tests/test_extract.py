import json

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import save_checkpoint
from gan_probe.cli import main
from gan_probe.errors import ConfigError, FeatureStoreError
from gan_probe.features import MatrixWriter, extract_features, load_store, pooled_features
from gan_probe.features.batchnorm import recompute_batchnorm
from gan_probe.features.extract import _write_split as ORIGINAL_WRITE_SPLIT
from gan_probe.models import Discriminator, Generator, preset_config
from gan_probe.models import to_model_range


def _checkpoint(path, **overrides):
    cfg = preset_config("small32", ngf=4, ndf=4, **overrides)
    torch.manual_seed(0)
    save_checkpoint(path, {"generator": Generator(cfg).state_dict(), "discriminator": Discriminator(cfg).state_dict(),
                           "step": 0, "config": {"model": cfg.to_dict(), "train": {}}})
    return path


def test_paper32_layout_and_layer_order():
    disc = Discriminator(preset_config("paper32")).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = pooled_features(disc, x)
    assert feats.shape == (2, 28_672)
    acts = disc.forward_features(x)
    # the last layer is already 4x4: its pooled block is the activation itself, in (channel, row, col) order
    assert torch.equal(feats[:, -512 * 16:], acts[-1].flatten(1))
    # the first layer (32x32) is max-pooled over 8x8 cells
    first = acts[0][:, :, :8, :8].amax(dim=(2, 3))
    assert torch.equal(feats[:, 0:128 * 16:16], first)
    only = pooled_features(disc, x, layers=[1, 5])
    assert only.shape == (2, (128 + 512) * 16)
    assert torch.equal(only[:, 128 * 16:], feats[:, -512 * 16:])


def test_layer_smaller_than_grid_is_replicated():
    disc = Discriminator(preset_config("small32", ngf=4, ndf=4)).eval()
    x = torch.randn(1, 3, 32, 32)
    last = disc.forward_features(x)[-1]  # 4x4
    feats = pooled_features(disc, x, grid=8, layers=[2]).view(1, -1, 8, 8)
    assert torch.equal(feats, last.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def test_bad_layer_index():
    disc = Discriminator(preset_config("small32", ngf=4, ndf=4))
    with pytest.raises(ConfigError, match="--layers"):
        pooled_features(disc, torch.zeros(1, 3, 32, 32), layers=[7])


def test_batchnorm_recompute_matches_dataset_statistics():
    disc = Discriminator(preset_config("small32", ngf=4, ndf=4))
    images = np.random.default_rng(0).integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    assert recompute_batchnorm(disc, images, batch_size=16) == 4
    with torch.no_grad():
        pre_bn = disc.features[1][0](disc.features[0](to_model_range(torch.from_numpy(images))))
    bn = disc.features[1][1]
    torch.testing.assert_close(bn.running_mean, pre_bn.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not disc.training


def test_extract_store_reuse_and_batch_size_invariance(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.pt")
    root = extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64)
    store = load_store(root)
    meta = store.meta
    assert store.train_features.shape == (1347, 448) and store.test_features.shape == (450, 448)
    assert meta["dims_per_layer"] == {"conv1": 64, "conv2": 128, "conv3": 256}
    assert meta["source"] == "dcgan" and meta["batchnorm"].startswith("recomputed")
    assert np.array_equal(store.test_labels, np.load(tmp_path / "f" / "test_labels.npy"))
    stamp = (root / "train_features.npy").stat().st_mtime_ns
    assert extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64) == root
    assert (root / "train_features.npy").stat().st_mtime_ns == stamp  # reused, not recomputed
    # eval-mode features do not depend on the batch size
    a = extract_features(ckpt, "digits", out=tmp_path / "a", batch_size=50, bn="checkpoint")
    b = extract_features(ckpt, "digits", out=tmp_path / "b", batch_size=128, bn="checkpoint")
    np.testing.assert_allclose(load_store(a).test_features, load_store(b).test_features, rtol=1e-5, atol=1e-6)
    with pytest.raises(FeatureStoreError, match="other inputs"):
        extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64, grid=2)


def test_an_interrupted_extraction_leaves_no_temporaries_after_the_rerun(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.pt")
    out = tmp_path / "f"
    out.mkdir()
    stale = out / ".train_features.npy.k3j9x0.tmp"  # what a kill in the middle of writing leaves
    stale.write_bytes(b"\0" * 1000)
    root = extract_features(ckpt, "digits", out=out, batch_size=64, layers=(2,))
    assert not stale.exists()
    assert sorted(p.name for p in root.iterdir()) == ["meta.json", "test_features.npy", "test_labels.npy",
                                                       "train_features.npy", "train_labels.npy"]


def test_random_init_baseline_is_seeded(tmp_path):
    a = extract_features(random_init="small32", seed=1, dataset="digits", out=tmp_path / "a", layers=(2,))
    b = extract_features(random_init="small32", seed=1, dataset="digits", out=tmp_path / "b", layers=(2,))
    assert np.array_equal(np.load(a / "train_features.npy"), np.load(b / "train_features.npy"))
    assert json.loads((a / "meta.json").read_text())["source"] == "random-d"


def test_cli_extract_errors(tmp_path, capsys):
    assert main(["extract", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "f"),
                 "--no-progress"]) == 2
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["extract", "--checkpoint", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "f"),
                 "--no-progress"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
    ckpt = _checkpoint(tmp_path / "c.pt")
    assert main(["extract", "--checkpoint", str(ckpt), "--out", str(tmp_path / "g"), "--layers", "0,x",
                 "--no-progress"]) == 2
    assert "--layers" in capsys.readouterr().err
    assert main(["extract", "--checkpoint", str(ckpt), "--out", str(tmp_path / "g"), "--layers", "2",
                 "--no-progress"]) == 0
    assert "256 dims" in capsys.readouterr().out


def test_random_init_copies_a_checkpoints_architecture(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.pt")  # small32 with ndf=4
    root = extract_features(random_init=str(ckpt), seed=2, dataset="digits", out=tmp_path / "r")
    meta = json.loads((root / "meta.json").read_text())
    assert meta["n_features"] == 448 and meta["source"] == "random-d"
    assert meta["architecture_of"] == str(ckpt)
    with pytest.raises(ConfigError, match="--random-init nothing"):
        extract_features(random_init="nothing", dataset="digits", out=tmp_path / "x")


def _interrupt_at_split(monkeypatch, which):
    """Make the extraction stop with KeyboardInterrupt when it starts writing split ``which`` (None: never);
    returns the list of splits written."""
    import gan_probe.features.extract as ex

    real, written = ORIGINAL_WRITE_SPLIT, []

    def write(disc, split, root, name, *args, **kwargs):
        if name == which:
            raise KeyboardInterrupt
        written.append(name)
        return real(disc, split, root, name, *args, **kwargs)

    monkeypatch.setattr(ex, "_write_split", write)
    return written


def test_an_interrupted_extraction_resumes_with_its_finished_split_and_batchnorm(tmp_path, monkeypatch):
    import gan_probe.features.extract as ex

    ckpt = _checkpoint(tmp_path / "c.pt")
    whole = extract_features(ckpt, "digits", out=tmp_path / "whole", batch_size=64)
    _interrupt_at_split(monkeypatch, "test")
    with pytest.raises(KeyboardInterrupt):
        extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64)
    assert (tmp_path / "f" / "train_labels.npy").is_file() and not (tmp_path / "f" / "meta.json").exists()

    written = _interrupt_at_split(monkeypatch, None)
    recomputed = []
    monkeypatch.setattr(ex, "_recompute_batchnorm", lambda *a, **k: recomputed.append(1) or 0)
    root = extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64)
    assert written == ["test"] and recomputed == []
    a, b = load_store(whole), load_store(root)
    for part in ("train_features", "train_labels", "test_features", "test_labels"):
        assert np.array_equal(getattr(a, part), getattr(b, part)), part
    assert b.meta["resumed"]["splits"] == ["train"] and b.meta["resumed"]["batchnorm"]
    assert b.meta["batchnorm_batches"] == a.meta["batchnorm_batches"] and "resumed" not in a.meta
    assert sorted(p.name for p in root.iterdir()) == ["meta.json", "test_features.npy", "test_labels.npy",
                                                       "train_features.npy", "train_labels.npy"]


def test_an_interrupted_extraction_of_other_inputs_is_not_reused(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "c.pt")
    _interrupt_at_split(monkeypatch, "test")
    with pytest.raises(KeyboardInterrupt):
        extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64, layers=(2,))
    written = _interrupt_at_split(monkeypatch, None)
    root = extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=64, layers=(1, 2))
    assert written == ["train", "test"] and "resumed" not in load_store(root).meta
    assert load_store(root).meta["layers"] == [1, 2]


def test_no_progress_also_silences_the_decoding_bar(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "c10" / "train" / c).mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "c10" / "train" / c / f"{i}.png")
    argv = ["extract", "--random-init", "small32", "--dataset", "cifar10", "--data-root", str(tmp_path / "c10"),
            "--holdout", "4", "--layers", "2", "--batch-size", "4"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "a")]) == 0
    assert "decoding" not in capsys.readouterr().err
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache2"))   # decode again, with bars this time
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "decoding cifar10 train" in capsys.readouterr().err


def test_a_missing_test_split_suggests_holdout(tmp_path, monkeypatch, capsys):
    """CIFAR-10-style image folders with train/ only: extract, the one-step svm and kmeans say that --holdout N
    carves a test set out of the training images; a missing train split does not get that hint."""
    from PIL import Image

    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")
    for c in ("cat", "dog"):
        (tmp_path / "c10" / "train" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "c10" / "train" / c / f"{i}.png")
    data = ["--dataset", "cifar10", "--data-root", str(tmp_path / "c10")]
    ckpt = _checkpoint(tmp_path / "c.pt")
    for argv in (["extract", "--random-init", "small32", *data, "--out", str(tmp_path / "f")],
                 ["svm", "--checkpoint", str(ckpt), *data, "--features-dir", str(tmp_path / "g"), "--C", "1"],
                 ["kmeans", *data, "--out", str(tmp_path / "k")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "test: not found" in err, err
        assert err.rstrip().endswith("or pass --holdout N to hold out N training images (stratified, seeded) as the "
                                     "test set"), err
    assert main(["extract", "--random-init", "small32", *data, "--train-split", "test", "--test-split", "train",
                 "--out", str(tmp_path / "f")]) == 2
    assert "--holdout" not in capsys.readouterr().err


def test_matrix_writer_keeps_and_resumes_a_partial_file(tmp_path):
    from gan_probe.features.store import partial_rows

    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    out, part = tmp_path / "x.npy", tmp_path / "part" / "x.npy"
    with pytest.raises(KeyboardInterrupt):
        with MatrixWriter(out, rows=10, dim=3, partial=part) as w:
            w.write(x[:4])
            w.write(x[4:7])
            raise KeyboardInterrupt
    assert not out.exists() and part.is_file()
    with open(part, "ab") as fh:  # half a row more, as a kill in the middle of a write leaves
        fh.write(b"\1" * 6)
    assert partial_rows(part, 10, 3) == 7
    assert partial_rows(part, 10, 3, align=4) == 4       # whole batches only
    assert partial_rows(part, 11, 3) == 0 and partial_rows(part, 10, 4) == 0   # another shape: start over
    assert partial_rows(part, 10, 3, dtype=np.float64) == 0
    assert partial_rows(tmp_path / "missing.npy", 10, 3) == 0
    with MatrixWriter(out, rows=10, dim=3, partial=part, start_row=4) as w:
        assert w.filled == 4
        w.write(x[4:])
    assert np.array_equal(np.load(out), x) and not part.exists()
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    assert partial_rows(tmp_path / "junk.npy", 10, 3) == 0


def test_an_extraction_interrupted_inside_a_split_keeps_its_whole_batches(tmp_path, monkeypatch):
    import gan_probe.features.extract as ex

    ckpt = _checkpoint(tmp_path / "c.pt")
    whole = load_store(extract_features(ckpt, "digits", out=tmp_path / "whole", batch_size=100))
    real, calls = ex.pooled_features, []

    def pooled(*args, **kwargs):
        calls.append(len(args[1]))
        if stop_after is not None and len(calls) > stop_after:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ex, "pooled_features", pooled)
    stop_after = 5  # 5 of the training split's 14 batches of 100
    with pytest.raises(KeyboardInterrupt):
        extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=100)
    assert (tmp_path / "f" / ".partial" / "train_features.npy").is_file()
    calls.clear()
    stop_after = None
    root = extract_features(ckpt, "digits", out=tmp_path / "f", batch_size=100)
    assert len(calls) == (14 - 5) + 5   # the 9 missing training batches, then the 5 test batches
    store = load_store(root)
    for part in ("train_features", "train_labels", "test_features", "test_labels"):
        assert np.array_equal(getattr(whole, part), getattr(store, part)), part
    assert store.meta["resumed"]["rows"] == {"train": 500} and store.meta["resumed"]["batchnorm"]
    assert not (root / ".partial").exists()
