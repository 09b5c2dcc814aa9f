"""Shipping trained models: compact inference-only checkpoints and the index that describes them.

``export_checkpoint`` turns a training checkpoint into a small file that every command taking
``--checkpoint`` reads unchanged: the optimizer states are dropped and the floating-point weights are stored
in half precision (``load_models`` casts them back to float32). ``update_index`` records the file in a JSON
index with its sha256, size, architecture, training data and the command that trained it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import check_overwrite, checkpoint_state, write_json
from .checkpoint import load_checkpoint, model_config, require_dcgan, save_checkpoint
from ..errors import ConfigError
from ..provenance import provenance, sha256_file

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
INDEX_FORMAT = "gan-probe-pretrained-index"


def _cast(weights: dict[str, torch.Tensor] | None, dtype: torch.dtype) -> dict[str, torch.Tensor] | None:
    if weights is None:
        return None
    return {k: v.to(dtype) if torch.is_floating_point(v) else v for k, v in weights.items()}


def export_checkpoint(source: str | os.PathLike, out: str | os.PathLike, dtype: str = "float16",
                      keep_generator: bool = True, force: bool = False) -> dict[str, Any]:
    """Write an inference-only copy of ``source`` to ``out``; returns its index entry.

    ``out`` may replace an earlier exported (inference-only) checkpoint; never ``source`` itself nor any
    checkpoint that holds optimizer state (a training run's), and anything else only with ``force``.

    >>> # export_checkpoint("runs/in32/checkpoint.pt", "pretrained/in32.pt")["sha256"]
    """
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    source, out = Path(source), Path(out)
    check_export_target(source, out, force)
    state = load_checkpoint(source)
    require_dcgan(state, source, "gan-probe export")
    config = model_config(state)
    exported = {
        "generator": _cast(state.get("generator"), DTYPES[dtype]) if keep_generator else None,
        "discriminator": _cast(state["discriminator"], DTYPES[dtype]),
        "step": state.get("step"),
        "epoch": state.get("epoch"),
        "config": state["config"],
        "data": state.get("data"),
        "training_provenance": state.get("provenance"),
        "export": {"source": source.name, "source_sha256": sha256_file(source), "dtype": dtype,
                   "provenance": provenance()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, exported)
    train_prov = state.get("provenance") or {}
    return {
        "file": out.name,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "dtype": dtype,
        "preset": config.preset,
        "model": config.to_dict(),
        "feature_dims": _feature_dims(state),
        "step": state.get("step"),
        "epoch": state.get("epoch"),
        "training_data": state.get("data"),
        "training_options": state["config"].get("train"),
        "training_command": train_prov.get("command"),
        "training_commit": train_prov.get("gan_probe_commit"),
        "source_sha256": exported["export"]["source_sha256"],
    }


def check_export_target(source: Path, out: Path, force: bool = False) -> None:
    """A one-line error unless ``out`` may receive an exported copy of ``source`` (see :func:`export_checkpoint`)."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; expected the exported checkpoint's file name (.pt)")
    if not os.path.lexists(out):
        return
    if source.exists() and out.exists() and os.path.samefile(source, out):
        raise ConfigError(f"--out {out}: is the checkpoint being exported ({source}); export writes a copy and never "
                          f"replaces its source: choose another --out")
    existing = checkpoint_state(out)
    if existing is not None and any(key in existing for key in ("optimizer_g", "optimizer_d")):
        raise ConfigError(f"--out {out}: a training checkpoint (it holds optimizer state); export never replaces "
                          f"one: choose another --out")
    check_overwrite(out, "gan-probe-checkpoint", force)


def _feature_dims(state: dict[str, Any]) -> int:
    """Pooled feature size at the default 4x4 grid (sum over conv layers of channels x 16)."""
    from .dcgan import Discriminator

    return int(sum(c * 16 for c in Discriminator(model_config(state)).feature_channels))


def update_index(index_path: str | os.PathLike, entry: dict[str, Any], notes: str | None = None) -> Path:
    """Add or replace ``entry`` (keyed by its file name) in the JSON index at ``index_path``, atomically."""
    index_path = Path(index_path)
    index = read_index(index_path)
    if notes is not None:
        entry = {**entry, "notes": notes}
    models = [m for m in index.get("models", []) if m.get("file") != entry["file"]]
    index["models"] = sorted(models + [entry], key=lambda m: m["file"])
    write_json(index_path, index)
    return index_path


def read_index(index_path: str | os.PathLike) -> dict[str, Any]:
    """The JSON index at ``index_path`` (an empty one when there is no file); a one-line error for anything else."""
    index_path = Path(index_path)
    if not index_path.exists():
        return {"format": INDEX_FORMAT, "format_version": 1, "models": []}
    if index_path.is_dir():
        raise ConfigError(f"--index {index_path}: is a directory; expected the index's file name (.json)")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{index_path}: not a JSON index ({getattr(exc, 'msg', 'not text')})") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise ConfigError(f"{index_path}: not a gan-probe pretrained index (format={found!r})")
    return index


def verify_index(index_path: str | os.PathLike) -> list[str]:
    """Problems found when checking every indexed file against its recorded sha256 (empty list: all good)."""
    index_path = Path(index_path)
    index = json.loads(index_path.read_text())
    problems = []
    for entry in index.get("models", []):
        path = index_path.parent / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: listed in {index_path.name} but missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from {index_path.name}")
    return problems
