"""`extract`: a discriminator's pooled conv features for a dataset's train and test splits -> feature store.

The store is keyed by content: the checkpoint's sha256, the data checksums and every option. Re-running with
the same inputs finds the finished store (in ``out`` or in the cache) and returns it without recomputing.

Under ``torchrun`` (``torchrun --nproc_per_node N -m gan_probe extract ...``) the batches of each split are dealt
round-robin to the ranks (batch i to rank i mod N), so every rank runs exactly the batches one process would;
rank 0 gathers one batch per rank per round, which restores the original row order, and alone writes the
store. The batch-norm re-estimation is sharded the same way: each rank averages the per-batch statistics of
its batches and a weighted all-reduce gives the average over all batches, the single-process result up to
float rounding. The resulting store (features, labels) is the one a single process writes.

With ``shards=True`` (``extract --shards``) nothing goes through rank 0: rank ``r`` of ``N`` takes a contiguous run
of whole batches (the one-process batches, so the same rows and bytes) and writes them to its own file, and rank 0
records the files in ``shards.json`` (see :mod:`gan_probe.features.shards`); every reader sees the same logical
matrix as in a plain store. Each rank's file resumes on its own, like the plain one.

An interrupted extraction resumes: until ``meta.json`` marks the store complete, ``ROOT/.partial/`` holds the
extraction's key, the re-estimated batch-norm statistics and the features of the split being written, and a split
whose labels file exists is finished (its features are moved into place first, the labels written last). A rerun
with the same key reuses those, keeps the whole batches already written of an unfinished split and computes only
what is missing (eval-mode features do not depend on the batch, so the result is byte-identical); a rerun with
another key starts over.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..atomic import atomic_write, remove_stale_temporaries, write_json
from ..data.cache import cache_dir
from ..models.checkpoint import LoadedModels, load_models
from ..data import ImageSplit, load_split
from ..distributed import DistContext, agree, gather_batches, init_distributed, main_first, main_only, shard_batches
from ..errors import ConfigError, FeatureStoreError
from ..locks import output_lock
from ..models import PRESETS, Discriminator, preset_config, to_model_range
from ..provenance import provenance, sha256_file, sha256_json
from .batchnorm import recompute_batchnorm
from .pooling import layer_dims, layer_names, pooled_features, select_layers
from .shards import MANIFEST, has_shards, shard_name, write_manifest_split
from .store import (SPLITS, MatrixWriter, features_path, is_complete, labels_path, partial_rows, write_labels,
                    write_meta)

FORMAT = "gan-probe-features"
PARTIAL = ".partial"  # ROOT/.partial/: key.json, batchnorm.pt and SPLIT_features.npy of an unfinished extraction
BN_MODES = ("recompute", "checkpoint")


@dataclass(frozen=True)
class ExtractOptions:
    grid: int = 4
    layers: tuple[int, ...] | None = None
    bn: str = "recompute"  # re-estimate batch-norm statistics on the training split, or keep the checkpoint's
    batch_size: int = 256
    train_split: str = "train"
    test_split: str = "test"
    holdout: int | float | None = None  # hold out this many training images (or this fraction of them, below 1;
    #                                     stratified, seeded) as the test split
    holdout_seed: int = 0

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise ConfigError(f"--grid must be at least 1, got {self.grid}")
        if self.bn not in BN_MODES:
            raise ConfigError(f"--bn {self.bn!r}: expected one of {', '.join(BN_MODES)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.holdout is not None:
            if self.holdout <= 0:
                raise ConfigError(f"--holdout must be at least 1, got {self.holdout}")
            if self.holdout > 1 and self.holdout != int(self.holdout):
                raise ConfigError(f"--holdout {self.holdout}: expected a count >= 1 or a fraction in (0, 1)")


def load_probe_splits(dataset: str, data_root: str | os.PathLike | None, image_size: int | None,
                      options: ExtractOptions, download: bool = False, progress: bool | None = None,
                      train_limit: int | None = None) -> tuple[ImageSplit, ImageSplit]:
    """The (train, test) splits a probe uses: every feature store (a discriminator's, the k-means and pixel
    baselines') chooses its images here, so that stores made with the same settings hold the same images.

    ``options.holdout`` carves the test set out of the train split (a count, or a fraction below 1) instead of
    reading ``options.test_split``; ``train_limit`` then keeps a stratified subset of that many training images
    (seeded by ``options.holdout_seed`` too). ``progress``: decoding bars (None:
    :func:`gan_probe.data.default_progress`).
    """
    from ..data.holdout import holdout_count, holdout_split, limit_split

    if train_limit is not None and train_limit < 1:
        raise ConfigError(f"train_limit {train_limit}: expected at least 1 image")
    train = load_split(dataset, data_root, options.train_split, image_size=image_size, download=download,
                       progress=progress)
    if options.holdout:
        train, test = holdout_split(train, holdout_count(options.holdout, len(train)), options.holdout_seed)
    else:
        test = load_split(dataset, data_root, options.test_split, image_size=image_size, download=download,
                          progress=progress)
    if train_limit is not None:
        train = limit_split(train, train_limit, options.holdout_seed)
    return train, test


def random_discriminator(preset: str, seed: int, **overrides) -> tuple[Discriminator, dict]:
    """A discriminator with the paper's random initialisation (the "random weights" baseline).

    ``preset`` is a preset name, or the path of a checkpoint whose architecture (widths included) is copied.
    """
    if preset not in PRESETS and Path(preset).is_file():
        from ..models.checkpoint import load_checkpoint, model_config

        config = model_config(load_checkpoint(preset))
    elif preset in PRESETS:
        config = preset_config(preset, **overrides)
    else:
        raise ConfigError(f"--random-init {preset}: expected a preset ({', '.join(sorted(PRESETS))}) or an "
                          f"existing checkpoint file")
    torch.manual_seed(seed)
    return Discriminator(config), config.to_dict()


def extract_features(checkpoint: str | os.PathLike | None = None, dataset: str = "digits",
                     data_root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                     options: ExtractOptions | None = None, device: str = "auto", progress: bool = False,
                     random_init: str | None = None, seed: int = 0, download: bool = False, shards: bool = False,
                     **option_kwargs) -> Path:
    """Extract pooled discriminator features into a feature store and return its directory.

    Either ``checkpoint`` (a gan-probe checkpoint) or ``random_init=PRESET`` (the same architecture with the
    paper's random initialisation, seeded by ``seed``; ``random_init`` may also be a checkpoint path, whose
    architecture is copied) gives the discriminator. Options: see
    :class:`ExtractOptions` (keyword arguments are accepted too, e.g. ``grid=4, holdout=10000``). ``shards``: each
    rank writes its own rows to its own file (see the module docstring); the store's key, and so its reuse, does
    not depend on it.
    """
    options = options or ExtractOptions(**option_kwargs)
    ctx = init_distributed(device)
    if (checkpoint is None) == (random_init is None):
        raise ConfigError("give exactly one of --checkpoint CKPT or --random-init PRESET")
    with contextlib.ExitStack() as locks:  # one writer per store: taken before anything is written
        if out is not None:
            locks.enter_context(output_lock(out, "--out", ctx=ctx))
        return _extract_features(checkpoint, dataset, data_root, out, options, ctx, progress, random_init, seed,
                                 download, locks, shards)


def _extract_features(checkpoint: str | os.PathLike | None, dataset: str, data_root: str | os.PathLike | None,
                      out: str | os.PathLike | None, options: ExtractOptions, ctx: DistContext, progress: bool,
                      random_init: str | None, seed: int, download: bool, locks: contextlib.ExitStack,
                      shards: bool = False) -> Path:
    dev = ctx.device
    if checkpoint is not None:
        models = agree(lambda: load_models(checkpoint, device="cpu", vae=True), ctx)
        disc, model_cfg = models.discriminator, models.config.to_dict()
        source = checkpoint_source(models, checkpoint, options)
    else:
        disc, model_cfg = random_discriminator(random_init, seed)
        source = {"source": "random-d", "checkpoint": None, "init_seed": seed,
                  "architecture_of": None if random_init in PRESETS else str(random_init)}
    layers = select_layers(disc, options.layers)
    if options.layers is not None and any(isinstance(i, str) for i in options.layers):
        options = dataclasses.replace(options, layers=tuple(layers))  # names -> indices: one key per selection
    if checkpoint is not None:
        models.require_layers(layers)
    check_grid(disc, model_cfg["image_size"], options.grid, layers)
    train, test = main_first(lambda: load_probe_splits(dataset, data_root, model_cfg["image_size"], options,
                                                       download, progress and ctx.is_main), ctx)
    key = sha256_json({"format": FORMAT, "version": 1, "source": source.get("checkpoint_sha256") or source,
                       "model": model_cfg, "options": asdict(options), "train": train.checksum,
                       "test": test.checksum})
    root = Path(out) if out is not None else cache_dir() / "features" / key[:24]
    if out is None:
        locks.enter_context(output_lock(root, "--out", ctx=ctx))

    def open_store() -> dict | None:  # rank 0: None when the finished store is already there
        if is_complete(root):
            existing = _read_key(root)
            if existing == key:
                return None
            raise FeatureStoreError(f"{root}: holds features of other inputs (key {str(existing)[:12]}); choose "
                                    f"another --out or remove it")
        for split in (train, test):
            if split.labels is None:
                raise ConfigError(f"--dataset {split.dataset}: the {split.split} split has no labels; the probe "
                                  f"needs labels")
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(root)  # what an interrupted extraction was writing (gigabytes at paper scale)
        return _resume_state(root, key)

    state = main_only(open_store, ctx)
    if state is None:
        return root

    disc = disc.to(dev)
    t0 = time.perf_counter()
    bn_batches, bn_resumed = 0, False
    if options.bn == "recompute":
        saved = main_only(lambda: _load_batchnorm(root) if state["batchnorm"] else None, ctx)
        if saved is not None:
            for name, value in saved["buffers"].items():
                disc.get_buffer(name).copy_(value.to(dev))
            bn_batches, bn_resumed = int(saved["batches"]), True
        else:
            bn_batches = _recompute_batchnorm(disc, train.images, options.batch_size, dev, progress, ctx,
                                              depth=max(layers) + 1)
            buffers = {name: b.detach().cpu().clone() for name, b in disc.named_buffers()}
            main_only(lambda: _save_batchnorm(root, buffers, bn_batches), ctx)
    disc.eval()
    dims = layer_dims(disc, options.grid, layers)
    kept_rows = {}
    for split in (train, test):
        name = "train" if split is train else "test"
        if name not in state["done"]:
            kept = _write_split(disc, split, root, name, options, layers, sum(dims), dev, progress, ctx,
                                shards=shards)
            if kept:
                kept_rows[name] = kept
    seconds = time.perf_counter() - t0
    names = [layer_names(disc)[i] for i in layers]
    meta = {
        "format": FORMAT, "format_version": 1, "key": key, **source,
        "preset": model_cfg["preset"], "model": model_cfg, "dataset": dataset,
        "image_size": model_cfg["image_size"],
        "input_resize": (f"images stored at another size are resized to {model_cfg['image_size']}x"
                         f"{model_cfg['image_size']}, the model's resolution, by the data reader (shorter side, "
                         f"antialiased bilinear, center crop)"),
        "data": {"train": train.describe(), "test": test.describe()},
        "holdout": options.holdout, "holdout_seed": options.holdout_seed if options.holdout else None,
        "layers": layers, "layer_names": names, "channels": [disc.feature_channels[i] for i in layers],
        "grid": options.grid, "dims_per_layer": dict(zip(names, dims)), "n_features": sum(dims),
        "batchnorm": "recomputed on the training split" if options.bn == "recompute" else "checkpoint running stats",
        "batchnorm_batches": bn_batches, "batch_size": options.batch_size, "seconds": round(seconds, 3),
        "ranks": ctx.world_size, **({"shards": ctx.world_size} if shards else {}),
        "provenance": provenance(device=str(dev), seeds={"init_seed": seed} if random_init else None),
    }
    if state["done"] or bn_resumed or kept_rows:
        meta["resumed"] = {"splits": list(state["done"]), "rows": kept_rows, "batchnorm": bn_resumed,
                           "note": "an interrupted extraction with the same key had finished these splits, these "
                                   "first rows of the others and the batch-norm statistics; 'seconds' counts this "
                                   "run only"}

    def finish() -> None:
        write_meta(root, meta)
        shutil.rmtree(root / PARTIAL, ignore_errors=True)

    main_only(finish, ctx)  # every rank returns once the store is complete
    return root


def checkpoint_source(models: LoadedModels, checkpoint: str | os.PathLike, options: ExtractOptions) -> dict:
    """What a store records about the checkpoint its features come from (a DCGAN's discriminator or a VAE's
    encoder)."""
    state = models.state
    train = (state.get("config") or {}).get("train") or {}
    source = {"source": models.family, "checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
              "checkpoint_step": state.get("step"), "trained_on": (state.get("data") or {}).get("dataset"),
              "loss": train.get("loss") if models.family == "dcgan" else "negative ELBO"}
    converted = state.get("converted")
    if converted:
        source["converted"] = {k: converted.get(k) for k in ("from", "model", "repository", "commit", "path",
                                                             "epoch", "channel_order")}
        if options.bn == "checkpoint":
            raise ConfigError(f"--bn checkpoint: {checkpoint} holds no batch-norm running statistics (converted "
                              f"from the authors' {converted.get('model')} model, which kept none); use the "
                              f"default --bn recompute")
    return source


def map_sizes(disc: Discriminator, image_size: int) -> list[int]:
    """The side of every conv layer's output map for ``image_size`` x ``image_size`` inputs (from the layers'
    kernel, stride, padding and dilation; nothing is run)."""
    size, sizes = int(image_size), []
    for block in disc.features:
        for m in block.modules():
            if isinstance(m, torch.nn.Conv2d):
                k, s, p, d = m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]
                size = (size + 2 * p - d * (k - 1) - 1) // s + 1
        sizes.append(size)
    return sizes


def check_grid(disc: Discriminator, image_size: int, grid: int, layers: Sequence[int]) -> None:
    """A one-line error when ``grid`` exceeds the smallest map among ``layers``: pooling would only replicate its
    values (more columns, no more information)."""
    sizes = map_sizes(disc, image_size)
    pooled = [i for i in layers if i not in getattr(disc, "flat_layers", ())]  # a VAE's mu is not pooled
    if not pooled:
        return
    smallest = min(pooled, key=lambda i: sizes[i])
    if grid > sizes[smallest]:
        n = sizes[smallest]
        raise ConfigError(f"--grid {grid}: larger than the {n}x{n} map of conv{smallest + 1} (layer {smallest}) for "
                          f"{image_size}x{image_size} inputs; use --grid {n} or less")


def _recompute_batchnorm(disc: Discriminator, images: np.ndarray, batch_size: int, device: torch.device,
                         progress: bool, ctx: DistContext, depth: int | None = None) -> int:
    """:func:`recompute_batchnorm` over all batches, each rank taking its round-robin share of them."""
    if not ctx.enabled:
        return recompute_batchnorm(disc, images, batch_size, device, progress, depth)
    starts = shard_batches(len(images), batch_size, ctx.rank, ctx.world_size)
    mine = (np.concatenate([images[s:s + batch_size] for s in starts]) if starts
            else np.zeros((0, *images.shape[1:]), dtype=images.dtype))
    local = recompute_batchnorm(disc, mine, batch_size, device, progress and ctx.is_main, depth)
    norms = [m for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        return 0
    # the single-process value is the mean over all batches of the per-batch statistics: weight by batch counts
    flat = torch.cat([torch.tensor([float(local)], device=device)]
                     + [torch.cat((m.running_mean, m.running_var)).double().to(device) * local for m in norms])
    torch.distributed.all_reduce(flat)
    total = int(flat[0].item())
    offset = 1
    for m in norms:
        size = m.num_features
        if total:
            m.running_mean.copy_((flat[offset:offset + size] / total).to(m.running_mean))
            m.running_var.copy_((flat[offset + size:offset + 2 * size] / total).to(m.running_var))
        m.num_batches_tracked.fill_(total)
        offset += 2 * size
    return total


def _resume_state(root: Path, key: str) -> dict:
    """What an interrupted extraction with this ``key`` left in ``root``: finished splits and batch-norm statistics.
    Files of an extraction with another key (or none recorded) are deleted and the key recorded."""
    partial = root / PARTIAL
    try:
        previous = json.loads((partial / "key.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != key:
        for split in SPLITS:
            labels_path(root, split).unlink(missing_ok=True)
            features_path(root, split).unlink(missing_ok=True)
            for shard in root.glob(f"{split}_features-*-of-*.npy"):
                shard.unlink()
        (root / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        write_json(partial / "key.json", {"key": key})
        return {"done": [], "batchnorm": False}
    done = [s for s in SPLITS if labels_path(root, s).is_file()
            and (features_path(root, s).is_file() or has_shards(root, s))]
    return {"done": done, "batchnorm": (partial / "batchnorm.pt").is_file()}


def _save_batchnorm(root: Path, buffers: dict, batches: int) -> None:
    atomic_write(root / PARTIAL / "batchnorm.pt", lambda tmp: torch.save({"buffers": buffers, "batches": batches}, tmp))


def _load_batchnorm(root: Path) -> dict | None:
    try:
        return torch.load(root / PARTIAL / "batchnorm.pt", map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - damaged: re-estimate
        return None


def _read_key(root: Path) -> str | None:
    try:
        return json.loads((root / "meta.json").read_text()).get("key")
    except (OSError, ValueError):
        return None


@torch.no_grad()
def _write_split(disc: Discriminator | None, split: ImageSplit, root: Path, name: str, options: ExtractOptions,
                 layers: Sequence[int], dim: int, device: torch.device, progress: bool,
                 ctx: DistContext | None = None, featurize=None, shards: bool = False) -> int:
    """Features of one split into ``root``; under torchrun rank 0 writes the gathered batches in order (with
    ``shards``, each rank its own file: :func:`_write_shard`). Returns how many leading rows an interrupted run had
    written (kept, not recomputed). ``featurize(uint8 NHWC batch on the device) -> (B, dim)`` replaces D's pooled
    features (another model's layers, :mod:`.modules`)."""
    if featurize is None:
        def featurize(block: torch.Tensor) -> torch.Tensor:
            return pooled_features(disc, to_model_range(block), options.grid, layers)
    ctx = ctx or DistContext(device=device)
    if shards:
        return _write_shard(featurize, split, root, name, options.batch_size, dim, device, progress, ctx)
    size = options.batch_size
    starts = list(range(0, len(split), size))
    # rows an interrupted run of the same extraction (same key, so same batch size) already wrote
    partial = root / PARTIAL / f"{name}_features.npy"
    kept = main_only(lambda: partial_rows(partial, len(split), dim, align=size), ctx)
    rounds = range(kept // size, len(starts), ctx.world_size)  # one batch per rank per round
    if progress and ctx.is_main:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=f"features ({name})" + (f", from row {kept:,}" if kept else ""),
                      unit="batch" if ctx.world_size == 1 else "round", dynamic_ncols=True)
    writer = (MatrixWriter(features_path(root, name), rows=len(split), dim=dim, partial=partial, start_row=kept)
              if ctx.is_main else contextlib.nullcontext())
    with writer:
        for first in rounds:
            index = first + ctx.rank
            if index < len(starts):
                block = torch.from_numpy(np.ascontiguousarray(split.images[starts[index]:starts[index] + size]))
                feats = featurize(block.to(device))
            else:  # this rank has no batch in the last round
                feats = torch.zeros(0, dim, device=device)
            for part in gather_batches(feats, len(feats), size, ctx) or []:
                writer.write(part.cpu().numpy())
    if ctx.is_main:
        write_labels(root, name, split.labels)
    return kept


@torch.no_grad()
def _write_shard(featurize, split: ImageSplit, root: Path, name: str, size: int, dim: int, device: torch.device,
                 progress: bool, ctx: DistContext) -> int:
    """This rank's contiguous run of whole batches into its own shard file (resuming its own partial file); once
    every rank has finished, rank 0 records the shards and writes the labels. Returns the rows kept over all
    ranks."""
    starts = list(range(0, len(split), size))
    first = len(starts) * ctx.rank // ctx.world_size
    last = len(starts) * (ctx.rank + 1) // ctx.world_size
    lo, hi = first * size, min(len(split), last * size)
    file = shard_name(name, ctx.rank, ctx.world_size)

    def write_mine() -> int:
        partial = root / PARTIAL / file
        kept = partial_rows(partial, hi - lo, dim, align=size)
        batches = range(first + kept // size, last)
        if progress and ctx.is_main:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"features ({name}, shard {ctx.rank + 1} of {ctx.world_size})",
                           unit="batch", dynamic_ncols=True)
        with MatrixWriter(root / file, rows=hi - lo, dim=dim, partial=partial, start_row=kept) as writer:
            for b in batches:
                block = torch.from_numpy(np.ascontiguousarray(split.images[starts[b]:starts[b] + size]))
                writer.write(featurize(block.to(device)).cpu().numpy())
        return kept

    kept = agree(write_mine, ctx)   # every rank's shard is complete (or every rank stops) before the manifest
    counts = [len(starts) * r // ctx.world_size for r in range(ctx.world_size + 1)]
    rows = [min(len(split), counts[r + 1] * size) - counts[r] * size for r in range(ctx.world_size)]
    files = [shard_name(name, r, ctx.world_size) for r in range(ctx.world_size)]

    def record() -> None:
        features_path(root, name).unlink(missing_ok=True)   # (a plain file of another run would shadow the shards)
        write_manifest_split(root, name, files, rows, dim)
        write_labels(root, name, split.labels)

    main_only(record, ctx)
    kept_all = torch.tensor([float(kept)], dtype=torch.float64, device=device)
    if ctx.enabled:
        torch.distributed.all_reduce(kept_all)
    return int(kept_all.item())
