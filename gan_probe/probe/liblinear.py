"""The reference solver: scikit-learn's ``LinearSVC`` (liblinear) on the same standardised features.

liblinear needs the standardised training rows as one in-memory float64 array (8 bytes per value: about 11 GB
for 50,000 x 28,672 features, twice that while scikit-learn validates its input), so it serves small problems
and parity checks; the torch solver in :mod:`gan_probe.probe.newton` serves the paper's scale.

The weights are returned in the layout of the torch solver: ``(n_features + 1, K)`` with the bias last, divided
by ``intercept_scaling`` (liblinear appends a constant feature of value ``intercept_scaling`` and penalises its
weight like any other, so ``intercept_ = intercept_scaling * w_last``).
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .standardize import Standardizer, chunk_rows_for


def standardized_float64(x: np.ndarray, standardizer: Standardizer, rows: np.ndarray | None = None) -> np.ndarray:
    """The standardised rows as one float64 array (what liblinear consumes)."""
    n = len(rows) if rows is not None else x.shape[0]
    out = np.empty((n, x.shape[1]), dtype=np.float64)
    step = chunk_rows_for(x.shape[1])
    for start in range(0, n, step):
        idx = slice(start, min(n, start + step))
        block = x[rows[idx]] if rows is not None else x[idx]
        out[idx] = (np.asarray(block, dtype=np.float64) - standardizer.mean) / standardizer.scale
    return out


def fit_liblinear(x: np.ndarray, labels: np.ndarray, C: float, standardizer: Standardizer,
                  rows: np.ndarray | None = None, intercept_scaling: float = 1.0, tol: float = 1e-4,
                  max_iter: int = 1000, dual: bool | str = "auto") -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit ``LinearSVC(loss="squared_hinge", penalty="l2")`` on ``x[rows]`` standardised by ``standardizer``.

    Returns ``(W, classes, info)`` with ``W`` float64 ``(n_features + 1, K)`` (bias row last, in units of the
    constant feature) and ``info`` holding the iteration count, whether liblinear reported convergence, the
    ``dual`` setting used and the seconds spent in liblinear.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    xs = standardized_float64(x, standardizer, rows)
    y = np.asarray(labels) if rows is None else np.asarray(labels)[rows]
    model = LinearSVC(penalty="l2", loss="squared_hinge", dual=dual, tol=tol, C=C, fit_intercept=True,
                      intercept_scaling=intercept_scaling, max_iter=max_iter)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(xs, y)
    seconds = time.perf_counter() - start
    del xs
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    W = np.vstack([model.coef_.T, (model.intercept_ / intercept_scaling)[None]])
    info = {"n_iter": int(np.max(model.n_iter_)), "converged": converged, "seconds": seconds,
            "dual": str(dual), "tol": tol, "max_iter": max_iter}
    return W, model.classes_, info
