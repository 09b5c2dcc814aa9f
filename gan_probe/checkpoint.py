"""Checkpoint files: a plain dict saved with ``torch.save``, written atomically, loadable with
``torch.load(path, weights_only=True)``.

Keys: ``format`` ("gan-probe-checkpoint"), ``format_version``, ``generator`` and ``discriminator`` state dicts,
``optimizer_g`` / ``optimizer_d`` states (training checkpoints only), ``step``, ``epoch``, ``config``
(``model``: ModelConfig fields, ``train``: training options), ``data`` (dataset description and sha256),
``provenance``.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .errors import CheckpointError
from .models import Discriminator, Generator, ModelConfig

FORMAT = "gan-probe-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (temp file in the same directory, fsync, rename)."""
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; a missing, truncated or foreign file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({first[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gan-probe checkpoint (expected a dict with format={FORMAT!r})")
    for key in ("config", "discriminator"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry")
    return state


def model_config(state: dict[str, Any]) -> ModelConfig:
    return ModelConfig.from_dict(state["config"]["model"])


@dataclass
class LoadedModels:
    generator: Generator | None
    discriminator: Discriminator
    config: ModelConfig
    state: dict[str, Any]
    path: Path


def load_models(path: str | os.PathLike, device: str | torch.device = "cpu",
                expect_preset: str | None = None) -> LoadedModels:
    """Rebuild the generator and discriminator stored in a checkpoint, in eval mode on ``device``."""
    path = Path(path)
    state = load_checkpoint(path)
    config = model_config(state)
    if expect_preset is not None and config.preset != expect_preset:
        raise CheckpointError(f"{path}: checkpoint holds preset {config.preset!r}, expected {expect_preset!r}")
    disc = Discriminator(config)
    _load_state(disc, state["discriminator"], path, "discriminator")
    gen = None
    if state.get("generator") is not None:
        gen = Generator(config)
        _load_state(gen, state["generator"], path, "generator")
        gen.to(device).eval()
    return LoadedModels(gen, disc.to(device).eval(), config, state, path)


def _load_state(module: torch.nn.Module, weights: dict, path: Path, what: str) -> None:
    weights = {k: v.float() if torch.is_floating_point(v) else v for k, v in weights.items()}
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: {what} weights do not match its config ({first[:150]})") from None
