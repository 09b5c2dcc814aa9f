"""Sharded feature matrices: a split's rows in several ``.npy`` files, one per rank that wrote them, read as one.

``torchrun -m gan_probe extract --shards`` has every rank write its own contiguous rows (whole batches of the
one-process order) to its own file, with no gather through rank 0. The store then holds, instead of
``SPLIT_features.npy``::

    SPLIT_features-00000-of-00002.npy   float32, rows [0, a) of the split
    SPLIT_features-00001-of-00002.npy   float32, rows [a, N)
    shards.json                         the manifest: for each sharded split its rows, columns and files in order

Labels and ``meta.json`` are the plain store's. :func:`read_shards` opens a split's files memory-mapped as one
:class:`ShardedMatrix`: a read-only ``(N, D)`` matrix that supports what the readers use (``shape``, ``len``,
``x[start:end]``, ``x[rows]``, ``x[i]``, ``np.asarray(x)``) and touches only the files holding the rows asked
for, so a rank of a distributed probe reads only its share. A missing shard, one of another shape, or a manifest
whose rows do not add up is a one-line :class:`~gan_probe.errors.FeatureStoreError`.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> for r, block in enumerate([np.zeros((2, 3), np.float32), np.ones((1, 3), np.float32)]):
...     np.save(root / shard_name("train", r, 2), block)
>>> write_manifest_split(root, "train", [shard_name("train", r, 2) for r in range(2)], [2, 1], 3)
>>> x = read_shards(root, "train")
>>> x.shape, x[1:3].tolist(), x[[2, 0]].sum(axis=1).tolist()
((3, 3), [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [3.0, 0.0])
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json
from ..errors import FeatureStoreError

MANIFEST = "shards.json"
FORMAT = "gan-probe-feature-shards"


def shard_name(split: str, rank: int, world_size: int) -> str:
    """The file of rank ``rank``'s rows of ``split`` (``train_features-00001-of-00002.npy``)."""
    return f"{split}_features-{rank:05d}-of-{world_size:05d}.npy"


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The store's manifest (None when it has no sharded split)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FeatureStoreError(f"{path}: not a readable shard manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FeatureStoreError(f"{path}: not a gan-probe shard manifest")
    return manifest


def write_manifest_split(root: str | os.PathLike, split: str, files: list[str], rows: list[int], dim: int) -> None:
    """Record ``split``'s shards (file names in row order and their row counts) in the manifest (atomically)."""
    manifest = read_manifest(root) or {"format": FORMAT, "format_version": 1, "splits": {}}
    manifest["splits"][split] = {"rows": int(sum(rows)), "dim": int(dim), "dtype": "float32",
                                 "shards": [{"file": f, "rows": int(n)} for f, n in zip(files, rows)]}
    write_json(Path(root) / MANIFEST, manifest)


def has_shards(root: str | os.PathLike, split: str) -> bool:
    """Whether the manifest lists ``split`` and all its files exist."""
    try:
        manifest = read_manifest(root)
    except FeatureStoreError:
        return False
    entry = (manifest or {}).get("splits", {}).get(split)
    return bool(entry) and all((Path(root) / s["file"]).is_file() for s in entry["shards"])


def read_shards(root: str | os.PathLike, split: str, mmap: bool = True) -> "ShardedMatrix":
    """``split``'s shards as one :class:`ShardedMatrix` (checked against the manifest)."""
    root = Path(root)
    manifest = read_manifest(root)
    entry = (manifest or {}).get("splits", {}).get(split)
    if not entry:
        raise FeatureStoreError(f"{root / MANIFEST}: lists no shards of the {split} split")
    parts = []
    for shard in entry["shards"]:
        path = root / shard["file"]
        if not path.is_file():
            raise FeatureStoreError(f"{path}: missing; {root / MANIFEST} lists it as a shard of the {split} split")
        try:
            part = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FeatureStoreError(f"{path}: not a readable .npy array ({exc})") from None
        if part.shape != (shard["rows"], entry["dim"]):
            raise FeatureStoreError(f"{path}: shape {part.shape}, but {MANIFEST} records "
                                    f"({shard['rows']}, {entry['dim']})")
        parts.append(part)
    if sum(len(p) for p in parts) != entry["rows"]:
        raise FeatureStoreError(f"{root / MANIFEST}: the {split} shards hold {sum(len(p) for p in parts)} rows, "
                                f"the manifest says {entry['rows']}")
    return ShardedMatrix(parts)


class ShardedMatrix:
    """Row blocks (memory-mapped ``.npy`` arrays of equal width and dtype) read as one matrix; see the module."""

    def __init__(self, parts: list[np.ndarray]):
        if not parts:
            raise ValueError("a sharded matrix needs at least one shard")
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]), int(parts[0].shape[1]))
        self.dtype = parts[0].dtype
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.concatenate([np.asarray(p) for p in self.parts]) if len(self.parts) > 1 else np.asarray(self.parts[0])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            rows, rest = key[0], key[1:]
            return self[rows][(slice(None), *rest)] if not np.isscalar(rows) else self[rows][rest]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"row {key} out of range for {self.shape[0]} rows")
            s = int(np.searchsorted(self.starts, i, side="right")) - 1
            return self.parts[s][i - self.starts[s]]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._rows(start, stop)
        return self._take(np.asarray(key))

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``: a view of one shard when they lie in one."""
        if stop <= start:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        last = int(np.searchsorted(self.starts, stop - 1, side="right")) - 1
        pieces = [self.parts[s][max(start, self.starts[s]) - self.starts[s]:min(stop, self.starts[s + 1])
                                - self.starts[s]] for s in range(first, last + 1)]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _take(self, index: np.ndarray) -> np.ndarray:
        """Rows at ``index`` (integers or a boolean mask), in that order."""
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = index.astype(np.int64).reshape(-1)
        index = np.where(index < 0, index + self.shape[0], index)
        if len(index) and (index.min() < 0 or index.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        out = np.empty((len(index), self.shape[1]), dtype=self.dtype)
        shard = np.searchsorted(self.starts, index, side="right") - 1
        for s in np.unique(shard):
            where = shard == s
            out[where] = self.parts[s][index[where] - self.starts[s]]
        return out
