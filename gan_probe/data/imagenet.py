"""ImageNet-style data: image folders (ImageNet, Tiny-ImageNet) or the downsampled-ImageNet npz batches.

Folder layout under ``root``:

* ``train/<wnid>/**/<image>`` (recursive, so Tiny-ImageNet's ``train/<wnid>/images/*.JPEG`` works too);
* ``val/`` as ``val/<wnid>/**/<image>`` class folders, or Tiny-ImageNet's ``val/images/*.JPEG`` with
  ``val/val_annotations.txt`` (tab-separated: file name, wnid, bounding box);
* optional ``wnids.txt`` (one wnid a line: the class set) and ``words.txt`` (``wnid<TAB>names``).

Classes are the wnids in sorted order (from ``wnids.txt`` if present, else the ``train/`` sub-folders), so the
labels are the same with or without ``wnids.txt``.

Downsampled ImageNet (Imagenet32/64, Chrabaszcz et al. 2017): ``train_data_batch_1.npz`` .. ``_10.npz`` and
``val_data.npz`` in ``root`` or one sub-folder below it; keys ``data`` (uint8 (N, 3*S*S), channel-major rows)
and ``labels`` (1-based ints). Both formats are decoded once into the memory-mapped image cache.
Splits: ``train`` and ``val`` (``test`` is read as ``val``).

>>> parse_annotation_line("val_0.JPEG\\tn01443537\\t0\\t1\\t30\\t31", "val_annotations.txt", 1)
('val_0.JPEG', 'n01443537')
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from ..errors import DataError, MissingSplitError
from .base import ImageSplit
from .cache import build_cached, cache_key, cache_path, load_cached, source_id
from .cifar10 import chw_rows_to_hwc
from .files import require_dir, scan_images, stat_entry, subfolders
from .imagefolder import extensions_text, load_class_folders, load_files_cached
from .resize import resize_center_crop

SPLITS = ("train", "val", "test")
_TRAIN_NPZ = re.compile(r"^train_data_batch_(\d+)(\.npz)?$")
_VAL_NPZ = re.compile(r"^val_data(\.npz)?$")
_NPZ_EXPECTED = "a downsampled-ImageNet .npz batch with data uint8 (N, 3*S*S) and 1-based labels"


# ----------------------------------------------------------------------------------------------- npz batches
def npz_batches(root: Path, split: str) -> list[Path]:
    """The npz batch files of ``split`` in ``root`` or a sub-folder of it, in batch order."""
    pattern = _TRAIN_NPZ if split == "train" else _VAL_NPZ
    found = []
    for folder in [root] + [root / d for d in subfolders(root)]:
        for entry in os.scandir(folder):
            match = pattern.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)) if split == "train" else 0, entry.name, Path(entry.path)))
    return [p for _, _, p in sorted(found)]


def _open_npz(path: Path):
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # OSError, ValueError, BadZipFile, EOFError from damaged files
        raise DataError(f"{path}: truncated or corrupt npz ({_reason(exc)}); expected {_NPZ_EXPECTED}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array, not an npz archive; expected {_NPZ_EXPECTED}")
    if "data" not in npz.files or "labels" not in npz.files:
        raise DataError(f"{path}: has keys {npz.files}; expected data and labels ({_NPZ_EXPECTED})")
    return npz


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _member(npz, path: Path, key: str) -> np.ndarray:
    try:
        return npz[key]
    except Exception as exc:  # zlib.error, BadZipFile, ValueError, EOFError: truncated member
        raise DataError(f"{path}: truncated or corrupt npz member {key!r} ({_reason(exc)}); "
                        f"expected {_NPZ_EXPECTED}") from None


def npz_labels(path: Path) -> np.ndarray:
    """The 0-based int64 labels of one npz batch (its ``labels`` are 1-based)."""
    with _open_npz(path) as npz:
        labels = np.asarray(_member(npz, path, "labels")).reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 1):
        raise DataError(f"{path}: labels must be 1-based integers (got {labels.dtype}, min "
                        f"{labels.min() if len(labels) else None})")
    return labels.astype(np.int64) - 1


def _npz_data_shape(npz, path: Path) -> tuple[int, ...]:
    """Shape of the ``data`` member, read from its .npy header only (the pixels are not decompressed)."""
    try:
        with npz.zip.open("data.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return tuple(read(fh)[0])
    except Exception:  # unusual archive: fall back to reading the member
        return tuple(_member(npz, path, "data").shape)


def npz_image_size(path: Path) -> int:
    """S for a batch whose rows have 3*S*S values."""
    with _open_npz(path) as npz:
        shape = _npz_data_shape(npz, path)
    side = math.isqrt(shape[1] // 3) if len(shape) == 2 else 0
    if len(shape) != 2 or side < 1 or 3 * side * side != shape[1]:
        raise DataError(f"{path}: data has shape {shape}; expected (N, 3*S*S) for S x S RGB images")
    return side


def read_npz_images(path: Path, side: int, n: int) -> np.ndarray:
    """The (n, side, side, 3) uint8 images of one batch, validated."""
    with _open_npz(path) as npz:
        data = _member(npz, path, "data")
    if data.dtype != np.uint8 or data.shape != (n, 3 * side * side):
        raise DataError(f"{path}: data is {data.dtype} {data.shape}; expected uint8 ({n}, {3 * side * side}) "
                        f"like the other batches")
    return chw_rows_to_hwc(data, side)


def load_npz(root: Path, split: str, files: list[Path], image_size: int | None, progress: bool) -> ImageSplit:
    from ..progress import bar as progress_bar

    parts = [npz_labels(p) for p in files]
    labels = np.concatenate(parts)
    other = npz_batches(root, "val" if split == "train" else "train")
    n_classes = int(max([labels.max(initial=-1)] + [npz_labels(p).max(initial=-1) for p in other])) + 1
    entries = [stat_entry(root, p.relative_to(root).as_posix()) for p in files]
    key = cache_key("imagenet-npz", entries, image_size)
    images = load_cached(key, len(labels))
    if images is None or (image_size is not None and images.shape[1:3] != (image_size, image_size)):
        side = npz_image_size(files[0])
        size = image_size or side

        def fill(out: np.ndarray) -> None:
            start = 0
            for path, part in progress_bar(list(zip(files, parts)), desc=f"reading imagenet {split}", unit="file",
                                           enabled=progress, leave=False):
                batch = read_npz_images(path, side, len(part))
                out[start:start + len(part)] = batch if size == side else resize_center_crop(batch, size)
                start += len(part)

        images = build_cached(key, (len(labels), size, size, 3), fill,
                              describe={"kind": "imagenet-npz", "base": str(root), "n": len(labels),
                                        "image_size": image_size},
                              source=source_id("imagenet-npz", root, entries, image_size))
        hit = False
    else:
        hit = True
    return ImageSplit(images, labels, tuple(str(i) for i in range(n_classes)), "imagenet", split,
                      source=", ".join(str(p) for p in files),
                      info={"format": "downsampled-imagenet npz", "cache": str(cache_path(key)), "cache_hit": hit})


# ----------------------------------------------------------------------------------------------- folders
def read_classes(root: Path) -> tuple[list[str] | None, str]:
    """(sorted class wnids, where they came from) from wnids.txt or the train/ sub-folders."""
    wnids = root / "wnids.txt"
    if wnids.is_file():
        names = sorted({line.strip() for line in wnids.read_text().splitlines() if line.strip()})
        if not names:
            raise DataError(f"{wnids}: empty; expected one wnid (class folder name) per line")
        return names, str(wnids)
    if (root / "train").is_dir():
        names = subfolders(root / "train")
        if names:
            return names, str(root / "train")
    return None, ""


def read_words(root: Path, classes: list[str]) -> list[str] | None:
    """Human-readable names of ``classes`` from words.txt (``wnid<TAB>names``), if the file exists."""
    path = root / "words.txt"
    if not path.is_file():
        return None
    words = {}
    for line in path.read_text(errors="replace").splitlines():
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.strip()
    return [words.get(c, c) for c in classes]


def parse_annotation_line(line: str, path: str | os.PathLike, lineno: int) -> tuple[str, str]:
    """(file name, wnid) from one val_annotations.txt line."""
    fields = line.split("\t")
    if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
        raise DataError(f"{path}:{lineno}: expected 'file<TAB>wnid<TAB>box...', got {line[:60]!r}")
    return fields[0].strip(), fields[1].strip()


def load_annotated_val(root: Path, classes: list[str] | None, class_source: str, split: str,
                       image_size: int | None, progress: bool, workers: int | None) -> ImageSplit:
    """Tiny-ImageNet's val/: images in val/images/ (or val/), labels in val/val_annotations.txt."""
    ann = root / "val" / "val_annotations.txt"
    images_dir = root / "val" / "images" if (root / "val" / "images").is_dir() else root / "val"
    lines = [(i, line) for i, line in enumerate(ann.read_text().splitlines(), 1) if line.strip()]
    pairs = [(parse_annotation_line(line, ann, i), i) for i, line in lines]
    if classes is None:
        classes, class_source = sorted({w for (_, w), _ in pairs}), str(ann)
    index = {c: i for i, c in enumerate(classes)}
    label_of: dict[str, int] = {}
    for (name, wnid), lineno in pairs:
        if wnid not in index:
            raise DataError(f"{ann}:{lineno}: wnid {wnid} is not one of the {len(classes)} classes of {class_source}")
        if label_of.setdefault(name, index[wnid]) != index[wnid]:
            raise DataError(f"{ann}:{lineno}: {name} is annotated twice with different wnids")
    found = scan_images(images_dir)
    if not found:
        raise DataError(f"{images_dir}: no images ({extensions_text()}); expected the val images listed in {ann}")
    for entry in found:
        if entry.relpath not in label_of:
            raise DataError(f"{images_dir / entry.relpath}: image has no line in {ann}")
    present = {e.relpath for e in found}
    for name in label_of:
        if name not in present:
            raise DataError(f"{images_dir / name}: listed in {ann} but not found")
    images, info = load_files_cached(images_dir, found, image_size, kind="annotated-files", progress=progress,
                                     workers=workers, desc=f"decoding imagenet {split}")
    labels = np.asarray([label_of[e.relpath] for e in found], dtype=np.int64)
    return ImageSplit(images, labels, tuple(classes), "imagenet", split, source=f"{images_dir}, {ann}",
                      info={"format": "tiny-imagenet val (val_annotations.txt)", **info})


