"""ZCA whitening of (normalised) patches, fitted by an eigendecomposition of their covariance.

With the covariance ``C = V diag(l) V^T`` (unbiased, denominator n - 1, as MATLAB's ``cov``), the whitening
matrix is ``P = V diag(1 / sqrt(l + eps)) V^T`` and a patch ``x`` maps to ``(x - mean) P``. The whitened
patches then have covariance ``P C P = V diag(l / (l + eps)) V^T``: the identity on directions with variance
well above ``eps``, damped below it (``eps`` = 0.1 in Coates & Ng's code).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Zca:
    """A fitted ZCA transform (float64): ``whiten(x) = (x - mean) @ matrix``."""

    mean: np.ndarray
    matrix: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    eps: float

    def whiten(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) @ self.matrix).astype(dtype, copy=False)


def mean_and_covariance(x: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Column means and the unbiased covariance of an (n, d) matrix, accumulated in float64 chunk by chunk."""
    n, d = x.shape
    if n < 2:
        raise ValueError("the covariance needs at least 2 rows")
    total = np.zeros(d)
    for start in range(0, n, chunk):
        total += np.asarray(x[start:start + chunk], dtype=np.float64).sum(axis=0)
    mean = total / n
    scatter = np.zeros((d, d))
    for start in range(0, n, chunk):
        block = np.asarray(x[start:start + chunk], dtype=np.float64) - mean
        scatter += block.T @ block
    return mean, scatter / (n - 1)


def fit_zca(x: np.ndarray, eps: float = 0.1) -> Zca:
    """Fit ZCA whitening with eigenvalue regulariser ``eps`` to the rows of ``x``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((5000, 3)) * [1.0, 10.0, 100.0]
    >>> zca = fit_zca(x, eps=1e-6)
    >>> np.round(np.cov(zca.whiten(x, np.float64), rowvar=False), 4) + 0.0
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    mean, cov = mean_and_covariance(x)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    eigenvalues = np.clip(eigenvalues, 0.0, None)     # tiny negative values from rounding
    matrix = (eigenvectors / np.sqrt(eigenvalues + eps)) @ eigenvectors.T
    return Zca(mean, matrix, eigenvalues, eigenvectors, float(eps))
