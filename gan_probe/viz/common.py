"""Shared pieces of the figures: models, latent codes, decoding, image mosaics, datasets and saving.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg rendering, no pyplot state), so the
library never opens windows and is safe in threads and notebooks alike.

>>> import numpy as np
>>> mosaic(np.zeros((6, 4, 4, 3)), nrow=3, pad=1).shape  # 2 rows x 3 columns of 4x4 tiles, 1-pixel gaps
(9, 14, 3)
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..atomic import FIGURE_MARK, atomic_path
from ..errors import ConfigError
from ..models import Generator, LatentPrior, to_model_range

FORMATS = {".png": "png", ".pdf": "pdf"}
DPI = 150


def require_generator(models) -> Generator:
    """The generator of a :class:`~gan_probe.models.checkpoint.LoadedModels`; a discriminator-only file is an error."""
    return models.require_generator()


def latents(prior: LatentPrior, n: int, seed: int) -> torch.Tensor:
    """``n`` latent codes from ``prior``, drawn on the CPU from a generator seeded with ``seed`` (no grad).

    The same (prior, n, seed) always gives the same codes, whatever the global RNG state or device.
    """
    with torch.no_grad():
        return prior.sample(n, generator=torch.Generator().manual_seed(int(seed)), device="cpu").detach().cpu()


@torch.no_grad()
def decode(gen: Generator, z: torch.Tensor, batch_size: int = 1) -> torch.Tensor:
    """Images in [-1, 1], shape (B, C, H, W), float32 on the CPU, for latent codes ``z`` (B, nz).

    The generator is used as given (checkpoints load in eval mode, so each image depends only on its own
    code). With the default ``batch_size=1`` that also holds bit for bit: convolution kernels may round
    differently for different batch sizes, and a figure's code decodes to exactly the same pixels wherever it
    appears (an interpolation's end column and the sample it starts from, say). One-image passes on the CPU
    run on one thread: they gain nothing from more, and thread start-up dominates on a busy machine.
    """
    device = next(gen.parameters()).device
    with one_thread(device.type == "cpu" and batch_size == 1):
        out = [gen(z[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


@contextlib.contextmanager
def one_thread(enabled: bool = True) -> Iterator[None]:
    """Run torch's CPU ops on one thread inside the block (for many tiny one-image passes)."""
    threads = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if enabled:
            torch.set_num_threads(threads)


def to_display(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images in [-1, 1] (B, C, H, W) tensor -> float array (B, H, W, 3) in [0, 1]; uint8 NHWC passes through."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    x = torch.as_tensor(images).detach().float().cpu()
    x = ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def mosaic(tiles: np.ndarray | Sequence[np.ndarray], nrow: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Arrange equally sized (H, W, 3) tiles row by row, ``nrow`` per row, with ``pad`` pixels of ``fill``."""
    tiles = [np.asarray(t, dtype=np.float32) for t in tiles]
    if not tiles:
        raise ValueError("mosaic needs at least one tile")
    h, w = tiles[0].shape[:2]
    cols = max(1, min(nrow, len(tiles)))
    rows = -(-len(tiles) // cols)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3), fill, dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tile
    return out


def strip(tiles: Sequence[np.ndarray], gaps_after: Sequence[int] = (), pad: int = 1, gap: int | None = None,
          fill: float = 1.0) -> np.ndarray:
    """One row of equally sized tiles; a wider ``gap`` (default: half a tile) follows each index in ``gaps_after``."""
    h, w = np.asarray(tiles[0]).shape[:2]
    gap = max(pad, w // 2) if gap is None else gap
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        parts.append(np.asarray(tile, dtype=np.float32))
        if i < len(tiles) - 1:
            parts.append(np.full((h, gap if i in gaps_after else pad, 3), fill, dtype=np.float32))
    return np.concatenate(parts, axis=1)


def new_figure(width: float, height: float):
    """A matplotlib Figure (Agg canvas) of ``width`` x ``height`` inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def show(ax, image: np.ndarray, title: str | None = None, fontsize: float = 9) -> None:
    """Draw an (H, W, 3) image in [0, 1] without axes decorations, pixel-exact (nearest neighbour)."""
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=fontsize)


def check_out_path(path: str | os.PathLike) -> str:
    """The output format for ``path`` (``png`` or ``pdf``, from its extension); anything else is an error."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {path}: expected a .png or .pdf file name")
    return FORMATS[suffix]


def save_figure(fig, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Write ``fig`` atomically as PNG or PDF (chosen by the extension); same figure -> same bytes."""
    fmt = check_out_path(path)
    # fixed metadata so that the bytes do not depend on the date or the matplotlib build
    # and a mark by which gan-probe viz --out recognises its own figures (check_overwrite)
    metadata = {"Software": FIGURE_MARK} if fmt == "png" else {"Creator": FIGURE_MARK, "Producer": None,
                                                               "CreationDate": None}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata, bbox_inches="tight", pad_inches=0.05)
    return Path(path)


def dataset_images(dataset: str, data_root: str | os.PathLike | None, split: str, image_size: int,
                   limit: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) images of a dataset split at ``image_size`` and their indices in the split.

    With ``limit`` a seeded random subset (sorted by index) is taken, so class-sorted folders are sampled
    evenly.
    """
    from ..data import load_split

    data = load_split(dataset, data_root, split, image_size=image_size)
    n = len(data)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be positive, got {limit}")
    if limit is None or limit >= n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
    return np.asarray(data.images[idx]), idx


def default_data(models) -> tuple[str, str | None, str]:
    """(dataset, data_root, split) the checkpoint was trained on, from its stored training config.

    The data root is reused only from a training checkpoint (a run of this machine, most likely). An exported or
    shipped checkpoint (one with an ``export`` record) keeps the root of the machine that trained it only as
    provenance: it is not a default here, so the dataset's own default location applies (see
    :func:`gan_probe.data.load_split`) unless ``--data-root`` is given.
    """
    train = (models.state.get("config") or {}).get("train") or {}
    root = None if "export" in models.state else train.get("data_root")
    return train.get("dataset", "digits"), root, train.get("split", "train")


def images_for_checkpoint(models, dataset: str | None, data_root: str | None, split: str | None, limit: int | None,
                          seed: int, checkpoint: str | os.PathLike) -> np.ndarray:
    """The images a ``viz`` command compares with: the given dataset / root / split, each defaulting to the
    checkpoint's training data (:func:`default_data`). When a default taken from the checkpoint cannot be read,
    the error says it came from the checkpoint and which flags replace it."""
    from ..errors import DataError

    default_set, default_root, default_split = default_data(models)
    root = data_root or (default_root if not dataset or dataset == default_set else None)
    name = dataset or default_set
    try:
        images, _ = dataset_images(name, root, split or default_split, models.config.image_size, limit, seed)
    except DataError as exc:
        if data_root or dataset:
            raise
        where = f"data root {root}" if root else "default data location"
        raise DataError(f"{exc} (dataset {name} and its {where} come from the training config stored in "
                        f"{checkpoint}; pass --data-root DIR for its images on this machine, or --dataset NAME "
                        f"for other images)") from None
    return images


def to_model_input(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], the models' input range."""
    return to_model_range(torch.from_numpy(np.ascontiguousarray(images_uint8)))
