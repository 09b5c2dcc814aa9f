"""Patches, normalisation, ZCA whitening, Lloyd k-means and the saved dictionary."""
import json

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from gan_probe.baselines import (KMeansConfig, KMeansDictionary, extract_patches, fit_zca, learn_dictionary,
                                 lloyd_kmeans, normalise_patches, normalise_patches_, patch_grid, sample_patches)
from gan_probe.errors import ConfigError, FeatureStoreError


def _images(n=12, h=10, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_patch_grid():
    assert patch_grid(32, 32, 6) == (27, 27)
    assert patch_grid(32, 20, 6, 2) == (14, 8)
    with pytest.raises(ConfigError, match="--patch"):
        patch_grid(5, 5, 6)


def test_sample_patches_are_crops_seeded_and_balanced():
    images = _images()
    a = sample_patches(images, 50, 3, seed=4)
    assert a.shape == (50, 27) and a.dtype == np.float32
    assert np.array_equal(a, sample_patches(images, 50, 3, seed=4))
    assert not np.array_equal(a, sample_patches(images, 50, 3, seed=5))
    dense = extract_patches(torch.from_numpy(images), 3).numpy().reshape(-1, 27)
    found = {tuple(row) for row in dense}
    assert all(tuple(row) in found for row in a)   # every sample is one of the dense patches
    rng = np.random.default_rng(4)                  # the documented recipe: order[i % N], uniform positions
    order = rng.permutation(12)
    which = order[np.arange(50) % 12]
    rows, cols = rng.integers(0, 8, 50), rng.integers(0, 7, 50)
    for i in (0, 17, 49):
        assert np.array_equal(a[i], images[which[i], rows[i]:rows[i] + 3, cols[i]:cols[i] + 3].reshape(-1))
    assert sorted(np.bincount(which, minlength=12).tolist()) == [4] * 10 + [5] * 2


def test_normalisation_closed_form():
    x = np.array([[0.0, 2.0, 4.0], [5.0, 5.0, 5.0], [1.0, 1.0, 7.0]])
    # row 0: mean 2, unbiased var 4 -> (x - 2) / sqrt(14); row 1 flat -> 0; row 2: mean 3, var 12 -> /sqrt(22)
    expected = np.array([[-2, 0, 2] / np.sqrt(14), [0, 0, 0], [-2, -2, 4] / np.sqrt(22)])
    np.testing.assert_allclose(normalise_patches(x, 10.0), expected, rtol=1e-12)
    t = normalise_patches_(torch.tensor(x, dtype=torch.float32), 10.0)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_zca_whitened_covariance_is_v_diag_l_over_l_plus_eps_vt():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 5)) @ rng.standard_normal((5, 5)) * [1, 2, 0.1, 3, 0.05] + 3.0
    zca = fit_zca(x, eps=0.1)
    cov = np.cov(x, rowvar=False)
    lam, vec = np.linalg.eigh(cov)
    np.testing.assert_allclose(zca.eigenvalues, lam, rtol=1e-10)
    np.testing.assert_allclose(zca.matrix, zca.matrix.T, atol=1e-12)          # ZCA: symmetric
    white = zca.whiten(x, np.float64)
    np.testing.assert_allclose(white.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(np.cov(white, rowvar=False), vec @ np.diag(lam / (lam + 0.1)) @ vec.T, atol=1e-10)
    assert not np.allclose(np.cov(white, rowvar=False), np.eye(5), atol=1e-2)  # eps damps small directions
    tiny = fit_zca(x, eps=1e-9).whiten(x, np.float64)
    np.testing.assert_allclose(np.cov(tiny, rowvar=False), np.eye(5), atol=1e-6)


def test_lloyd_matches_sklearn_given_the_same_init():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((200, 4)) + 4 * rng.standard_normal(4) for _ in range(5)])
    x = x.astype(np.float32)
    init = x[rng.choice(len(x), 7, replace=False)]
    ours = lloyd_kmeans(x, 7, iterations=6, init=init, chunk=64)
    ref = KMeans(7, init=init, n_init=1, max_iter=6, tol=0, algorithm="lloyd").fit(x)
    assert ours.relocated == 0
    np.testing.assert_allclose(ours.centroids, ref.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert ours.n_iter == ref.n_iter_ or ours.converged


def test_lloyd_seeded_and_relocates_empty_clusters():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 3)).astype(np.float32)
    a, b = lloyd_kmeans(x, 5, 4, seed=2), lloyd_kmeans(x, 5, 4, seed=2)
    assert np.array_equal(a.centroids, b.centroids) and a.inertia == b.inertia
    assert not np.array_equal(a.centroids, lloyd_kmeans(x, 5, 4, seed=3).centroids)
    assert all(later <= earlier + 1e-6 for earlier, later in zip(a.inertia, a.inertia[1:]))
    dup = lloyd_kmeans(x, 4, 3, init=np.repeat(x[:1], 4, axis=0))     # 3 clusters start empty
    assert dup.relocated >= 3 and np.isfinite(dup.centroids).all()
    assert len(np.unique(dup.centroids, axis=0)) == 4


