"""Where the images scored by IS / FID come from: a generator checkpoint, an image folder or array file, a
dataset split, or (FID only) saved feature statistics.

Every source yields uint8 (B, 3, H, W) tensors in a fixed order, so results do not depend on the batch size.
Source specifications on the command line (:func:`parse_source`):

=====================================  ===========================================================
``run/checkpoint.pt`` (.pt/.pth/.ckpt)  a gan-probe checkpoint: ``--samples`` images from its generator
``images/`` (a directory)              every image below it (``gan_probe.data.load_split("folder")``)
``images.npy`` / ``images.npz``        uint8 array (N, H, W, 3); npz: key ``images``, ``arr_0`` or the first
                                       array (optional ``labels``)
``stats.npz`` with ``mu`` and ``sigma``  saved statistics (FID only; written by ``gan-probe fid --save-stats``)
``dataset:NAME[:ROOT[:SPLIT]]``        a split of a supported dataset, e.g. ``dataset:cifar10:/data/cifar:train``
=====================================  ===========================================================

>>> src = ArraySource(np.zeros((5, 8, 8, 3), np.uint8), kind="images", description={"path": "x"})
>>> [tuple(b.shape) for b in src.batches(2)]
[(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import DataError, GanProbeError
from ..provenance import sha256_file

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
DATASET_PREFIX = "dataset:"
DEFAULT_GENERATOR_BATCH = 250


def samples_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 exactly as a saved sample PNG holds it.

    Same arithmetic as ``torchvision.utils.save_image(x, normalize=True, value_range=(-1, 1))`` (what the
    training loop writes): clamp to [-1, 1], ``y = (x + 1) / 2``, then ``floor(255 * y + 0.5)``, i.e.
    ``(x + 1) * 127.5`` rounded half up.

    >>> samples_to_uint8(torch.tensor([-1.0, -0.999, 0.0, 1.0, 1.2])).tolist()
    [0, 0, 128, 255, 255]
    """
    y = (x.float().clamp(-1, 1) + 1) / 2
    return (y * 255 + 0.5).clamp(0, 255).to(torch.uint8)


@dataclass
class ImageSource:
    """Base class: ``n`` images, optional int64 ``labels``, a JSON-able ``description``."""

    kind: str
    n: int
    labels: np.ndarray | None = None
    description: dict[str, Any] = field(default_factory=dict)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "n": self.n, **self.description}


class ArraySource(ImageSource):
    """Images held in a uint8 (N, H, W, 3) array (possibly memory-mapped)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, kind: str = "images",
                 description: dict[str, Any] | None = None):
        check_image_array(images, description.get("path", "images") if description else "images")
        super().__init__(kind, len(images), None if labels is None else np.asarray(labels, np.int64),
                         dict(description or {}))
        self.images = images

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.n, batch_size):
            block = np.array(self.images[start:start + batch_size], copy=True)  # writable, contiguous
            yield torch.from_numpy(block).permute(0, 3, 1, 2)

    def subset(self, samples: int | None, seed: int) -> "ArraySource":
        """``samples`` images drawn without replacement (kept in source order), or self if ``samples`` >= n."""
        if samples is None or samples >= self.n:
            return self
        if samples < 1:
            raise GanProbeError(f"--samples {samples}: expected a positive number")
        idx = np.sort(np.random.RandomState(seed).choice(self.n, samples, replace=False))
        labels = None if self.labels is None else self.labels[idx]
        desc = {**self.description, "subset": {"of": self.n, "n": samples, "seed": seed,
                                                "rule": "sorted RandomState(seed).choice(N, n, replace=False)"}}
        return ArraySource(np.asarray(self.images[idx]), labels, self.kind, desc)


class GeneratorSource(ImageSource):
    """``n`` samples of a generator, drawn in blocks of ``block`` with one seeded ``torch.Generator``.

    The block size (not the scoring batch size) fixes the random stream, so scores are batch-size invariant.
    """

    def __init__(self, generator: torch.nn.Module, n: int, seed: int, device: torch.device,
                 block: int = DEFAULT_GENERATOR_BATCH, description: dict[str, Any] | None = None):
        super().__init__("checkpoint", n, None, {**(description or {}), "seed": seed, "generator_block": block,
                                                 "to_uint8": "as save_image: floor(255 * (x + 1) / 2 + 0.5)"})
        self.generator, self.seed, self.device, self.block = generator, seed, torch.device(device), block

    @torch.no_grad()
    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        rng = torch.Generator(device=self.device).manual_seed(self.seed)
        for start in range(0, self.n, self.block):
            images = samples_to_uint8(self.generator.sample(min(self.block, self.n - start), generator=rng))
            yield from images.split(batch_size)


def check_image_array(images: Any, name: str) -> None:
    """Raise DataError unless ``images`` is a uint8 array of shape (N, H, W, 3) with N >= 1."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[-1] != 3 or len(images) == 0:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{name}: expected a uint8 image array of shape (N, H, W, 3), got {got}")