def load_folders(root: Path, split: str, image_size: int | None, progress: bool,
                 workers: int | None) -> ImageSplit:
    folder = "train" if split == "train" else "val"
    classes, class_source = read_classes(root)
    if folder == "val" and (root / "val" / "val_annotations.txt").is_file():
        result = load_annotated_val(root, classes, class_source, split, image_size, progress, workers)
    elif (root / folder).is_dir():
        result = load_class_folders(root / folder, classes, dataset="imagenet", split=split, image_size=image_size,
                                    progress=progress, workers=workers, fmt="imagenet image folders")
    else:
        raise MissingSplitError(f"{root / folder}: not found; expected {folder}/<wnid>/**/*.JPEG"
                                + (" or val/images/ with val/val_annotations.txt" if folder == "val" else "")
                                + " or downsampled-ImageNet npz batches in " + str(root), split)
    names = read_words(root, list(result.classes))
    if names is not None:
        result.info["class_names"] = names
    return result


def load_imagenet(root: str | os.PathLike | None, split: str = "train", image_size: int | None = None, *,
                  progress: bool = True, workers: int | None = None) -> ImageSplit:
    """Load ImageNet-style ``split`` (train, val; test = val) from ``root`` (see the module docstring)."""
    if split not in SPLITS:
        raise DataError(f"--split {split!r}: imagenet has the splits train and val (test reads val)")
    if root is None:
        raise DataError("--data-root is required for imagenet: a folder with train/<wnid>/ (and val/) image "
                        "folders or downsampled-ImageNet npz batches")
    root = require_dir(root, "imagenet data: train/<wnid>/ image folders or downsampled-ImageNet npz batches")
    files = npz_batches(root, split)
    if files:
        return load_npz(root, split, files, image_size, progress)
    return load_folders(root, split, image_size, progress, workers)

