"""Image folders: files listed in sorted order, decoded once into the memory-mapped cache.

Two layouts are read here: class folders (``<split>/<class>/**/<image>``, label = index of the class name in
the class list, sorted by default) and a flat list of files with labels supplied by the caller (e.g.
Tiny-ImageNet's ``val_annotations.txt``).

>>> import numpy as np, tempfile, pathlib, os
>>> from PIL import Image
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> saved = dict(os.environ); os.environ["GAN_PROBE_CACHE"] = str(root / "cache")  # cache inside root
>>> for c in ("b", "a"):
...     (root / "train" / c).mkdir(parents=True)
...     Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / c / "0.png")
>>> s = load_class_folders(root / "train", dataset="demo", split="train", progress=False)
>>> s.classes, s.labels.tolist(), s.images.shape
(('a', 'b'), [0, 1], (2, 8, 8, 3))
>>> os.environ.clear(); os.environ.update(saved)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from .base import ImageSplit
from .cache import build_cached, cache_key, cache_path, load_cached, source_id
from .decode import decode_into, image_hw
from .files import IMAGE_EXTENSIONS, FileEntry, require_dir, scan_images, subfolders


def extensions_text(extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> str:
    return "/".join(e.lstrip(".") for e in extensions)


def load_files_cached(base: Path, entries: Sequence[FileEntry], image_size: int | None, *, kind: str,
                      progress: bool = True, workers: int | None = None, desc: str = "decoding images"
                      ) -> tuple[np.ndarray, dict]:
    """Decode ``base / e.relpath`` for every entry into a cached uint8 (N, S, S, 3) array (memory-mapped).

    Returns the array and an info dict naming the cache file and whether it was reused. With
    ``image_size=None`` all images must share the first image's (square) size.
    """
    if not entries:
        raise ValueError("no files to decode")
    if image_size is not None and image_size < 1:
        raise DataError(f"--image-size {image_size}: expected a positive number of pixels")
    key = cache_key(kind, entries, image_size)
    cached = load_cached(key, len(entries))
    if cached is not None and (image_size is None or cached.shape[1:3] == (image_size, image_size)):
        return cached, {"cache": str(cache_path(key)), "cache_hit": True}
    paths = [base / e.relpath for e in entries]
    native = None
    if image_size is None:
        native = image_hw(paths[0])
        if native[0] != native[1]:
            raise DataError(f"{paths[0]}: image is {native[1]}x{native[0]}, not square; pass --image-size "
                            f"(image_size=) to resize and center-crop the images")
        shape = (len(paths), native[0], native[1], 3)
    else:
        shape = (len(paths), image_size, image_size, 3)
    images = build_cached(
        key, shape,
        lambda out: decode_into(out, paths, image_size, native=native, workers=workers, progress=progress,
                                desc=desc),
        describe={"kind": kind, "base": str(base), "n": len(paths), "image_size": image_size},
        source=source_id(kind, base, entries, image_size))
    return images, {"cache": str(cache_path(key)), "cache_hit": False}


def class_list(split_dir: Path) -> list[str]:
    """Sorted class sub-folder names of ``split_dir`` (one-line DataError if there are none)."""
    classes = subfolders(split_dir)
    if not classes:
        raise DataError(f"{split_dir}: no class sub-folders; expected {split_dir.name}/<class>/*.png|jpg "
                        f"(for unlabelled images use --dataset folder)")
    return classes


def load_class_folders(split_dir: str | os.PathLike, classes: Sequence[str] | None = None, *, dataset: str,
                       split: str, image_size: int | None = None, progress: bool = True,
                       workers: int | None = None, fmt: str = "image folder",
                       extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> ImageSplit:
    """Read ``split_dir/<class>/**/<image>``; label i for ``classes[i]`` (default: sorted sub-folder names).

    A sub-folder that is not in ``classes`` is an error; a class in ``classes`` without a folder has no images.
    """
    split_dir = require_dir(split_dir, f"{dataset} {split} images in <class>/ sub-folders")
    found = class_list(split_dir)
    classes = list(found if classes is None else classes)
    known = set(classes)
    for name in found:
        if name not in known:
            raise DataError(f"{split_dir / name}: class folder not in the {len(classes)}-class list of {dataset} "
                            f"(first classes: {', '.join(classes[:3])})")
    entries: list[FileEntry] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        if name not in found:
            continue
        files = scan_images(split_dir, split_dir / name, extensions)
        if not files:
            raise DataError(f"{split_dir / name}: class folder has no images ({extensions_text(extensions)})")
        entries.extend(files)
        labels.extend([index] * len(files))
    images, info = load_files_cached(split_dir, entries, image_size, kind="class-folders", progress=progress,
                                     workers=workers, desc=f"decoding {dataset} {split}")
    return ImageSplit(images, np.asarray(labels, dtype=np.int64), tuple(classes), dataset, split,
                      source=str(split_dir), info={"format": fmt, **info})
