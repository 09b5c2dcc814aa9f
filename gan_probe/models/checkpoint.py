"""Checkpoint files: a plain dict saved with ``torch.save``, written atomically, loadable with
``torch.load(path, weights_only=True)``.

Keys: ``format`` ("gan-probe-checkpoint"), ``format_version``, ``family`` ("dcgan" or "vae"; absent in files written
before it was recorded: "dcgan"), for a DCGAN ``generator`` and ``discriminator`` state dicts and ``optimizer_g`` /
``optimizer_d`` states (training checkpoints only), for a VAE ``vae`` (its state dict) and ``optimizer``;
``step``, ``epoch``, ``config``
(``model``: ModelConfig fields, ``train``: training options), ``data`` (dataset description and sha256),
``provenance``. Converted checkpoints (``gan-probe convert``) add ``converted`` (source, commit, file hashes,
what the conversion did) and, for a partial set, ``missing``: the conv layers and files that were not there
(``layers``, ``files``, ``keys``); their weights are absent from the file and are never filled in.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import CheckpointError
from .config import ModelConfig
from .dcgan import Discriminator, Generator

FORMAT = "gan-probe-checkpoint"
FORMAT_VERSION = 1
#: the state-dict and optimizer entries of each model family's checkpoints
FAMILY_KEYS = {"dcgan": ("discriminator", ("optimizer_g", "optimizer_d")), "vae": ("vae", ("optimizer",))}


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
    family = checkpoint_family(state)
    if family not in FAMILY_KEYS:
        raise CheckpointError(f"{path}: unknown model family {family!r} (expected one of {', '.join(FAMILY_KEYS)})")
    for key in ("config", FAMILY_KEYS[family][0]):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry")
    config = state["config"]
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(config.get("train") or {}, dict):
        got = (f"a {type(config).__name__}" if not isinstance(config, dict) else
               "'model': " + type(config.get("model")).__name__ if not isinstance(config.get("model"), dict) else
               "'train': " + type(config.get("train")).__name__)
        raise CheckpointError(f"{path}: malformed checkpoint: 'config' must be a dict holding the model settings "
                              f"('model') and training options ('train') as dicts, got {got}")
    return state


def require_training_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """A one-line error unless ``state`` is a training checkpoint (optimizer states, training options)."""
    converted = state.get("converted")
    if converted:
        raise CheckpointError(f"{path}: converted from the DCGAN authors' {converted.get('model')} release, not a "
                              f"gan-probe training run (no optimizer state or training options); it cannot be "
                              f"resumed or trained from")
    if not all(key in state for key in FAMILY_KEYS[checkpoint_family(state)][1]) \
            or not (state.get("config") or {}).get("train"):
        raise CheckpointError(f"{path}: an inference-only checkpoint (no optimizer state, e.g. written by "
                              f"gan-probe export); resume from the training run's own checkpoint.pt")


def checkpoint_family(state: dict[str, Any]) -> str:
    """The model family a checkpoint holds: ``family``, else its training options', else "dcgan"."""
    config = state.get("config")
    train = config.get("train") if isinstance(config, dict) else None
    return str(state.get("family") or (train.get("family") if isinstance(train, dict) else None) or "dcgan")


def require_dcgan(state: dict[str, Any], path: str | os.PathLike, what: str = "this command") -> None:
    """A one-line error unless ``state`` holds a DCGAN (a generator and a discriminator)."""
    family = checkpoint_family(state)
    if family != "dcgan":
        raise CheckpointError(f"{path}: a {family.upper()} checkpoint (gan-probe train --model {family}); {what} "
                              f"expects a DCGAN checkpoint (a generator and a discriminator)")


def model_config(state: dict[str, Any]) -> ModelConfig:
    return ModelConfig.from_dict(state["config"]["model"])


