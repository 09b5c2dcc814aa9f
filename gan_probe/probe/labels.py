"""Seeded label draws: stratified validation hold-outs, K labels per class, N labels spread across classes.

Every function takes the labels of the whole training split and a ``pool`` of row indices to draw from, and
returns sorted row indices into the training split. Randomness comes only from ``seed`` (and the draw number),
through NumPy's ``SeedSequence``, so the same seed gives the same rows on every platform.

>>> import numpy as np
>>> labels = np.repeat(np.arange(3), 10)
>>> rows = per_class_draw(labels, np.arange(30), per_class=2, seed=0)
>>> np.bincount(labels[rows]).tolist()
[2, 2, 2]
>>> bool((rows == per_class_draw(labels, np.arange(30), per_class=2, seed=0)).all())
True
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A generator for ``(seed, *stream)``: independent streams for the hold-out and each draw."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *map(int, stream)])))


def _by_class(labels: np.ndarray, pool: np.ndarray) -> dict[int, np.ndarray]:
    pool = np.sort(np.asarray(pool, dtype=np.int64))
    pool_labels = labels[pool]
    return {int(c): pool[pool_labels == c] for c in np.unique(labels)}


def stratified_holdout(labels: np.ndarray, size: int, seed: int,
                       pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` (default: every row) into ``(rest, held_out)`` with ``size`` held-out rows.

    Each class contributes in proportion to its frequency (largest remainders get the leftover rows), and every
    class keeps at least one row in ``rest``.

    >>> labels = np.array([0] * 6 + [1] * 4)
    >>> rest, val = stratified_holdout(labels, 5, seed=1)
    >>> np.bincount(labels[val]).tolist(), len(rest)
    ([3, 2], 5)
    """
    labels = np.asarray(labels)
    pool = np.arange(len(labels)) if pool is None else np.asarray(pool, dtype=np.int64)
    size = int(size)
    groups = _by_class(labels, pool)
    groups = {c: g for c, g in groups.items() if len(g)}
    if size <= 0:
        raise ConfigError(f"--val-size must be positive, got {size}")
    if size > len(pool) - len(groups):
        raise ConfigError(f"--val-size {size}: only {len(pool)} training rows, and each of the {len(groups)} "
                          f"classes must keep at least one for training")
    counts = np.array([len(g) for g in groups.values()])
    quota = counts * size / counts.sum()
    take = np.minimum(np.floor(quota).astype(int), counts - 1)
    order = np.argsort(-(quota - take), kind="stable")
    i = 0
    while take.sum() < size:
        k = order[i % len(order)]
        if take[k] < counts[k] - 1:
            take[k] += 1
        i += 1
    rng = rng_for(seed, 0)
    held = [rng.choice(g, size=t, replace=False) for g, t in zip(groups.values(), take)]
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    rest = np.setdiff1d(pool, held_out, assume_unique=False)
    return rest, held_out


def per_class_draw(labels: np.ndarray, pool: np.ndarray, per_class: int, seed: int, draw: int = 0,
                   setting: str = "--labels-per-class") -> np.ndarray:
    """``per_class`` rows of every class, drawn without replacement from ``pool`` (draw number ``draw``);
    errors name ``per_class`` as ``setting``."""
    labels = np.asarray(labels)
    if per_class < 1:
        raise ConfigError(f"{setting} must be at least 1, got {per_class}")
    groups = _by_class(labels, pool)
    short = {c: len(g) for c, g in groups.items() if len(g) < per_class}
    if short:
        c, have = min(short.items(), key=lambda kv: kv[1])
        raise ConfigError(f"{setting} {per_class}: class {c} has only {have} training rows to draw from"
                          f" (after the validation hold-out); use at most {have}")
    rng = rng_for(seed, 1, draw)
    rows = [rng.choice(g, size=per_class, replace=False) for g in groups.values()]
    return np.sort(np.concatenate(rows))


def spread_draw(labels: np.ndarray, pool: np.ndarray, n_labels: int, seed: int, draw: int = 0,
                setting: str = "--labels") -> np.ndarray:
    """``n_labels`` rows spread uniformly across classes (``n_labels // K`` each; any remainder goes to
    randomly chosen classes), drawn without replacement from ``pool``; errors name ``n_labels`` as ``setting``.

    >>> labels = np.repeat(np.arange(4), 5)
    >>> np.bincount(labels[spread_draw(labels, np.arange(20), 8, seed=3)]).tolist()
    [2, 2, 2, 2]
    """
    labels = np.asarray(labels)
    groups = _by_class(labels, pool)
    k = len(groups)
    if n_labels < k:
        raise ConfigError(f"{setting} {n_labels}: fewer labels than the {k} classes")
    rng = rng_for(seed, 2, draw)
    take = np.full(k, n_labels // k)
    take[rng.choice(k, size=n_labels - take.sum(), replace=False)] += 1
    rows = []
    for (c, g), t in zip(groups.items(), take):
        if len(g) < t:
            raise ConfigError(f"{setting} {n_labels}: class {c} has only {len(g)} training rows to draw {t} from "
                              f"(after the validation hold-out)")
        rows.append(rng.choice(g, size=int(t), replace=False))
    return np.sort(np.concatenate(rows))
