"""Frechet distance: closed forms, self-distance, both square-root methods, streaming statistics, stats files."""
import numpy as np
import pytest

from gan_probe.errors import GanProbeError
from gan_probe.metrics.fid import FeatureStats, StatsAccumulator, fid_from_stats, frechet_distance


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_diagonal_gaussians_closed_form(method):
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method)
    assert got.fid == pytest.approx(expected, rel=1e-10)
    assert got.method == method


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_equal_covariances_give_squared_mean_distance(method):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8))
    sigma = a @ a.T + np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    assert frechet_distance(mu1, sigma, mu2, sigma, method=method).fid == pytest.approx(
        np.sum((mu1 - mu2) ** 2), rel=1e-8, abs=1e-9)


def test_methods_agree_on_full_covariances():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 20)), rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20)) * 0.5 + 1
    a, b = FeatureStats.from_features(x), FeatureStats.from_features(y)
    assert fid_from_stats(a, b, "sqrtm").fid == pytest.approx(fid_from_stats(a, b, "eigh").fid, rel=1e-8)


def test_set_against_itself_is_zero():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(60, 40)) * rng.uniform(0.5, 2, size=40)
    stats = FeatureStats.from_features(feats)
    assert abs(fid_from_stats(stats, stats, "sqrtm").fid) < 1e-6
    assert abs(fid_from_stats(stats, stats, "eigh").fid) < 1e-6


def test_singular_covariances_stay_finite():
    # fewer samples than dimensions: rank-deficient covariances, as with small sample counts at 2048-d
    rng = np.random.default_rng(4)
    a = FeatureStats.from_features(rng.normal(size=(10, 50)))
    b = FeatureStats.from_features(rng.normal(size=(10, 50)) + 0.5)
    r1, r2 = fid_from_stats(a, b, "sqrtm"), fid_from_stats(a, b, "eigh")
    assert np.isfinite(r1.fid) and np.isfinite(r2.fid)
    assert r1.fid == pytest.approx(r2.fid, rel=1e-3)


def test_matches_torch_fidelity_statistics_to_metric():
    fid_mod = pytest.importorskip("torch_fidelity.metric_fid")
    rng = np.random.default_rng(5)
    a = FeatureStats.from_features(rng.normal(size=(200, 30)))
    b = FeatureStats.from_features(rng.normal(size=(200, 30)) * 1.3 + 0.2)
    ref = fid_mod.fid_statistics_to_metric({"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma},
                                           verbose=False)
    assert fid_from_stats(a, b).fid == pytest.approx(ref["frechet_inception_distance"], rel=1e-8)


def test_streaming_statistics_equal_numpy():
    rng = np.random.default_rng(6)
    x = (rng.normal(size=(257, 12)) * 0.1 + 1000).astype(np.float32)  # large offset: tests the shifted sums
    acc = StatsAccumulator()
    for chunk in np.array_split(x, 7):
        acc.update(chunk)
    stats = acc.finalize()
    ref = FeatureStats.from_features(x)
    np.testing.assert_allclose(stats.mu, ref.mu, rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-7, atol=1e-12)
    assert stats.n == 257


def test_stats_file_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    stats = FeatureStats.from_features(rng.normal(size=(20, 5)), info={"source": {"kind": "images"}})
    path = stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(path)
    np.testing.assert_array_equal(back.mu, stats.mu)
    np.testing.assert_array_equal(back.sigma, stats.sigma)
    assert back.n == 20 and back.info == {"source": {"kind": "images"}}
    np.savez(tmp_path / "plain.npz", mu=stats.mu, sigma=stats.sigma)   # pytorch-fid / TTUR style file
    assert FeatureStats.load(tmp_path / "plain.npz").n == -1
    np.savez(tmp_path / "other.npz", x=stats.mu)
    with pytest.raises(GanProbeError, match="mu.*sigma"):
        FeatureStats.load(tmp_path / "other.npz")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="svd")
