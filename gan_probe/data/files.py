"""Finding image files on disk in a deterministic order.

Listings are sorted by relative POSIX path (code-point order), so results never depend on the order in which
the file system returns directory entries. Hidden files and folders (names starting with ``.``) are skipped.

>>> is_image_name("a/B.JPEG"), is_image_name("boxes.txt"), is_image_name(".x.png")
(True, False, False)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class FileEntry(NamedTuple):
    """One image file: its path relative to a base folder, its size in bytes and modification time (ns)."""

    relpath: str
    size: int
    mtime_ns: int


def is_image_name(name: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> bool:
    """True for a non-hidden file name with one of ``extensions`` (case-insensitive)."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(extensions)


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path, raising a one-line DataError if it is not an existing directory."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: not found; expected {what}")
    if not path.is_dir():
        raise DataError(f"{path}: is a file; expected a directory ({what})")
    return path


def scan_images(base: str | os.PathLike, start: str | os.PathLike | None = None,
                extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[FileEntry]:
    """All image files under ``start`` (default ``base``), recursively, relative to ``base``, sorted.

    Symbolic links to files and folders are followed (a folder reached twice is visited once).
    """
    base = os.fspath(base)
    start = base if start is None else os.fspath(start)
    prefix = os.path.relpath(start, base)
    prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
    out: list[FileEntry] = []
    seen: set[str] = set()
    stack = [(start, prefix)]
    while stack:
        folder, rel = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise DataError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if name.lower().endswith(extensions):
                if entry.is_file():
                    st = entry.stat()
                    out.append(FileEntry(rel + name, st.st_size, st.st_mtime_ns))
                    continue
            if entry.is_dir():
                stack.append((entry.path, rel + name + "/"))
    out.sort()  # by relative path (unique within one listing)
    return out


def stat_entry(base: Path, relpath: str) -> FileEntry:
    """The :class:`FileEntry` of ``base / relpath`` (one-line DataError if it is missing)."""
    path = base / relpath
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"{path}: not found") from None
    return FileEntry(relpath, st.st_size, st.st_mtime_ns)


def subfolders(path: Path) -> list[str]:
    """Names of the non-hidden sub-folders of ``path``, sorted."""
    return sorted(e.name for e in os.scandir(path) if not e.name.startswith(".") and e.is_dir(follow_symlinks=True))
