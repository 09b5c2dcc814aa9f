"""`extract --model`: any torch model's named layers -> the same feature store as a discriminator's.

The store, its content key, its resume (``.partial/``), its lock and its ``meta.json`` are those of
:func:`gan_probe.features.extract.extract_features`; what differs is where the features come from: the outputs
of named submodules (:class:`gan_probe.features.modules.LayerTap`), each max-pooled to the grid, for images
normalised as the model expects (recorded). The model runs in eval mode with its own batch-norm statistics
(there is no discriminator to re-estimate them for). ``meta.json`` names the layers (``layer_names``) and numbers
them 0..n-1 in the order given (``layers``), so ``svm --layers`` selects among them like among D's.

>>> from gan_probe.features.extract_module import extract_module_features           # doctest: +SKIP
>>> extract_module_features("torchvision:resnet18", ["layer1", "layer2"], dataset="digits",
...                         out="feats/r18")  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..data.cache import cache_dir
from ..distributed import init_distributed, main_first, main_only
from ..errors import ConfigError, FeatureStoreError
from ..locks import output_lock
from ..provenance import provenance, sha256_json
from .extract import FORMAT, PARTIAL, ExtractOptions, _read_key, _resume_state, _write_split, load_probe_splits
from .modules import TORCHVISION_PREFIX, InputNormalization, LayerTap, torchvision_model
from .store import is_complete, write_meta

DEFAULT_IMAGE_SIZE = 32


def extract_module_features(model: str | nn.Module, layers: Sequence[str], dataset: str = "digits",
                            data_root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                            options: ExtractOptions | None = None, device: str = "auto", progress: bool = False,
                            weights: str | None = None, seed: int = 0, image_size: int = DEFAULT_IMAGE_SIZE,
                            normalization: InputNormalization | None = None, download: bool = False) -> Path:
    """Extract the pooled outputs of ``layers`` of ``model`` (an ``nn.Module``, or ``"torchvision:NAME"`` with
    seeded random weights or a ``weights`` state dict) into a feature store; returns its directory.

    ``options``: grid, batch size, splits and holdout as for D (``layers`` and ``bn`` do not apply).
    ``normalization``: how uint8 images become the model's input (default: torchvision's for its models, the
    DCGAN convention ``x / 127.5 - 1`` for a module passed in).
    """
    options = options or ExtractOptions()
    if options.layers is not None:
        raise ConfigError("--layers: name the model's layers (e.g. layer1,layer2), not conv indices")
    if isinstance(model, str):
        if not model.startswith(TORCHVISION_PREFIX):
            raise ConfigError(f"--model {model}: expected torchvision:NAME (e.g. torchvision:resnet18)")
        module, default_norm, source = torchvision_model(model, weights, seed)
    else:
        if weights is not None:
            raise ConfigError("weights: load them into the module you pass; --weights is for torchvision:NAME")
        module, default_norm = model, InputNormalization()
        source = {"source": "module", "model": type(model).__name__,
                  "parameters_sha256": sha256_json({k: v.float().sum().item() for k, v in model.state_dict().items()
                                                     if torch.is_tensor(v) and v.is_floating_point()})}
    normalization = normalization or default_norm
    ctx = init_distributed(device)
    dev = ctx.device
    tap = LayerTap(module, list(layers))
    module = module.eval().to(dev)
    dims = tap.dims((3, image_size, image_size), options.grid)
    train, test = main_first(lambda: load_probe_splits(dataset, data_root, image_size, options, download,
                                                       progress and ctx.is_main), ctx)
    key = sha256_json({"format": FORMAT, "version": 1, "source": source, "layers": tap.layers,
                       "normalization": normalization.to_dict(), "image_size": image_size,
                       "options": asdict(options), "train": train.checksum, "test": test.checksum})
    root = Path(out) if out is not None else cache_dir() / "features" / key[:24]
    with contextlib.ExitStack() as locks:
        locks.enter_context(output_lock(root, "--out", ctx=ctx))

        def open_store() -> dict | None:
            if is_complete(root):
                if _read_key(root) == key:
                    return None
                raise FeatureStoreError(f"{root}: holds features of other inputs; choose another --out or remove it")
            for split in (train, test):
                if split.labels is None:
                    raise ConfigError(f"--dataset {split.dataset}: the {split.split} split has no labels; the probe "
                                      f"needs labels")
            root.mkdir(parents=True, exist_ok=True)
            return _resume_state(root, key)

        state = main_only(open_store, ctx)
        if state is None:
            return root
        t0 = time.perf_counter()

        def featurize(block: torch.Tensor) -> torch.Tensor:
            return tap.features(normalization.apply(block), options.grid)

        kept_rows = {}
        for split, name in ((train, "train"), (test, "test")):
            if name not in state["done"]:
                kept = _write_split(None, split, root, name, options, [], sum(dims), dev, progress, ctx, featurize)
                if kept:
                    kept_rows[name] = kept
        meta = {
            "format": FORMAT, "format_version": 1, "key": key, **source, "dataset": dataset,
            "image_size": image_size, "normalization": normalization.to_dict(),
            "data": {"train": train.describe(), "test": test.describe()},
            "holdout": options.holdout, "holdout_seed": options.holdout_seed if options.holdout else None,
            "layers": list(range(len(tap.layers))), "layer_names": tap.layers, "grid": options.grid,
            "dims_per_layer": dict(zip(tap.layers, dims)), "n_features": sum(dims),
            "batchnorm": "the model's own statistics (eval mode)", "batch_size": options.batch_size,
            "seconds": round(time.perf_counter() - t0, 3), "ranks": ctx.world_size,
            "provenance": provenance(device=str(dev), seeds={"init_seed": seed} if source.get("init_seed") is not None
                                     else None),
        }
        if state["done"] or kept_rows:
            meta["resumed"] = {"splits": list(state["done"]), "rows": kept_rows}

        def finish() -> None:
            write_meta(root, meta)
            shutil.rmtree(root / PARTIAL, ignore_errors=True)

        main_only(finish, ctx)
    return root
