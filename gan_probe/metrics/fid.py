"""Frechet Inception Distance: feature statistics (mean, covariance) and the Frechet distance between them.

``FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, in float64. Two ways to get the last term:

* ``"sqrtm"`` (default; what pytorch-fid / torch-fidelity / TTUR do): ``scipy.linalg.sqrtm(S1 @ S2)``; if the
  result is not finite, ``eps * I`` is added to both covariances and it is retried; an imaginary part on the
  diagonal up to 1e-3 (round-off) is dropped, a larger one is an error.
* ``"eigh"``: ``tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(A S2 A))`` with ``A = S1^(1/2)`` from a symmetric
  eigendecomposition; negative round-off eigenvalues are clipped to 0. Always real and finite.

The covariance is the unbiased sample covariance (``numpy.cov``, ``ddof=1``), as in every reference.

>>> import numpy as np
>>> mu, s = np.zeros(3), np.eye(3)
>>> round(frechet_distance(mu, s, mu + 1, 4 * s).fid, 6)    # 3 * 1 + 3 * (1 + 4 - 2 * 2)
6.0
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from ..atomic import atomic_path
from ..errors import GanProbeError

METHODS = ("sqrtm", "eigh")


@dataclass
class FeatureStats:
    """Mean and covariance (float64) of ``n`` feature vectors, plus a description of how they were made."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mu = np.asarray(self.mu, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        d = self.mu.shape[0] if self.mu.ndim == 1 else -1
        if self.mu.ndim != 1 or self.sigma.shape != (d, d):
            raise ValueError(f"mu must be (D,) and sigma (D, D); got {self.mu.shape} and {self.sigma.shape}")

    @classmethod
    def from_features(cls, features: np.ndarray, info: dict[str, Any] | None = None) -> "FeatureStats":
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"need at least 2 feature rows of shape (N, D), got {features.shape}")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features), dict(info or {}))

    def save(self, path: str | os.PathLike) -> Path:
        """Atomically write ``mu``, ``sigma``, ``n`` and ``info`` (JSON) to an ``.npz`` file."""
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, mu=self.mu, sigma=self.sigma, n=np.int64(self.n),
                         info=np.array(json.dumps(self.info, default=str)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        """Read an ``.npz`` holding ``mu`` and ``sigma`` (gan-probe's, pytorch-fid's or TTUR's stats files)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "mu" not in data or "sigma" not in data:
                    raise GanProbeError(f"{path}: not a statistics file (expected arrays 'mu' and 'sigma')")
                n = int(data["n"]) if "n" in data else -1
                info = json.loads(str(data["info"])) if "info" in data else {}
                return cls(data["mu"], data["sigma"], n, info)
        except (OSError, ValueError) as exc:
            raise GanProbeError(f"{path}: unreadable statistics file ({str(exc)[:120]})") from None


class StatsAccumulator:
    """Streaming mean and covariance in float64 (shifted sums, so no catastrophic cancellation).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(5, 2, size=(100, 3))
    >>> acc = StatsAccumulator()
    >>> acc.update(x[:30]); acc.update(x[30:])
    >>> bool(np.allclose(acc.finalize().sigma, np.cov(x, rowvar=False)))
    True
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64)
        if batch.ndim != 2:
            raise ValueError(f"expected (B, D) features, got {batch.shape}")
        if self._shift is None:
            self._shift = batch.mean(axis=0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((batch.shape[1], batch.shape[1]))
        centred = batch - self._shift
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.n += len(batch)

    def finalize(self, info: dict[str, Any] | None = None) -> FeatureStats:
        if self.n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, got {self.n}")
        mean_c = self._sum / self.n
        sigma = (self._outer - self.n * np.outer(mean_c, mean_c)) / (self.n - 1)
        return FeatureStats(self._shift + mean_c, (sigma + sigma.T) / 2, self.n, dict(info or {}))


@dataclass
class FrechetResult:
    fid: float
    method: str
    eps_offset: float = 0.0      # eps added to the covariances' diagonals (sqrtm retry), 0 if none
    max_imag: float = 0.0        # largest |imaginary part| dropped from sqrtm's diagonal

    def to_dict(self) -> dict:
        return {"fid": self.fid, "fid_method": self.method, "eps_offset": self.eps_offset,
                "max_imag_dropped": self.max_imag}


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # singular products are expected (N < D); handled by the retry below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(a)


def _trace_sqrt_product_sqrtm(s1: np.ndarray, s2: np.ndarray, eps: float) -> tuple[float, float, float]:
    covmean = _sqrtm(s1 @ s2)
    offset = 0.0
    if not np.isfinite(covmean).all():
        offset = eps
        eye = np.eye(len(s1)) * eps
        covmean = _sqrtm((s1 + eye) @ (s2 + eye))
    max_imag = 0.0
    if np.iscomplexobj(covmean):
        max_imag = float(np.abs(np.diagonal(covmean).imag).max())
        if max_imag > 1e-3:
            raise FloatingPointError(f"sqrtm produced an imaginary component of {max_imag:.3g}; "
                                     "the covariances are ill-conditioned (try method='eigh')")
        covmean = covmean.real
    return float(np.trace(covmean)), offset, max_imag


def _trace_sqrt_product_eigh(s1: np.ndarray, s2: np.ndarray) -> float:
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    lam = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "sqrtm", eps: float = 1e-6) -> FrechetResult:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    offset, max_imag = 0.0, 0.0
    if method == "sqrtm":
        tr_covmean, offset, max_imag = _trace_sqrt_product_sqrtm(s1, s2, eps)
    else:
        tr_covmean = _trace_sqrt_product_eigh(s1, s2)
    fid = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    return FrechetResult(fid, method, offset, max_imag)


def fid_from_stats(a: FeatureStats, b: FeatureStats, method: str = "sqrtm", eps: float = 1e-6) -> FrechetResult:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method=method, eps=eps)