@dataclass
class LoadedModels:
    generator: Generator | None
    discriminator: Discriminator  # or, for a VAE, its VAEEncoder (the same ``features`` interface)
    config: ModelConfig
    state: dict[str, Any]
    path: Path
    family: str = "dcgan"  # "vae": ``generator`` is the decoder, ``discriminator`` the encoder's layers

    @property
    def missing_layers(self) -> list[int]:
        """0-based conv layers of D whose weights the checkpoint lacks (a partial conversion)."""
        return list((self.state.get("missing") or {}).get("layers", []))

    def require_layers(self, layers: list[int], flag: str = "--layers") -> None:
        """A one-line error unless every conv layer up to the deepest of ``layers`` has its weights."""
        missing = self.missing_layers
        if not missing or not layers or max(layers) < min(missing):
            return
        info = self.state["missing"]
        names = ", ".join(f"conv{i + 1}" for i in missing)
        usable = ",".join(str(i) for i in range(min(missing)))
        asked = "all layers (the default)" if layers == list(range(len(self.discriminator.features))) else \
            f"{flag} {','.join(map(str, layers))}"
        raise CheckpointError(f"{self.path}: {asked} needs {names}, whose weights are missing "
                              f"({', '.join(info.get('files', []))} were not there when it was converted); "
                              + (f"use {flag} {usable}" if usable else "no layer is usable"))

    def require_generator(self) -> Generator:
        """The generator, or a one-line error saying why there is none."""
        if self.generator is None:
            reason = (self.state.get("converted") or {}).get("generator") or "it was saved without one"
            raise CheckpointError(f"{self.path}: checkpoint holds no generator ({reason})")
        return self.generator


def load_models(path: str | os.PathLike, device: str | torch.device = "cpu", expect_preset: str | None = None,
                vae: bool = False, what: str = "this command") -> LoadedModels:
    """Rebuild the generator and discriminator stored in a checkpoint, in eval mode on ``device``.

    A VAE checkpoint is accepted only with ``vae=True`` (otherwise a one-line error says that ``what`` expects a
    DCGAN): its decoder is the generator and its encoder, read as a stack of layers
    (:class:`~gan_probe.models.vae.VAEEncoder`: ``conv1`` .. ``convN``, ``mu``), stands where the discriminator
    would, for the commands that only pool layers (extract) or only decode (samples, interpolations).
    """
    path = Path(path)
    state = load_checkpoint(path)
    config = model_config(state)
    if expect_preset is not None and config.preset != expect_preset:
        raise CheckpointError(f"{path}: checkpoint holds preset {config.preset!r}, expected {expect_preset!r}")
    if checkpoint_family(state) == "vae" and vae:
        return _load_vae(state, config, path, device)
    require_dcgan(state, path, what)
    disc = Discriminator(config)
    _load_state(disc, state["discriminator"], path, "discriminator",
                absent=(state.get("missing") or {}).get("keys", ()))
    gen = None
    if state.get("generator") is not None:
        gen = Generator(config)
        _load_state(gen, state["generator"], path, "generator")
        gen.to(device).eval()
    return LoadedModels(gen, disc.to(device).eval(), config, state, path)


def _load_vae(state: dict[str, Any], config: ModelConfig, path: Path, device: str | torch.device) -> LoadedModels:
    from .vae import VAE, VAEEncoder

    try:
        model = VAE(config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    _load_state(model, state["vae"], path, "vae")
    model = model.to(device).eval()
    return LoadedModels(model.decoder, VAEEncoder(model).eval(), config, state, path, family="vae")


def _load_state(module: torch.nn.Module, weights: dict, path: Path, what: str, absent=()) -> None:
    """Load ``weights``; the keys in ``absent`` (declared missing by the checkpoint) are set to NaN, so that
    nothing computed from them can pass for a result."""
    weights = {k: v.float() if torch.is_floating_point(v) else v for k, v in weights.items()}
    absent = set(absent)
    try:
        result = module.load_state_dict(weights, strict=not absent)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: {what} weights do not match its config ({first[:150]})") from None
    if absent:
        undeclared = set(result.missing_keys) - absent
        if undeclared or result.unexpected_keys:
            raise CheckpointError(f"{path}: {what} weights do not match its config (missing "
                                  f"{sorted(undeclared)}, unexpected {result.unexpected_keys})")
        with torch.no_grad():
            for key in absent:
                module.get_parameter(key).fill_(float("nan"))
