"""The feature store: a plain directory format any model can produce.

Layout of ``FEATS/``::

    train_features.npy   float32, (N_train, D)
    train_labels.npy     int64,   (N_train,)
    test_features.npy    float32, (N_test, D)
    test_labels.npy      int64,   (N_test,)
    meta.json            provenance: source checkpoint / data checksums, layers, grid, dims per layer, ...

Matrices are written row-chunk by row-chunk into a ``.npy`` file (a temporary file renamed at the end), and read
back memory-mapped, so a 50,000 x 28,672 float32 matrix (5.7 GB) never exists twice in RAM.

A sharded store (``extract --shards`` under torchrun, :mod:`gan_probe.features.shards`) holds a split's features as
one file per rank plus ``shards.json``; :func:`load_store` reads it as the same logical ``(N, D)`` matrix.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, replace_durably, write_json
from ..errors import FeatureStoreError
from .shards import has_shards, read_manifest, read_shards

SPLITS = ("train", "test")
META = "meta.json"


def features_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / f"{split}_features.npy"


def labels_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / f"{split}_labels.npy"


class MatrixWriter:
    """Write a float32 (rows, dim) ``.npy`` file chunk by chunk; it appears under its name only when complete.

    By default the rows go to a temporary file that an interruption deletes. With ``partial=PATH`` they go to
    ``PATH``, which an interruption keeps: a later writer with ``start_row=R`` (see :func:`partial_rows`) keeps
    its first ``R`` rows and appends the rest, so a long extraction resumes where it stopped.

    >>> with MatrixWriter("x.npy", rows=10, dim=4) as w:   # doctest: +SKIP
    ...     w.write(np.zeros((10, 4), np.float32))
    """

    def __init__(self, path: str | os.PathLike, rows: int, dim: int, dtype: Any = np.float32,
                 partial: str | os.PathLike | None = None, start_row: int = 0):
        self.path = Path(path)
        self.rows, self.dim, self.dtype = int(rows), int(dim), np.dtype(dtype)
        self.partial = None if partial is None else Path(partial)
        if start_row and self.partial is None:
            raise ValueError("start_row needs a partial file to resume")
        self._ctx = atomic_path(self.path) if self.partial is None else None
        self._filled = int(start_row)

    @property
    def filled(self) -> int:
        """Rows in the file so far (kept ones included)."""
        return self._filled

    def __enter__(self) -> "MatrixWriter":
        if self._ctx is not None:
            self._tmp = self._ctx.__enter__()
        else:
            self._tmp = self.partial
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
        if self._filled:
            # keep the header and the first start_row rows, append after them
            offset = _npy_header(self._tmp)[3]
            self._fh = open(self._tmp, "r+b")
            self._fh.truncate(offset + self._filled * self.dim * self.dtype.itemsize)
            self._fh.seek(0, os.SEEK_END)
            return self
        # plain sequential writes after the .npy header: resident memory stays flat however large the matrix
        self._fh = open(self._tmp, "wb")
        np.lib.format.write_array_header_1_0(self._fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                        "fortran_order": False, "shape": (self.rows, self.dim)})
        return self

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, self.dim)
        end = self._filled + len(block)
        if end > self.rows:
            raise ValueError(f"{self.path}: writing past the declared {self.rows} rows")
        self._fh.write(block.tobytes())
        self._filled = end

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._fh.close()
        if exc_type is None and self._filled != self.rows:
            exc = ValueError(f"{self.path}: wrote {self._filled} rows, declared {self.rows}")
            if self._ctx is not None:
                self._ctx.__exit__(ValueError, exc, None)  # removes the temporary file
            raise exc
        if self._ctx is not None:
            return bool(self._ctx.__exit__(exc_type, exc, tb))
        if exc_type is None:
            replace_durably(self._tmp, self.path)
        return False


def _npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset of a version 1.0 ``.npy`` file (as :class:`MatrixWriter`
    writes them); ``ValueError`` for another version or no ``.npy`` header."""
    with open(path, "rb") as fh:
        if np.lib.format.read_magic(fh) != (1, 0):
            raise ValueError(f"{path}: not a version 1.0 .npy header")
        shape, fortran, descr = np.lib.format.read_array_header_1_0(fh)
        return tuple(shape), bool(fortran), np.dtype(descr), fh.tell()


