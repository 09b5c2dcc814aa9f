"""`kmeans_features` / `gan-probe kmeans`: the feature store, the saved dictionary, holdout and limits."""
import json

import numpy as np
import pytest

from gan_probe.baselines import KMeansConfig, kmeans_features, kmeans_store_dictionary, pixel_features
from gan_probe.cli import main
from gan_probe.data.base import ImageSplit
from gan_probe.errors import DataError
from gan_probe.features.store import load_store

SMALL = ["--centroids", "5", "--patches", "300", "--iterations", "3", "--no-progress", "--device", "cpu",
         "--image-size", "12", "--patch", "3"]


def _split(n, seed, size=10, name="train"):
    rng = np.random.default_rng(seed)
    return ImageSplit(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, 3, n),
                      ("a", "b", "c"), "toy", name)


def test_store_layout_meta_and_dictionary(tmp_path):
    train, test = _split(30, 0), _split(11, 1, name="test")
    cfg = KMeansConfig(centroids=4, patch=3, patches=200, iterations=3, seed=7)
    root = kmeans_features(train, test, tmp_path / "feats", cfg, device="cpu", batch_size=8)
    store = load_store(root)
    assert store.train_features.shape == (30, 16) and store.test_features.shape == (11, 16)
    assert store.train_features.dtype == np.float32
    assert np.array_equal(store.train_labels, train.labels) and np.array_equal(store.test_labels, test.labels)
    meta = store.meta
    assert meta["source"] == "kmeans" and meta["n_features"] == 16 and meta["grid"] == [8, 8]
    assert meta["config"] == cfg.to_dict() and meta["quadrant_rows_cols"] == [[4, 4], [4, 4]]
    assert meta["data"]["train"]["sha256"] == train.checksum and meta["data"]["test"]["sha256"] == test.checksum
    assert meta["provenance"]["seeds"] == {"patches": 7, "kmeans_init": 7}
    assert "versions" in meta["provenance"] and meta["provenance"]["device"]["device"] == "cpu"
    dictionary = kmeans_store_dictionary(root)
    # another batch size: the same features up to float32 rounding (the products' blocking differs by batch size
    # on some processors, so bit-equality is not a property of the encoder), as for the store written below
    np.testing.assert_allclose(dictionary.encode(test.images, batch_size=3), store.test_features, rtol=1e-5,
                               atol=1e-5)
    again = load_store(kmeans_features(train, test, tmp_path / "again", cfg, device="cpu", batch_size=30))
    np.testing.assert_allclose(again.train_features, store.train_features, rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in root.iterdir()) == ["dictionary.npz", "meta.json", "test_features.npy",
                                                      "test_labels.npy", "train_features.npy", "train_labels.npy"]


def test_unlabelled_or_mismatched_splits_are_rejected(tmp_path):
    unlabelled = ImageSplit(np.zeros((4, 10, 10, 3), np.uint8), None, None, "folder", "train")
    with pytest.raises(DataError, match="no labels"):
        kmeans_features(unlabelled, _split(3, 0), tmp_path / "x", KMeansConfig(centroids=2, patches=10))
    with pytest.raises(DataError, match="image-size"):
        kmeans_features(_split(4, 0), _split(3, 0, size=12), tmp_path / "x", KMeansConfig(centroids=2, patches=10))
    assert not (tmp_path / "x" / "meta.json").exists()


def test_cli_digits_with_holdout_and_train_limit(tmp_path, capsys):
    out = tmp_path / "f"
    assert main(["kmeans", "--dataset", "digits", "--out", str(out), "--holdout", "200", "--train-limit", "300",
                 "--batch-size", "64", *SMALL]) == 0
    assert "train (300, 20)  test (200, 20)" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["holdout"]["n_test"] == 200 and meta["train_limit"]["n_train"] == 300
    store = load_store(out)
    assert np.bincount(store.test_labels, minlength=10).min() >= 19    # stratified
    assert meta["data"]["train"]["image_size"] == 12 and meta["grid"] == [10, 10]
    # the same command again gives the same features
    assert main(["kmeans", "--dataset", "digits", "--out", str(tmp_path / "g"), "--holdout", "200",
                 "--train-limit", "300", "--batch-size", "300", *SMALL]) == 0
    np.testing.assert_allclose(load_store(tmp_path / "g").train_features, store.train_features, rtol=1e-5,
                               atol=1e-5)


