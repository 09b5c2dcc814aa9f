"""Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``, mean and std over splits.

The conventions are explicit arguments, with torch-fidelity 0.4.0's defaults (what most recent papers use):
10 splits; the samples are permuted with ``numpy.random.RandomState(2020).permutation(N)`` before splitting;
split ``i`` is ``[i * N // splits, (i + 1) * N // splits)``; std over splits with ``ddof=0`` (population);
all arithmetic in float64 (the logits are cast before the softmax).

>>> import numpy as np
>>> probs = np.eye(4)[np.arange(40) % 4]              # confident and uniform over 4 classes
>>> round(inception_score_from_probs(probs, splits=1).mean, 6)
4.0
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import log_softmax, rel_entr

DEFAULT_SPLITS = 10
DEFAULT_SPLIT_SEED = 2020


@dataclass(frozen=True)
class ISConventions:
    """How the score is aggregated; written next to every result."""

    splits: int = DEFAULT_SPLITS
    shuffle: bool = True
    split_seed: int = DEFAULT_SPLIT_SEED
    std_ddof: int = 0

    def __post_init__(self) -> None:
        if self.splits < 1:
            raise ValueError(f"splits must be >= 1, got {self.splits}")
        if self.std_ddof not in (0, 1):
            raise ValueError(f"std_ddof must be 0 or 1, got {self.std_ddof}")

    def to_dict(self) -> dict:
        return {**asdict(self), "split_rule": "split i = rows [i*N//splits, (i+1)*N//splits) after the "
                                               "permutation RandomState(split_seed).permutation(N)",
                "dtype": "float64"}


@dataclass
class ISResult:
    mean: float
    std: float
    split_scores: list[float]
    n: int
    conventions: ISConventions = field(default_factory=ISConventions)

    def to_dict(self) -> dict:
        return {"inception_score_mean": self.mean, "inception_score_std": self.std, "n": self.n,
                "split_scores": self.split_scores, "conventions": self.conventions.to_dict()}


def _order(n: int, conventions: ISConventions) -> np.ndarray:
    if conventions.shuffle:
        return np.random.RandomState(conventions.split_seed).permutation(n)
    return np.arange(n)


def _aggregate(probs: np.ndarray, log_probs: np.ndarray | None, conventions: ISConventions) -> ISResult:
    n = len(probs)
    if n < conventions.splits:
        raise ValueError(f"{n} samples cannot be divided into {conventions.splits} splits")
    order = _order(n, conventions)
    probs = probs[order]
    log_probs = None if log_probs is None else log_probs[order]
    scores = []
    for i in range(conventions.splits):
        lo, hi = i * n // conventions.splits, (i + 1) * n // conventions.splits
        p = probs[lo:hi]
        marginal = p.mean(axis=0, keepdims=True)
        if log_probs is None:
            kl = rel_entr(p, marginal).sum(axis=1)          # 0 * log 0 = 0 for exactly-zero probabilities
        else:
            kl = (p * (log_probs[lo:hi] - np.log(marginal))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return ISResult(float(np.mean(scores)), float(np.std(scores, ddof=conventions.std_ddof)) if len(scores) > 1
                    else 0.0, scores, n, conventions)


def inception_score_from_probs(probs: np.ndarray, splits: int = DEFAULT_SPLITS, shuffle: bool = True,
                               split_seed: int = DEFAULT_SPLIT_SEED, std_ddof: int = 0) -> ISResult:
    """IS of class probabilities ``probs`` (N, K) (rows sum to 1)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"expected probabilities of shape (N, K), got {probs.shape}")
    return _aggregate(probs, None, ISConventions(splits, shuffle, split_seed, std_ddof))


def inception_score(logits: np.ndarray, splits: int = DEFAULT_SPLITS, shuffle: bool = True,
                    split_seed: int = DEFAULT_SPLIT_SEED, std_ddof: int = 0) -> ISResult:
    """IS of classifier logits (N, K); softmax and log-softmax are taken in float64.

    >>> import numpy as np
    >>> logits = np.log(np.eye(3)[np.arange(30) % 3] + 1e-12)
    >>> r = inception_score(logits, splits=1)
    >>> round(r.mean, 4), r.std, r.n
    (3.0, 0.0, 30)
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"expected logits of shape (N, K), got {logits.shape}")
    log_probs = log_softmax(logits, axis=1)
    return _aggregate(np.exp(log_probs), log_probs, ISConventions(splits, shuffle, split_seed, std_ddof))


def grouped_inception_score(logits: np.ndarray, groups: np.ndarray, splits: int = DEFAULT_SPLITS,
                            shuffle: bool = True, split_seed: int = DEFAULT_SPLIT_SEED,
                            std_ddof: int = 0) -> dict[int, ISResult | None]:
    """IS computed separately within each group (e.g. each class a classifier assigns).

    Each group uses the same conventions; a group with fewer samples than ``splits`` maps to ``None``.
    """
    logits = np.asarray(logits)
    groups = np.asarray(groups)
    if groups.shape != (len(logits),):
        raise ValueError(f"groups must have shape ({len(logits)},), got {groups.shape}")
    out: dict[int, ISResult | None] = {}
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        out[int(g)] = (inception_score(logits[rows], splits, shuffle, split_seed, std_ddof)
                       if len(rows) >= splits else None)
    return out