def load_image_array(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read (images, labels or None) from ``.npy`` or ``.npz`` (key ``images``, ``arr_0`` or the first array)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            images, labels = np.load(path, mmap_mode="r", allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as data:
                if not data.files:
                    raise DataError(f"{path}: the npz file holds no arrays")
                key = next((k for k in ("images", "arr_0") if k in data.files), data.files[0])
                images = data[key]
                labels = data["labels"] if "labels" in data.files else None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable array file ({str(exc)[:120]})") from None
    check_image_array(images, str(path))
    if labels is not None and np.asarray(labels).shape != (len(images),):
        raise DataError(f"{path}: 'labels' must have shape ({len(images)},), got {np.asarray(labels).shape}")
    return images, labels


def open_images(path: str | os.PathLike, progress: bool = False) -> ArraySource:
    """An image folder, ``.npy`` or ``.npz`` file as an :class:`ArraySource` (``progress``: a folder's decoding
    bar)."""
    path = Path(path).expanduser()
    if path.is_dir():
        from ..data import load_split

        split = load_split("folder", path, "train", progress=progress)
        return ArraySource(split.images, None, "images", {"path": str(path), "format": "folder",
                                                          "sha256_pixels": split.checksum})
    if not path.is_file():
        raise DataError(f"{path}: not found (expected an image folder or a .npy/.npz uint8 array)")
    if path.suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: unsupported file type (expected an image folder or a .npy/.npz uint8 array)")
    images, labels = load_image_array(path)
    return ArraySource(images, labels, "images", {"path": str(path), "format": path.suffix[1:],
                                                  "sha256": sha256_file(path)})


def open_dataset(name: str, root: str | os.PathLike | None, split: str = "train",
                 progress: bool = False) -> ArraySource:
    """A dataset split through :func:`gan_probe.data.load_split` (labels kept when the dataset has them;
    ``progress``: its decoding bar)."""
    from ..data import load_split

    data = load_split(name, root, split, progress=progress)
    return ArraySource(data.images, data.labels, "dataset", data.describe())


def open_checkpoint(path: str | os.PathLike, samples: int, seed: int, device: torch.device,
                    block: int = DEFAULT_GENERATOR_BATCH) -> GeneratorSource:
    """Samples from the generator stored in a gan-probe checkpoint."""
    from ..models.checkpoint import load_models

    if samples < 1:
        raise GanProbeError(f"--samples {samples}: expected a positive number")
    models = load_models(path, device, vae=True)  # a VAE's decoder samples from its prior like a generator
    generator = models.require_generator()
    desc = {"path": str(path), "sha256": sha256_file(path), "preset": models.config.preset,
            "step": models.state.get("step")}
    return GeneratorSource(generator, samples, seed, device, block, desc)


def parse_dataset_spec(spec: str) -> tuple[str, str | None, str]:
    """``dataset:NAME[:ROOT[:SPLIT]]`` -> (name, root or None, split); ROOT may itself contain colons.

    >>> parse_dataset_spec("dataset:cifar10:/data/c10:test"), parse_dataset_spec("dataset:digits")
    (('cifar10', '/data/c10', 'test'), ('digits', None, 'train'))
    """
    parts = spec[len(DATASET_PREFIX):].split(":")
    name = parts[0]
    if not name:
        raise DataError(f"{spec}: expected dataset:NAME[:ROOT[:SPLIT]], e.g. dataset:cifar10:/data/cifar10:train")
    if len(parts) == 1:
        return name, None, "train"
    if len(parts) == 2:
        return name, parts[1] or None, "train"
    return name, ":".join(parts[1:-1]) or None, parts[-1] or "train"


def is_stats_file(path: Path) -> bool:
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return "mu" in data.files and "sigma" in data.files
    except (OSError, ValueError):
        return False


def parse_source(spec: str, *, samples: int | None, seed: int, device: torch.device,
                 allow_stats: bool = True, progress: bool = False):
    """Open a source from its command-line spec; returns an ImageSource or a FeatureStats (stats files)."""
    if spec.startswith(DATASET_PREFIX):
        name, root, split = parse_dataset_spec(spec)
        return open_dataset(name, root, split, progress).subset(samples, seed)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{spec}: not found (expected a checkpoint .pt, an image folder, a .npy/.npz array, "
                        f"a statistics .npz or dataset:NAME:ROOT:SPLIT)")
    if path.suffix in CHECKPOINT_SUFFIXES and path.is_file():
        return open_checkpoint(path, samples or 50_000, seed, device)
    if is_stats_file(path):
        if not allow_stats:
            raise DataError(f"{spec}: a statistics file cannot be scored here; give images or a checkpoint")
        from .fid import FeatureStats

        return FeatureStats.load(path)
    return open_images(path, progress).subset(samples, seed)
