"""Feature standardisation with training statistics, computed in one chunked float64 pass.

The probe never materialises a standardised copy of a large feature matrix: :class:`Standardizer` only holds
the per-column mean and scale, and the solver applies ``(x - mean) / scale`` to each chunk it reads. The same
pass that accumulates the statistics detects NaN and infinity and reports the split and row that hold them.

>>> import numpy as np
>>> x = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
>>> s = fit_standardizer(x)
>>> s.mean.tolist(), s.scale.tolist()      # a constant column gets scale 1
([2.0, 5.0], [1.0, 1.0])
>>> s.transform(x).tolist()
[[-1.0, 0.0], [1.0, 0.0]]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import FeatureStoreError
from . import rows as row_sharing

#: rows per chunk are chosen so that a float64 chunk holds about this many bytes
CHUNK_BYTES = 64 << 20


def chunk_rows_for(dim: int, itemsize: int = 8, target_bytes: int = CHUNK_BYTES) -> int:
    """Rows per chunk so that a ``(rows, dim)`` block of ``itemsize``-byte values holds about ``target_bytes``.

    >>> chunk_rows_for(1024, itemsize=8, target_bytes=8 * 1024 * 100)
    100
    """
    return max(1, int(target_bytes // max(1, dim * itemsize)))


@dataclass
class Standardizer:
    """Per-column ``mean`` and ``scale`` (population std; columns with zero spread get scale 1), float64."""

    mean: np.ndarray
    scale: np.ndarray
    n_rows: int
    n_constant: int = 0

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise a (small) block of rows; returns float32."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description (for result files)."""
        return {"n_rows": int(self.n_rows), "dim": self.dim, "constant_columns": int(self.n_constant)}


def _locate_non_finite(block: np.ndarray, start: int, split: str, rows: np.ndarray | None) -> None:
    bad = ~np.isfinite(block).all(axis=1)
    if bad.any():
        local = int(np.argmax(bad))
        row = int(rows[start + local]) if rows is not None else start + local
        col = int(np.argmax(~np.isfinite(block[local])))
        raise FeatureStoreError(f"{split} features: non-finite value ({block[local, col]}) in row {row}, "
                                f"column {col}; the feature extractor produced NaN or infinity")


def fit_standardizer(x: np.ndarray, rows: np.ndarray | None = None, split: str = "train",
                     chunk_rows: int | None = None, progress: bool = False,
                     reducer: "row_sharing.RowReducer | None" = None) -> Standardizer:
    """Mean and population std of ``x[rows]`` (all rows when ``rows`` is None) in one chunked pass.

    Chunks are merged with the parallel-variance formula in float64, so a memory-mapped float32 matrix of any
    size is read exactly once. A NaN or infinity raises :class:`~gan_probe.errors.FeatureStoreError` naming
    ``split`` and the row.

    With rows shared among ranks (``reducer``, default :func:`gan_probe.probe.rows.active`) every rank reads its
    contiguous share of the rows and the per-rank counts, means and squared deviations are merged over the ranks
    (two all-reduces); a NaN on any rank raises on all of them.
    """
    reducer = reducer or row_sharing.active()
    n, dim = x.shape
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        n = len(rows)
    if n == 0:
        raise FeatureStoreError(f"{split} features: no rows to compute standardisation statistics from")
    if reducer.enabled:
        return _fit_shared(x, np.arange(n) if rows is None else rows, split, chunk_rows, progress, reducer)
    mean, m2, count = _moments(x, rows, split, chunk_rows, progress)
    return _standardizer(mean, m2, count)


def _fit_shared(x: np.ndarray, rows: np.ndarray, split: str, chunk_rows: int | None, progress: bool,
                reducer: "row_sharing.RowReducer") -> Standardizer:
    start, end = reducer.share(len(rows))
    dim = x.shape[1]

    def local() -> tuple[np.ndarray, np.ndarray, int]:
        if start == end:
            return np.zeros(dim), np.zeros(dim), 0
        return _moments(x, rows[start:end], split, chunk_rows, progress and reducer.rank == 0)

    mean, m2, count = reducer.agree(local)
    # the parallel-variance merge over ranks: sum(count_r mean_r) / N, then sum(m2_r + count_r (mean_r - mean)^2)
    total = torch.as_tensor(mean * count, dtype=torch.float64)
    reducer.sum(total)
    merged = total.numpy() / len(rows)
    delta = mean - merged
    spread = torch.as_tensor(m2 + count * delta * delta, dtype=torch.float64)
    reducer.sum(spread)
    return _standardizer(merged, spread.numpy(), len(rows))


def _moments(x: np.ndarray, rows: np.ndarray | None, split: str, chunk_rows: int | None, progress: bool
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, sum of squared deviations and count of ``x[rows]``, chunk by chunk (see :func:`fit_standardizer`)."""
    n, dim = (len(rows), x.shape[1]) if rows is not None else x.shape
    step = chunk_rows or chunk_rows_for(dim)
    mean = np.zeros(dim, dtype=np.float64)
    m2 = np.zeros(dim, dtype=np.float64)
    count = 0
    bar = _progress(n, progress, f"statistics ({split})")
    for start in range(0, n, step):
        idx = slice(start, min(n, start + step))
        raw = x[rows[idx]] if rows is not None else x[idx]
        block = np.asarray(raw, dtype=np.float64)
        block_sum = block.sum(axis=0)
        if not np.isfinite(block_sum).all():
            _locate_non_finite(np.asarray(raw), start, split, rows)
        b = len(block)
        block_mean = block_sum / b
        block -= block_mean
        block_m2 = np.einsum("ij,ij->j", block, block)
        delta = block_mean - mean
        total = count + b
        mean += delta * (b / total)
        m2 += block_m2 + delta * delta * (count * b / total)
        count = total
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
    return mean, m2, count


def _standardizer(mean: np.ndarray, m2: np.ndarray, count: int) -> Standardizer:
    std = np.sqrt(m2 / count)
    constant = std < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
    scale = np.where(constant, 1.0, std)
    return Standardizer(mean=mean, scale=scale, n_rows=int(count), n_constant=int(constant.sum()))


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from ..progress import bar

    return bar(total=total, desc=desc, unit="row", leave=False)