def test_cli_reuses_a_dictionary_and_writes_raw_pixels(tmp_path, capsys):
    first = tmp_path / "a"
    assert main(["kmeans", "--dataset", "digits", "--out", str(first), "--encoder", "hard", "--stride", "2",
                 *SMALL]) == 0
    second = tmp_path / "b"
    assert main(["kmeans", "--dataset", "digits", "--out", str(second), "--dictionary",
                 str(first / "dictionary.npz"), "--no-progress", "--image-size", "12"]) == 0
    assert np.array_equal(load_store(first).test_features, load_store(second).test_features)
    assert load_store(second).meta["grid"] == [5, 5]
    pix = tmp_path / "p"
    assert main(["kmeans", "--dataset", "digits", "--out", str(pix), "--raw-pixels", "--holdout", "0.1",
                 "--no-progress", "--image-size", "12"]) == 0
    store = load_store(pix)
    assert store.meta["source"] == "pixels" and store.test_features.shape == (135, 432)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["kmeans", "--dataset", "digits", "--out", str(tmp_path / "x"), "--centroids", "0"]) == 2
    assert "gan-probe kmeans: error: --centroids 0" in capsys.readouterr().err
    assert main(["kmeans", "--dataset", "digits", "--out", str(tmp_path / "x"), "--holdout", "5000",
                 *SMALL]) == 2
    assert "--holdout 5000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["kmeans", "--out", str(tmp_path / "x"), "--holdout", "1.5"])


def test_same_inputs_reuse_the_store_other_inputs_are_refused(tmp_path):
    from gan_probe.errors import FeatureStoreError

    train, test = _split(12, 0), _split(5, 1, name="test")
    cfg = KMeansConfig(centroids=3, patch=3, patches=100, iterations=2)
    root = kmeans_features(train, test, tmp_path / "s", cfg, device="cpu")
    stamp = (root / "train_features.npy").stat().st_mtime_ns
    assert kmeans_features(train, test, root, cfg, device="cpu") == root
    assert (root / "train_features.npy").stat().st_mtime_ns == stamp          # reused, not recomputed
    with pytest.raises(FeatureStoreError, match="holds features of other inputs"):
        kmeans_features(train, test, root, KMeansConfig(centroids=4, patch=3, patches=100, iterations=2))
    with pytest.raises(FeatureStoreError, match="holds features of other inputs"):
        pixel_features(train, test, root)
    assert (root / "train_features.npy").stat().st_mtime_ns == stamp


def test_an_interrupted_run_leaves_no_temporaries_after_the_rerun(tmp_path):
    train, test = _split(12, 0), _split(5, 1, name="test")
    out = tmp_path / "s"
    out.mkdir()
    stale = out / ".train_features.npy.q81zk2.tmp"  # what a kill in the middle of writing leaves
    stale.write_bytes(b"\0" * 1000)
    root = kmeans_features(train, test, out, KMeansConfig(centroids=3, patch=3, patches=100, iterations=2),
                           device="cpu")
    assert not stale.exists()
    assert load_store(root).train_features.shape == (12, 12)


@pytest.mark.parametrize("holdout,limit", [(None, None), ("200", None), ("0.2", "300"), (None, "400")])
def test_kmeans_chooses_the_images_an_extraction_with_the_same_settings_chooses(tmp_path, holdout, limit):
    """A baseline row and a DCGAN row of one report are scored on the same images: `gan-probe kmeans` takes its
    splits from load_probe_splits, as `gan-probe extract` (and the pipeline) do."""
    from gan_probe.cli import build_parser
    from gan_probe.cli.kmeans import load_splits
    from gan_probe.data.holdout import holdout_count
    from gan_probe.features.extract import ExtractOptions, load_probe_splits

    flags = (["--holdout", holdout] if holdout else []) + (["--train-limit", limit] if limit else [])
    args = build_parser().parse_args(["kmeans", "--dataset", "digits", "--out", str(tmp_path / "k"),
                                      "--holdout-seed", "3", "--image-size", "12", *flags])
    train, test, extra = load_splits(args)
    count = holdout_count(float(holdout), 1347) if holdout else None  # a fraction: the same count of 1,347 to both
    options = ExtractOptions(holdout=count, holdout_seed=3)
    ref_train, ref_test = load_probe_splits("digits", None, 12, options, train_limit=int(limit) if limit else None)
    assert (train.checksum, test.checksum) == (ref_train.checksum, ref_test.checksum)
    assert np.array_equal(train.images, ref_train.images) and np.array_equal(test.labels, ref_test.labels)
    assert len(test) == (count or 450) and len(train) == (int(limit) if limit else 1347 - (count or 0))
    assert extra.get("holdout") == (ref_train.info.get("holdout") if holdout else None)


def test_holdout_is_a_count_or_a_fraction():
    from gan_probe.errors import ConfigError
    from gan_probe.features.extract import ExtractOptions

    assert ExtractOptions(holdout=0.2).holdout == 0.2 and ExtractOptions(holdout=200.0).holdout == 200
    with pytest.raises(ConfigError, match="--holdout must be at least 1, got 0"):
        ExtractOptions(holdout=0)
    with pytest.raises(ConfigError, match=r"--holdout 1.5: expected a count >= 1 or a fraction in \(0, 1\)"):
        ExtractOptions(holdout=1.5)


def test_train_limit_below_one_is_a_one_line_error(tmp_path, capsys):
    assert main(["kmeans", "--dataset", "digits", "--out", str(tmp_path / "k"), "--train-limit", "0", *SMALL]) == 2
    assert "--train-limit 0: expected at least 1" in capsys.readouterr().err
    assert not (tmp_path / "k" / "meta.json").exists()
