"""A content-keyed cache of decoded images as uint8 ``.npy`` files that later loads memory-map.

The cache folder is ``$GAN_PROBE_CACHE`` or ``~/.cache/gan_probe``; arrays live in its ``images/``
sub-folder, named by a sha256 key over the source files' relative paths, sizes and modification times plus
the requested resolution. Files are written atomically, so a crash never leaves a half-written cache entry.
An entry also records its *source* (:func:`source_id`: the reader, the base folder, the files' relative paths
and the resolution, without sizes or times); when the same source is decoded again because its files changed,
the entries it supersedes are deleted, so re-extracted or edited data does not pile up copies in the cache.

>>> from gan_probe.data.files import FileEntry
>>> k1 = cache_key("folder", [FileEntry("a.png", 10, 1)], 32)
>>> k2 = cache_key("folder", [FileEntry("a.png", 10, 2)], 32)
>>> k1 == cache_key("folder", [FileEntry("a.png", 10, 1)], 32), k1 == k2
(True, False)
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import DataError
from ..provenance import sha256_json
from .files import FileEntry

# Part of every key: bump it when decoding or resizing changes, so stale entries are never reused.
CACHE_FORMAT = "gan-probe-images-1 (PIL RGB decode; torch bilinear antialias resize, center crop)"


def cache_dir() -> Path:
    """The cache folder: ``$GAN_PROBE_CACHE`` if set, else ``~/.cache/gan_probe``."""
    env = os.environ.get("GAN_PROBE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gan_probe"


def cache_key(kind: str, entries: Iterable[FileEntry], image_size: int | None, **extra: Any) -> str:
    """sha256 over the reader kind, every (relative path, size, mtime) in order, the resolution and ``extra``."""
    files = [tuple(e) for e in entries]  # (relative path, size, mtime_ns), serialised as JSON lists
    return sha256_json({"format": CACHE_FORMAT, "kind": kind, "files": files, "image_size": image_size,
                        "extra": extra})


def source_id(kind: str, base: str | os.PathLike, entries: Iterable[FileEntry], image_size: int | None) -> str:
    """What an entry decodes, independent of the files' sizes and times: entries with the same source and
    different keys are versions of the same data, the newest one superseding the others."""
    return sha256_json({"kind": kind, "base": str(Path(base).resolve()), "files": [e.relpath for e in entries],
                        "image_size": image_size})


def cache_path(key: str) -> Path:
    return cache_dir() / "images" / f"{key}.npy"


def load_cached(key: str, n: int) -> np.memmap | None:
    """The cached array for ``key`` memory-mapped read-only, or None if absent or not (n, H, W, 3) uint8."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] != n or array.shape[3] != 3:
        return None
    return array


def build_cached(key: str, shape: tuple[int, int, int, int], fill: Callable[[np.ndarray], None],
                 describe: dict[str, Any] | None = None, source: str | None = None) -> np.memmap:
    """Create the cache entry ``key`` of ``shape`` by calling ``fill(writable_memmap)``; return it read-only.

    The array is written to a temporary file and renamed into place only after ``fill`` returns, so an error
    inside ``fill`` (e.g. an unreadable image) leaves no entry behind. ``describe`` goes to a JSON sidecar.
    With ``source`` (:func:`source_id`), older entries of the same source are deleted once this one is in place.
    """
    path = cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            fill(out)
            out.flush()
            del out
            os.chmod(tmp, 0o666 & ~_umask())  # temp files are private; cache entries get the usual mode
        write_json(path.with_suffix(".json"),
                   {"key": key, "shape": list(shape), "format": CACHE_FORMAT,
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    **(describe or {}), **({"source": source} if source else {})})
    except OSError as exc:
        raise DataError(f"{path}: cannot write the image cache ({exc.strerror or exc}); free space or set "
                        f"GAN_PROBE_CACHE to a writable folder") from None
    if source:
        remove_superseded(key, source)
    return np.load(path, mmap_mode="r")


def remove_superseded(key: str, source: str) -> list[Path]:
    """Delete the cache entries other than ``key`` whose sidecar names ``source``; returns the arrays removed.

    A process that still has a removed array memory-mapped keeps reading it (the file goes when it is closed).
    """
    removed = []
    for sidecar in (cache_dir() / "images").glob("*.json"):
        if sidecar.stem == key:
            continue
        try:
            info = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or info.get("source") != source:
            continue
        array = sidecar.with_suffix(".npy")
        array.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        removed.append(array)
    return removed


def _umask() -> int:
    """The process umask, read without changing it (os.umask would briefly alter it for every thread)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
