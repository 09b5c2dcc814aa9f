"""Small labelled data for the probe's tests: Gaussian classes as arrays, and as feature stores in the documented
format (for the command-line and resume tests)."""
import numpy as np

from gan_probe.features.store import save_store


def make_store(root, n_train=60, n_test=20, d=12, k=3, meta=None, seed=0, spread=2.0):
    """Gaussian classes (``k`` centres ``spread`` apart on average, unit noise) over ``d`` features; the labels
    cycle through the classes. Returns the store's directory."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    ytr, yte = np.arange(n_train) % k, np.arange(n_test) % k
    xtr = (centers[ytr] + rng.normal(size=(n_train, d))).astype(np.float32)
    xte = (centers[yte] + rng.normal(size=(n_test, d))).astype(np.float32)
    return save_store(root, xtr, ytr, xte, yte, meta if meta is not None else {"dataset": "toyset", "layers": [0]})


def gaussian_blobs(n, dim, k=4, seed=0, spread=2.0):
    """``n`` rows of ``dim`` float32 features in ``k`` classes: unit-normal class means plus ``spread`` times unit
    noise; the labels cycle through the classes. Returns ``(x, y)``."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (k, dim))
    y = np.arange(n) % k
    return (means[y] + spread * rng.normal(0, 1, (n, dim))).astype(np.float32), y
