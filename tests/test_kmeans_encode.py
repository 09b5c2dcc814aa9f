"""Encoding: triangle and hard codes, quadrant pooling, parity with a float64 reference, batch invariance."""
import math

import numpy as np
import pytest
import torch

from gan_probe.baselines import (KMeansConfig, KMeansDictionary, PatchEncoder, extract_patches, pool_quadrants,
                                 quadrant_halves)


def reference_features(images, centroids, mean, whitening, patch, stride, encoder="triangle", eps=10.0):
    """The original per-image algorithm in float64 NumPy: patches -> normalise -> whiten -> code -> quadrants."""
    n, h, w, c = images.shape
    gh, gw = (h - patch) // stride + 1, (w - patch) // stride + 1
    hr, hc = round(gh / 2 + 1e-9), round(gw / 2 + 1e-9)  # MATLAB round: halves go up
    out = []
    for img in images.astype(np.float64):
        rows = [img[r * stride:r * stride + patch, q * stride:q * stride + patch].reshape(-1)
                for r in range(gh) for q in range(gw)]
        x = np.array(rows)
        x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + eps)
        if whitening is not None:
            x = (x - mean) @ whitening
        z = np.sqrt(np.maximum(((x[:, None, :] - centroids[None]) ** 2).sum(-1), 0))
        if encoder == "triangle":
            f = np.maximum(z.mean(1, keepdims=True) - z, 0)
        else:
            f = np.eye(len(centroids))[z.argmin(1)]
        f = f.reshape(gh, gw, -1)
        out.append(np.concatenate([f[:hr, :hc].sum((0, 1)), f[:hr, hc:].sum((0, 1)),
                                   f[hr:, :hc].sum((0, 1)), f[hr:, hc:].sum((0, 1))]))
    return np.array(out)


def _random_dictionary(rng, d, k, whiten=True):
    centroids = rng.standard_normal((k, d)).astype(np.float32)
    if not whiten:
        return centroids, None, None
    a = rng.standard_normal((d, d))
    return centroids, rng.standard_normal(d) * 0.1, (a @ a.T / d + np.eye(d)) * 0.5


def test_triangle_and_hard_codes_by_hand():
    # 1x1 patches of 3 channels, norm_eps 0: (0,10,20) -> (-1,0,1), (20,10,0) -> (1,0,-1), (0,20,10) -> (-1,1,0)
    img = np.array([[[0, 10, 20], [20, 10, 0]], [[0, 20, 10], [0, 10, 20]]], np.uint8)[None]
    cents = np.array([[-1, 0, 1], [1, 0, -1], [-1, 1, 0]], np.float32)
    tri = PatchEncoder(cents, None, None, patch=1, norm_eps=0.0)(torch.from_numpy(img)).numpy()
    r2, r6 = math.sqrt(2), math.sqrt(6)
    # distances (0, 2r2, r2): mean r2; (2r2, 0, r6): mean (2r2 + r6)/3; (r2, r6, 0): mean (r2 + r6)/3
    expected = [[r2, 0, 0], [0, (2 * r2 + r6) / 3, 0], [0, 0, (r2 + r6) / 3], [r2, 0, 0]]  # TL, TR, BL, BR
    np.testing.assert_allclose(tri.reshape(4, 3), expected, atol=2e-6)
    hard = PatchEncoder(cents, None, None, patch=1, encoder="hard", norm_eps=0.0)(torch.from_numpy(img)).numpy()
    assert hard.reshape(4, 3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]


def test_quadrant_halves_put_the_middle_row_and_column_first():
    assert quadrant_halves(27, 27) == (14, 14)
    assert quadrant_halves(26, 5) == (13, 3)
    assert quadrant_halves(1, 1) == (1, 1)


@pytest.mark.parametrize("gh,gw", [(27, 27), (4, 4), (7, 5), (1, 3)])
def test_pool_quadrants_exact_sums(gh, gw):
    r, c = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    maps = torch.from_numpy(np.stack([100.0 * r + c, np.ones_like(r, dtype=float)], -1)[None])  # K = 2
    pooled = pool_quadrants(maps).numpy().reshape(4, 2)
    hr, hc = (gh + 1) // 2, (gw + 1) // 2
    top, left = np.arange(gh) < hr, np.arange(gw) < hc
    for q, (rows, cols) in enumerate([(top, left), (top, ~left), (~top, left), (~top, ~left)]):
        cell = np.outer(rows, cols)
        assert pooled[q, 0] == (100.0 * r + c)[cell].sum()
        assert pooled[q, 1] == cell.sum()
    if (gh, gw) == (27, 27):
        assert pooled[:, 1].tolist() == [196, 182, 182, 169]   # 14x14, 14x13, 13x14, 13x13


@pytest.mark.parametrize("encoder", ["triangle", "hard"])
@pytest.mark.parametrize("shape,patch,stride,whiten", [((9, 9), 3, 1, True), ((10, 7), 2, 2, False),
                                                       ((8, 8), 2, 1, True), ((6, 11), 3, 2, True)])
def test_encoder_matches_float64_reference(encoder, shape, patch, stride, whiten):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, *shape, 3), dtype=np.uint8)
    images[0, :patch, :patch] = 7            # a flat patch (zero variance)
    d, k = patch * patch * 3, 6
    cents, mean, white = _random_dictionary(rng, d, k, whiten)
    enc = PatchEncoder(cents, mean, white, patch, stride, encoder, block_elements=50)
    got = enc(torch.from_numpy(images)).numpy()
    ref = reference_features(images, cents.astype(np.float64), mean, white, patch, stride, encoder)
    if encoder == "hard":
        assert np.array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_batch_size_and_block_size_do_not_change_features():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (23, 12, 12, 3), dtype=np.uint8)
    cents, mean, white = _random_dictionary(rng, 27, 10)
    d = KMeansDictionary(KMeansConfig(centroids=10, patch=3, patches=10), cents, mean, white)
    full = d.encode(images, batch_size=23)
    for bs in (1, 4, 10):
        np.testing.assert_allclose(d.encode(images, batch_size=bs), full, rtol=1e-5, atol=1e-5)
    small_blocks = PatchEncoder(cents, mean, white, patch=3, block_elements=1)(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(small_blocks, full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.encode(images[::-1].copy(), batch_size=5)[::-1], full, rtol=1e-5, atol=1e-5)


def test_extract_patches_order_and_grid():
    img = torch.arange(5 * 4 * 2, dtype=torch.uint8).view(1, 5, 4, 2)
    x = extract_patches(img, patch=2, stride=1)
    assert x.shape == (1, 4 * 3, 8)
    # position (row 1, col 2) is index 1 * 3 + 2: pixels (1,2),(1,3),(2,2),(2,3), channels last
    assert x[0, 5].tolist() == img[0, 1:3, 2:4].reshape(-1).float().tolist()


def test_worker_threads_do_not_change_features_and_restore_thread_settings():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (37, 9, 9, 3), dtype=np.uint8)
    cents, mean, white = _random_dictionary(rng, 27, 7)
    d = KMeansDictionary(KMeansConfig(centroids=7, patch=3, patches=10), cents, mean, white)
    threads = torch.get_num_threads()
    one = d.encode(images, batch_size=16, workers=1)
    np.testing.assert_allclose(d.encode(images, batch_size=16, workers=3), one, rtol=1e-5, atol=1e-5)
    assert torch.get_num_threads() == threads
    readonly = images.copy()
    readonly.flags.writeable = False
    np.testing.assert_allclose(d.encode(readonly, batch_size=16, workers=2), one, rtol=1e-5, atol=1e-5)