def _config(**kw):
    return KMeansConfig(**{"centroids": 6, "patch": 3, "patches": 400, "iterations": 4, **kw})


def test_learn_dictionary_is_reproducible_and_saves_round_trip(tmp_path):
    images = _images(20, 11, 11)
    d = learn_dictionary(images, _config(seed=3))
    assert d.centroids.shape == (6, 27) and d.whitening.shape == (27, 27) and d.mean.shape == (27,)
    same = learn_dictionary(images, _config(seed=3))
    assert np.array_equal(d.centroids, same.centroids) and np.array_equal(d.whitening, same.whitening)
    assert not np.array_equal(d.centroids, learn_dictionary(images, _config(seed=4)).centroids)
    feats = d.encode(images, batch_size=7)
    assert feats.shape == (20, 24) and np.isfinite(feats).all() and (feats >= 0).all()
    path = d.save(tmp_path / "dict.npz")
    back = KMeansDictionary.load(path)
    assert back.config == d.config and back.info == d.info
    assert np.array_equal(back.encode(images, batch_size=20), d.encode(images, batch_size=20))
    assert [p.name for p in tmp_path.iterdir()] == ["dict.npz"]          # no temporary files left


def test_no_whiten_and_hard_dictionary(tmp_path):
    images = _images(10, 8, 7)                                          # 6 x 5 grid
    d = learn_dictionary(images, _config(whiten=False, encoder="hard"))
    assert d.whitening is None and d.mean is None
    feats = KMeansDictionary.load(d.save(tmp_path / "d.npz")).encode(images)
    assert np.array_equal(feats.reshape(10, 4, 6).sum(-1), np.tile([9, 6, 9, 6], (10, 1)))  # 3x3, 3x2, 3x3, 3x2


def test_config_validation_and_bad_dictionary_file(tmp_path):
    for bad in ({"centroids": 0}, {"encoder": "soft"}, {"patches": 3, "centroids": 5}, {"stride": 0}):
        with pytest.raises(ConfigError):
            KMeansConfig(**bad)
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(FeatureStoreError, match="x.npz"):
        KMeansDictionary.load(tmp_path / "x.npz")
    # a header with a setting this version does not know is refused, not silently dropped
    d = learn_dictionary(_images(10, 8, 7), _config(whiten=False))
    path = d.save(tmp_path / "d.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    header["config"]["pooling"] = "max"
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "newer.npz", **arrays)
    with pytest.raises(FeatureStoreError, match=r"newer.npz: k-means config: unknown keys \['pooling'\]"):
        KMeansDictionary.load(tmp_path / "newer.npz")


def test_lloyd_result_does_not_depend_on_worker_threads(monkeypatch):
    import gan_probe.baselines.clustering as clustering

    monkeypatch.setattr(clustering, "TASK_ROWS", 64)                    # several tasks per iteration
    x = np.random.default_rng(5).standard_normal((500, 6)).astype(np.float32)
    one = lloyd_kmeans(x, 9, 5, seed=1, workers=1, chunk=32)
    three = lloyd_kmeans(x, 9, 5, seed=1, workers=3, chunk=32)
    assert np.array_equal(one.centroids, three.centroids) and one.inertia == three.inertia
    assert torch.get_num_threads() >= 1                                   # thread settings restored
