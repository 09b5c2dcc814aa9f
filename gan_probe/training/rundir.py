"""A training run's directory: which checkpoint a resume starts from, atomic checkpoints and sample grids.

Files: ``config.json`` (options, model, data, provenance), ``checkpoint.pt`` and the one before it
(``checkpoint.prev.pt``, the fallback when the latest is damaged), ``log.csv`` (:mod:`.log`), ``samples/`` and,
with the online probe, ``best_probe.pt`` / ``best_probe.json`` (:mod:`.probe`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError, GanProbeError

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest loadable checkpoint in ``run_dir`` (falls back to the previous one if the latest is bad)."""
    for name in (CHECKPOINT, PREVIOUS):
        path = run_dir / name
        if path.is_file():
            try:
                load_checkpoint(path)
                return path
            except CheckpointError:
                continue
    return None


def find_start(out: Path, resume: bool) -> str | None:
    """What to resume from (None: a fresh run); refuses to overwrite a run unless ``resume``."""
    if resume:
        found = latest_checkpoint(out) if out.is_dir() else None
        if found is None and ((out / CHECKPOINT).exists() or (out / PREVIOUS).exists()):
            load_checkpoint(out / CHECKPOINT)  # raises the clear corrupt-file error
        return None if found is None else str(found)
    existing = [name for name in (CHECKPOINT, PREVIOUS) if (out / name).exists()]
    if existing:
        raise GanProbeError(f"{out / existing[0]}: the run directory already holds a run; pass --resume to "
                            f"continue it or choose another --out")
    return None


def write_checkpoint(out: Path, state: dict[str, Any]) -> Path:
    """checkpoint.pt, atomically, after moving the one before it to checkpoint.prev.pt."""
    path = out / CHECKPOINT
    if path.exists():
        os.replace(path, out / PREVIOUS)
    return save_checkpoint(path, state)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Save images in [-1, 1] as a PNG grid, atomically."""
    from torchvision.utils import save_image

    with atomic_path(path) as tmp:
        save_image(images.float().cpu(), tmp, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2,
                   format="png")
    return path