def partial_rows(path: str | os.PathLike, rows: int, dim: int, align: int = 1, dtype: Any = np.float32) -> int:
    """How many leading rows of the partial ``.npy`` file ``path`` (left by an interrupted
    :class:`MatrixWriter` with ``partial=path``) are complete and can be kept: a multiple of ``align``, and 0
    when the file is missing, damaged or declares another shape or dtype."""
    path = Path(path)
    dtype = np.dtype(dtype)
    try:
        shape, fortran, stored, offset = _npy_header(path)
        size = path.stat().st_size
    except (OSError, ValueError):
        return 0
    if shape != (int(rows), int(dim)) or fortran or stored != dtype:
        return 0
    complete = min(int(rows), (size - offset) // max(1, int(dim) * dtype.itemsize))
    return complete if complete == rows else complete // align * align


def write_labels(root: str | os.PathLike, split: str, labels: np.ndarray) -> Path:
    path = labels_path(root, split)
    labels = np.asarray(labels, dtype=np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, labels)
    return path


def write_meta(root: str | os.PathLike, meta: dict) -> Path:
    """Write meta.json last: its presence marks the store as complete."""
    return write_json(Path(root) / META, meta)


def save_store(root: str | os.PathLike, train_features: np.ndarray, train_labels: np.ndarray,
               test_features: np.ndarray, test_labels: np.ndarray, meta: dict) -> Path:
    """Write a complete feature store from in-memory arrays (small stores, tests, user code)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", train_features, train_labels), ("test", test_features, test_labels)):
        x = np.asarray(x)
        with MatrixWriter(features_path(root, split), rows=x.shape[0], dim=x.shape[1]) as w:
            for start in range(0, len(x), 8192):
                w.write(x[start:start + 8192])
        write_labels(root, split, y)
    meta = dict(meta)
    meta.setdefault("n_features", int(np.asarray(train_features).shape[1]))
    write_meta(root, meta)
    return root


@dataclass
class FeatureStore:
    """A loaded (memory-mapped) feature store."""

    root: Path
    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    meta: dict

    @property
    def n_features(self) -> int:
        return int(self.train_features.shape[1])

    def identity(self) -> dict[str, Any]:
        """What the ranks of a distributed probe compare to know they read the same store: the shapes, the
        labels' and ``meta.json``'s digests (cheap: the features themselves are not read)."""
        from ..provenance import sha256_array

        meta = np.frombuffer(json.dumps(self.meta, sort_keys=True).encode(), np.uint8)
        shards = {split: [len(p) for p in x.parts] for split, x in (("train", self.train_features),
                                                                     ("test", self.test_features))
                  if hasattr(x, "parts")}
        return {"train": list(self.train_features.shape), "test": list(self.test_features.shape),
                "labels": [sha256_array(self.train_labels)[:12], sha256_array(self.test_labels)[:12]],
                "meta.json": sha256_array(meta)[:12], "shards": shards or None}


def select_store_layers(store: FeatureStore, layers: list[int] | tuple[int, ...], flag: str = "--layers"
                        ) -> FeatureStore:
    """The columns of some of a store's conv layers (0-based indices, as ``extract --layers``), in memory.

    The layers must be among those the store holds (``meta["layers"]``, with ``dims_per_layer`` giving their
    column blocks in order); the returned store's meta records the selection (``layers``, ``layer_names``,
    ``dims_per_layer``, ``n_features``) and ``selected_from`` the store's full list.

    >>> import tempfile
    >>> root = save_store(tempfile.mkdtemp(), np.arange(12, dtype=np.float32).reshape(2, 6), np.array([0, 1]),
    ...                    np.zeros((1, 6), np.float32), np.array([0]),
    ...                    {"layers": [0, 1], "layer_names": ["conv1", "conv2"],
    ...                     "dims_per_layer": {"conv1": 2, "conv2": 4}})
    >>> select_store_layers(load_store(root), [1]).train_features.tolist()
    [[2.0, 3.0, 4.0, 5.0], [8.0, 9.0, 10.0, 11.0]]
    """
    meta = store.meta
    have = [int(i) for i in meta.get("layers") or []]
    names = list(meta.get("layer_names") or [])
    dims = meta.get("dims_per_layer") or {}
    if not have or len(names) != len(have) or any(n not in dims for n in names) \
            or sum(int(dims[n]) for n in names) != store.n_features:
        raise FeatureStoreError(f"{store.root / META}: records no per-layer column blocks (layers, layer_names, "
                                f"dims_per_layer); {flag} needs a store written by gan-probe extract")
    chosen = sorted(set(int(i) for i in layers))
    absent = [i for i in chosen if i not in have]
    if absent or not chosen:
        raise FeatureStoreError(f"{flag} {','.join(map(str, layers))}: {store.root} holds conv layers "
                                f"{','.join(map(str, have))}")
    starts = np.cumsum([0] + [int(dims[n]) for n in names])
    blocks = [(starts[have.index(i)], starts[have.index(i) + 1]) for i in chosen]

    def take(x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), sum(b - a for a, b in blocks)), dtype=x.dtype)
        for start in range(0, len(x), 4096):  # row chunks: memory-mapped pages are read once
            chunk = np.asarray(x[start:start + 4096])
            out[start:start + len(chunk)] = np.concatenate([chunk[:, a:b] for a, b in blocks], axis=1)
        return out

    kept = [names[have.index(i)] for i in chosen]
    new_meta = {**meta, "layers": chosen, "layer_names": kept, "dims_per_layer": {n: dims[n] for n in kept},
                "n_features": int(sum(b - a for a, b in blocks)),
                "selected_from": {"layers": have, "root": str(store.root)}}
    if meta.get("channels") and len(meta["channels"]) == len(have):
        new_meta["channels"] = [meta["channels"][have.index(i)] for i in chosen]
    return FeatureStore(store.root, take(store.train_features), store.train_labels, take(store.test_features),
                        store.test_labels, new_meta)


def _load_features(root: Path, split: str, mmap: bool):
    """A split's feature matrix: the plain ``.npy`` file, or its shards read as one matrix."""
    if not features_path(root, split).is_file() and split in (read_manifest(root) or {}).get("splits", {}):
        return read_shards(root, split, mmap)
    return _load_npy(features_path(root, split), mmap)


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise FeatureStoreError(f"{path}: missing; a feature store needs train/test _features.npy and _labels.npy "
                                f"and meta.json")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FeatureStoreError(f"{path}: not a readable .npy array ({exc})") from None


def is_complete(root: str | os.PathLike) -> bool:
    root = Path(root)
    return (root / META).is_file() and all((features_path(root, s).is_file() or has_shards(root, s))
                                           and labels_path(root, s).is_file() for s in SPLITS)


def load_store(root: str | os.PathLike, mmap: bool = True) -> FeatureStore:
    """Load and validate a feature store (shapes, dtypes, label ranges). Features stay memory-mapped.

    Non-finite values are not looked for here: the probe finds the training split's while computing its
    standardisation statistics (that pass reads every value anyway) and checks the test split with
    :func:`gan_probe.features.store.check_finite` before it fits anything.
    """
    root = Path(root)
    if not root.is_dir():
        raise FeatureStoreError(f"{root}: feature store directory not found")
    meta_file = root / META
    if not meta_file.is_file():
        raise FeatureStoreError(f"{meta_file}: missing (an incomplete or foreign feature store)")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise FeatureStoreError(f"{meta_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    arrays = {}
    for split in SPLITS:
        x = _load_features(root, split, mmap)
        y = _load_npy(labels_path(root, split), mmap=False)
        if x.ndim != 2:
            raise FeatureStoreError(f"{features_path(root, split)}: expected a 2-D (N, D) matrix, got shape {x.shape}")
        if x.dtype != np.float32:
            raise FeatureStoreError(f"{features_path(root, split)}: expected float32, got {x.dtype}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise FeatureStoreError(f"{labels_path(root, split)}: expected a 1-D integer label vector, "
                                    f"got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise FeatureStoreError(f"{labels_path(root, split)}: {len(y)} labels but "
                                    f"{features_path(root, split).name} has {len(x)} rows")
        if len(y) and y.min() < 0:
            raise FeatureStoreError(f"{labels_path(root, split)}: negative labels")
        arrays[split] = (x, y.astype(np.int64, copy=False))
    if arrays["train"][0].shape[1] != arrays["test"][0].shape[1]:
        raise FeatureStoreError(f"{root}: train features have {arrays['train'][0].shape[1]} columns but test "
                                f"features have {arrays['test'][0].shape[1]}")
    return FeatureStore(root, arrays["train"][0], arrays["train"][1], arrays["test"][0], arrays["test"][1], meta)


def check_finite(x: np.ndarray, name: str = "features", chunk_rows: int = 4096, rows: tuple[int, int] | None = None
                 ) -> None:
    """Raise FeatureStoreError naming the first row (and its column) that holds a NaN or infinity (among the rows
    ``rows = (start, stop)`` only, e.g. one rank's share, when given)."""
    first, stop = rows if rows is not None else (0, len(x))
    for start in range(first, stop, chunk_rows):
        block = np.asarray(x[start:min(stop, start + chunk_rows)])
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            local = int(np.argmax(bad))
            col = int(np.argmax(~np.isfinite(block[local])))
            raise FeatureStoreError(f"{name}: non-finite value ({block[local, col]}) in row {start + local}, column "
                                    f"{col}; the feature extractor produced NaN or infinity")
