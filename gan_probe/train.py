"""The DCGAN training loop: paper hyperparameters, atomic checkpoints, exact resume.

Randomness is derived from ``(seed, epoch)`` for the data order and ``(seed, step)`` for latent codes, so a
run resumed from any checkpoint follows exactly the same trajectory as an uninterrupted one (on the CPU).

Distributed (``torchrun --nproc_per_node N -m gan_probe train ...``): ``batch_size`` is the global batch. Every
step draws the same global batch (indices from the epoch's permutation, latent codes from the step's seed)
as a single process and rank r takes rows ``[r * B/N, (r + 1) * B/N)`` of it; DistributedDataParallel
averages the gradients, so the effective batch and learning rate do not depend on N. With ``sync_bn`` the
batch-norm statistics are those of the global batch too and N processes follow the single-process trajectory
up to floating-point rounding; without it each rank normalises with its own slice's statistics.

>>> from gan_probe.train import TrainConfig, train          # doctest: +SKIP
>>> train(TrainConfig(dataset="digits", preset="small32", max_steps=20), "runs/digits")   # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path, remove_stale_temporaries, write_json
from .checkpoint import load_checkpoint, require_training_state, save_checkpoint
from .data import DATASETS, load_split
from .data.holdout import holdout_split
from .distributed import DistContext, agree, all_reduce, init_distributed, main_first, main_only
from .errors import CheckpointError, ConfigError, GanProbeError
from .models import Discriminator, Generator, ModelConfig, preset_config
from .models.losses import LOSSES
from .provenance import provenance
from .records import from_known_fields
from .syncbn import convert_sync_batchnorm
from .train_step import DiscriminatorPair, GanStep, GraphedStep, draw_step_noise, graphs_supported
from .training_probe import DEFAULT_C as PROBE_C

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
LOG = "log.csv"
# probe_acc / probe_seconds: only on the rows of --probe-every steps (empty elsewhere)
LOG_FIELDS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "seconds", "probe_acc",
              "probe_seconds")
BEST_PROBE = "best_probe.pt"
BEST_PROBE_JSON = "best_probe.json"


@dataclass
class TrainConfig:
    """Training options. Defaults are the paper's: Adam(2e-4, beta1=0.5), batch 128, N(0, 0.02) init."""

    dataset: str = "digits"
    data_root: str | None = None
    split: str = "train"
    download: bool = False
    holdout: int | None = None  # leave out the images `extract --holdout N` would test on (same seed)
    holdout_seed: int = 0
    preset: str = "small32"
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides (image_size, nz, ...)
    loss: str = "bce"
    mog_sigma_reg: float = 0.01  # DeLiGAN's weight on sum_k ||1 - sigma_k||^2 / N (only for latent "mog")
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget: stop (and checkpoint) at the first log step past it
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    sync_bn: bool = False  # batch norm over the global batch of all ranks (torchrun); a no-op in one process
    compile: bool = False  # torch.compile G and D
    cuda_graphs: bool = True  # replay the whole step from a CUDA graph (one CUDA process, no compile)
    # the online linear probe (gan_probe.training_probe): every probe_every steps, on the train split of
    # probe_dataset; logged as probe_acc, the best checkpoint kept as best_probe.pt
    probe_every: int | None = None
    probe_dataset: str | None = None
    probe_data_root: str | None = None
    probe_images: int = 2000
    probe_layers: list[int] | None = None  # 0-based conv layers; None: all
    probe_C: float = PROBE_C
    probe_seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss {self.loss!r}: expected one of {', '.join(LOSSES)}")
        for name in ("batch_size", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value} (nothing to train)")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"--max-minutes must be positive, got {self.max_minutes}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        for name in ("beta1", "beta2"):  # Adam's decay rates (NaN fails the comparison too)
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be in [0, 1), got {getattr(self, name)}")
        if self.holdout is not None and self.holdout < 1:
            raise ConfigError(f"--holdout must be at least 1, got {self.holdout}")
        if not self.mog_sigma_reg >= 0:
            raise ConfigError(f"--mog-sigma-reg must be non-negative, got {self.mog_sigma_reg}")
        self._check_probe()

    def _check_probe(self) -> None:
        labelled = [name for name in DATASETS if name != "folder"]
        if self.probe_every is not None:
            if self.probe_every < 1:
                raise ConfigError(f"--probe-every must be at least 1, got {self.probe_every}")
            if self.probe_dataset is None:
                raise ConfigError(f"--probe-every needs --probe-dataset NAME, the labelled dataset the probe scores "
                                  f"D on ({', '.join(labelled)})")
        if self.probe_dataset is not None and self.probe_dataset not in labelled:
            raise ConfigError(f"--probe-dataset {self.probe_dataset!r}: expected a labelled dataset, one of "
                              f"{', '.join(labelled)}")
        if self.probe_images < 4:
            raise ConfigError(f"--probe-images must be at least 4 (2 images for each of 2 classes), got "
                              f"{self.probe_images}")
        if not (np.isfinite(self.probe_C) and self.probe_C > 0):
            raise ConfigError(f"--probe-C must be a positive number, got {self.probe_C}")
        if self.probe_layers is not None and (not self.probe_layers or min(self.probe_layers) < 0):
            raise ConfigError(f"--probe-layers {','.join(map(str, self.probe_layers))}: expected 0-based conv layer "
                              f"numbers")

    def probe_settings(self):
        """The :class:`~gan_probe.training_probe.ProbeSettings` of ``--probe-*`` (None without --probe-every)."""
        if self.probe_every is None:
            return None
        from .training_probe import ProbeSettings

        layers = None if self.probe_layers is None else tuple(self.probe_layers)
        return ProbeSettings(self.probe_dataset, self.probe_images, layers, self.probe_C, self.probe_seed)

    def model_config(self) -> ModelConfig:
        return preset_config(self.preset, **self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return from_known_fields(cls, data, "train config")


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    total_steps: int
    loss_d: float | None
    loss_g: float | None
    seconds: float
    resumed_from: int
    world_size: int = 1


def _rng(seed: int, stream: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from (seed, stream, index): independent, reproducible streams."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + stream * 7_919 + index) % (2 ** 63 - 1))
    return g


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of the training images in one epoch."""
    return torch.randperm(n, generator=_rng(seed, 1, epoch))


def to_model_range(batch_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return batch_uint8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Save images in [-1, 1] as a PNG grid, atomically."""
    from torchvision.utils import save_image

    with atomic_path(path) as tmp:
        save_image(images.float().cpu(), tmp, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2,
                   format="png")
    return path


class _Log:
    """log.csv: appended row by row; on resume rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows: list[dict[str, str]] = []
        if resume_step > 0 and path.is_file():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("step") and int(r["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, LOG_FIELDS)

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def read_log(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The training log as a list of rows with float values; empty cells (``probe_acc`` on the rows without a
    probe) are left out of their row."""
    with open(Path(run_dir) / LOG, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


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


def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = False, progress: bool = False,
          callback: Callable[[int, dict[str, float]], None] | None = None,
          given: Iterable[str] | None = None) -> TrainResult:
    """Train (or resume) a DCGAN into ``out_dir``; returns a summary. See :class:`TrainConfig`.

    Under ``torchrun`` (``WORLD_SIZE`` set) every rank calls this function: the process group is started from
    the environment if needed (:func:`gan_probe.distributed.init_distributed`), G and D are wrapped in
    DistributedDataParallel, each rank trains on its ``batch_size / world_size`` slice of every global batch,
    and only rank 0 writes files, shows the progress bar and calls ``callback``. The caller destroys the
    process group (:func:`gan_probe.distributed.shutdown`).

    ``given`` names the options the user set explicitly (the CLI passes them); on ``resume`` an explicit
    option that disagrees with the checkpoint's training options is an error, runtime options (``epochs``,
    ``max_steps``, ``device``, ``amp``, ``sync_bn``, ``compile``, the ``*_every`` intervals) take the new
    value. ``None``: options that differ from the defaults count as given.
    """
    from .locks import output_lock

    with output_lock(out_dir, "--out", ctx=init_distributed(config.device)):  # rank 0 locks the run directory
        return _train(config, out_dir, resume, progress, callback, given)


def _train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool, progress: bool,
           callback: Callable[[int, dict[str, float]], None] | None, given: Iterable[str] | None) -> TrainResult:
    ctx = init_distributed(config.device)
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    explicit = _explicit(config, given)

    def find_start() -> str | None:  # rank 0: what to resume from, or refuse to overwrite a run
        if resume:
            found = latest_checkpoint(out) if out.is_dir() else None
            if found is None and (ckpt_path.exists() or (out / PREVIOUS).exists()):
                load_checkpoint(ckpt_path)  # raises the clear corrupt-file error
            return None if found is None else str(found)
        existing = [name for name in (CHECKPOINT, PREVIOUS) if (out / name).exists()]
        if existing:
            raise GanProbeError(f"{out / existing[0]}: the run directory already holds a run; pass --resume to "
                                f"continue it or choose another --out")
        return None

    found = main_only(find_start, ctx)
    state: dict[str, Any] | None = None
    if found is not None:
        state = agree(lambda: load_checkpoint(found), ctx)  # every rank reads the file rank 0 chose
        require_training_state(state, found)
        saved = TrainConfig.from_dict(state["config"]["train"])
        config = merge_resume_config(saved, config, explicit, Path(found))

    world, device = ctx.world_size, ctx.device
    if config.batch_size % world:
        raise ConfigError(f"--batch-size {config.batch_size}: the global batch must be divisible by the world "
                          f"size {world} (each rank takes batch-size / world-size images)")
    local_batch = config.batch_size // world
    model_cfg = config.model_config()
    data = main_first(lambda: load_split(config.dataset, config.data_root, config.split,
                                         image_size=model_cfg.image_size, download=config.download,
                                         progress=progress and ctx.is_main), ctx)
    if config.holdout is not None:  # train only on what the probe's --holdout keeps for training
        data, _ = holdout_split(data, config.holdout, config.holdout_seed)
    n = len(data)
    if n < config.batch_size:
        raise ConfigError(f"--batch-size {config.batch_size}: the {config.dataset} {config.split} split has only "
                          f"{n} images")
    steps_per_epoch = n // config.batch_size
    total = _total_steps(config, steps_per_epoch)
    cuda = device.type == "cuda"

    torch.manual_seed(config.seed)
    gen, disc = Generator(model_cfg), Discriminator(model_cfg)
    start = 0
    if state is not None:
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        start = int(state["step"])
    # log.csv's seconds count the whole run: a resumed run continues from the checkpoint's training time
    seconds_before = float(state.get("seconds") or 0.0) if state is not None else 0.0
    gen, disc = gen.to(device), disc.to(device)
    # channels-last for the eager CUDA loop; not under torch.compile, whose generated convolution backward
    # asserted contiguous strides for channels-last tensors (torch 2.11, H200) and stopped the run
    channels_last = cuda and not config.compile
    if channels_last:
        gen = gen.to(memory_format=torch.channels_last)
        disc = disc.to(memory_format=torch.channels_last)
    if config.sync_bn:
        gen, disc = convert_sync_batchnorm(gen, device), convert_sync_batchnorm(disc, device)
    # the whole step is captured in a CUDA graph where it can be: one process, eager modules
    use_graphs = config.cuda_graphs and graphs_supported(device) and not ctx.enabled and not config.compile
    adam = {"lr": config.lr, "betas": (config.beta1, config.beta2), **({"fused": True} if cuda else {}),
            **({"capturable": True} if use_graphs else {})}
    opt_g, opt_d = torch.optim.Adam(gen.parameters(), **adam), torch.optim.Adam(disc.parameters(), **adam)
    if state is not None:
        opt_g.load_state_dict(state["optimizer_g"])
        opt_d.load_state_dict(state["optimizer_d"])

    # the callables of the step: DDP wrappers under torchrun; D's use in G's step needs no gradient sync
    g_step: nn.Module = gen
    d_pair: nn.Module = DiscriminatorPair(disc)
    d_plain: nn.Module = disc
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = {"device_ids": [device.index]} if cuda else {}
        g_step, d_pair = DDP(gen, **ids), DDP(d_pair, **ids)
    if config.compile:
        # in the eager modules' memory layouts (inductor's own switch to channels-last is off: the configuration
        # timed in the README; the stride failure it was first suspected of came from D's head, now a matmul)
        compiled = lambda m: torch.compile(m, options={"layout_optimization": False})  # noqa: E731
        g_step, d_pair, d_plain = compiled(g_step), compiled(d_pair), compiled(d_plain)

    # the online probe: rank 0 loads its images once (before anything is written, so bad settings leave no trace)
    probe_box: list[Any] = [None]
    probe_info = None
    if config.probe_every is not None:
        from .training_probe import OnlineProbe

        def make_probe() -> dict[str, Any] | None:
            if not ctx.is_main:
                return None
            probe_box[0] = OnlineProbe(config.probe_settings(), model_cfg, config.probe_data_root, device,
                                       progress=progress)
            return probe_box[0].describe()

        probe_info = main_only(make_probe, ctx)

    data_info = data.describe()
    if "holdout" in data.info:
        data_info["holdout"] = data.info["holdout"]
    dist_info = {**ctx.describe(), "global_batch": config.batch_size, "per_rank_batch": local_batch,
                 "sync_bn": config.sync_bn}

    def open_run() -> None:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out, recursive=True)  # what a killed run was writing (checkpoint, samples)
        write_json(out / CONFIG, {"train": config.to_dict(), "model": model_cfg.to_dict(), "data": data_info,
                                  "steps_per_epoch": steps_per_epoch, "total_steps": total,
                                  "distributed": dist_info, "cuda_graph_step": use_graphs, "probe": probe_info,
                                  "provenance": provenance(device=str(device), seeds={"seed": config.seed})})

    main_only(open_run, ctx)
    # read into memory when it fits comfortably (random batches from a memory map thrash on large data)
    if data.images.nbytes < 4 * 2 ** 30:
        images = torch.from_numpy(np.array(data.images))
    else:  # a read-only memory map: batches are copied out of it, never written
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            images = torch.from_numpy(np.asarray(data.images))
    if cuda and images.numel() < 8 * 2 ** 30:
        images = images.to(device)  # GPU-resident uint8 data

    def fixed_z() -> torch.Tensor:
        # drawn afresh from the same stream each time: a learnable prior (mog) maps it with its current parameters
        with torch.no_grad():
            return gen.prior.sample(64, generator=_rng(config.seed, 3, 0), device="cpu").to(device)

    log = _Log(out / LOG, start) if ctx.is_main else None
    saved_step = [start if state is not None else None]
    # rank 0: the best probe accuracy so far, as an uninterrupted run would have it at ``start``
    best: list[dict[str, Any] | None] = [None]
    if ctx.is_main and probe_info is not None and state is not None:
        best[0] = _best_probe_so_far(out, start, probe_info)

    def payload(step: int) -> dict[str, Any]:
        return {
            "generator": gen.state_dict(), "discriminator": disc.state_dict(),
            "optimizer_g": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(),
            "step": step, "epoch": step // steps_per_epoch,
            "seconds": round(seconds_before + time.perf_counter() - t0, 3),  # training time up to this step
            "config": {"model": model_cfg.to_dict(), "train": config.to_dict()},
            "data": data_info, "distributed": dist_info,
            "provenance": provenance(device=str(device), seeds={"seed": config.seed}),
        }

    def checkpoint(step: int) -> None:
        if ckpt_path.exists():
            os.replace(ckpt_path, out / PREVIOUS)
        save_checkpoint(ckpt_path, payload(step))

    def run_probe(step: int) -> tuple[float, float, bool] | None:
        """Rank 0: score D; a new best (strictly higher accuracy: the earliest step wins ties) is saved as
        best_probe.pt and described in best_probe.json. The caller then writes checkpoint.pt at this step too,
        so a resumed run never repeats a step whose best checkpoint is already on disk."""
        if not ctx.is_main:
            return None
        score = probe_box[0](disc)
        new_best = best[0] is None or score.accuracy > best[0]["probe_acc"]
        if new_best:
            best[0] = {"step": step, "epoch": round(step / steps_per_epoch, 4), "probe_acc": score.accuracy,
                       "probe_seconds": round(score.seconds, 3), "checkpoint": BEST_PROBE, "probe": probe_info}
            save_checkpoint(out / BEST_PROBE, {**payload(step), "probe": best[0]})
            write_json(out / BEST_PROBE_JSON, best[0])
        return score.accuracy, score.seconds, new_best

    def samples(step: int) -> None:
        gen.eval()
        with torch.no_grad():
            save_grid(gen(fixed_z()), out / "samples" / f"step_{step:07d}.png")
        gen.train()

    run_step = GanStep(gen, disc, opt_g, opt_d, loss=config.loss, amp=config.amp, d_pair=d_pair,
                       g_forward=g_step, d_forward=d_plain, mog_sigma_reg=config.mog_sigma_reg)
    if use_graphs:
        run_step = GraphedStep(run_step)
    bar = None
    if progress and ctx.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    # per-step (loss_d, loss_g), kept on the device and inspected at the check points (log, sample, checkpoint)
    window = min(config.log_every, config.sample_every, config.checkpoint_every, max(total - start, 1))
    losses = torch.zeros(window, 2, device=device)
    since = 0  # steps recorded in ``losses`` since the last check
    order, order_epoch = None, -1
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    window_t, window_images = t0, 0
    deadline = None if config.max_minutes is None else t0 + 60 * config.max_minutes
    out_of_time = False
    stopping = False  # a stop was requested (Ctrl-C, SIGTERM): checkpoint after this step, then stop
    rows = slice(ctx.rank * local_batch, (ctx.rank + 1) * local_batch)  # this rank's part of a global batch
    step = start
    stop = _StopRequest(ckpt_path)
    stop.install()
    try:
        if probe_info is not None and state is None:  # step 0: the untrained D, the random-weights reference
            accuracy, seconds, new_best = main_only(lambda: run_probe(0), ctx)
            if ctx.is_main:
                row = {"step": 0, "epoch": 0.0, "seconds": round(seconds_before + time.perf_counter() - t0, 3),
                       "probe_acc": accuracy,
                       "probe_seconds": round(seconds, 3)}
                log.write(row)
                if callback is not None:
                    callback(0, row)
                checkpoint(0)  # with its best_probe.pt, like every new best
            saved_step[0] = 0
            window_t = time.perf_counter()
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(n, config.seed, epoch).to(images.device), epoch
            idx = order[pos * config.batch_size:(pos + 1) * config.batch_size][rows]
            real = to_model_range(images[idx].to(device, non_blocking=True))
            if channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            noise = draw_step_noise(gen.prior, config.batch_size, _rng(config.seed, 2, step, "cpu"), rows, device)
            result = run_step(real, noise)
            loss_d, loss_g = result.loss_d, result.loss_g
            losses[since] = torch.stack((loss_d.float(), loss_g.float()))
            since += 1
            step += 1
            window_images += config.batch_size

            probing = probe_info is not None and (step % config.probe_every == 0 or step == total)
            logging = step % config.log_every == 0 or step == total or probing
            new_best = False
            requested = stop.signal is not None
            if ctx.enabled:
                # every rank stops at the same step: agree at log steps on the deadline and on stop requests
                if logging and not (out_of_time or stopping):
                    flags = torch.tensor([float(deadline is not None and time.perf_counter() >= deadline),
                                          float(requested)], device=device)
                    late, wanted = all_reduce(flags, "max", ctx).tolist()
                    out_of_time, stopping = bool(late), bool(wanted)
            else:
                if logging and deadline is not None and not out_of_time:
                    out_of_time = time.perf_counter() >= deadline
                stopping = requested  # one process stops after the step it is in
            if not (logging or stopping or step % config.sample_every == 0 or step % config.checkpoint_every == 0):
                if bar is not None:
                    bar.update(1)
                continue
            _check_finite(losses[:since], step, ctx, ckpt_path, saved_step[0])
            since = 0
            if logging:
                stats = torch.stack((loss_d.float(), loss_g.float(),
                                     torch.sigmoid(result.real_logits.float()).mean(),
                                     torch.sigmoid(result.fake_logits.float()).mean()))
                ld, lg, d_real, d_fake = all_reduce(stats, "mean", ctx).tolist()
                now = time.perf_counter()
                last = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss_d": ld, "loss_g": lg,
                        "d_real": d_real, "d_fake": d_fake,
                        "images_per_s": round(window_images / max(now - window_t, 1e-9), 1),
                        "seconds": round(seconds_before + now - t0, 3)}
                window_t, window_images = now, 0
                if probing:  # rank 0 probes, the other ranks wait for its answer
                    accuracy, seconds, new_best = main_only(lambda: run_probe(step), ctx)
                    last.update(probe_acc=accuracy, probe_seconds=round(seconds, 3))
                    window_t = time.perf_counter()  # the probe's time is not training throughput
                if ctx.is_main:
                    log.write(last)
                    if bar is not None:
                        bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}", img_s=f"{last['images_per_s']:.0f}")
                    if callback is not None:
                        callback(step, last)
            if bar is not None:
                bar.update(1)
            if ctx.is_main and (step % config.sample_every == 0 or step == total or out_of_time):
                samples(step)
            if (step % config.checkpoint_every == 0 or step == total or out_of_time or stopping
                    or new_best):
                if ctx.is_main:
                    checkpoint(step)
                saved_step[0] = step
            if stopping and step < total:
                raise TrainingStopped(f"stopped at step {step} of {total} on request; checkpoint written to "
                                      f"{ckpt_path}")
            if out_of_time:
                break
    finally:
        stop.restore()
        if log is not None:
            log.close()
        if bar is not None:
            bar.close()
    if ctx.is_main and start == total and not ckpt_path.exists():
        checkpoint(step)
    return TrainResult(out, step, total, last.get("loss_d"), last.get("loss_g"), time.perf_counter() - t0, start,
                       world)


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on request (Ctrl-C or SIGTERM) after writing a checkpoint at a whole step."""


class _StopRequest:
    """While training: the first SIGINT (Ctrl-C) or SIGTERM (a batch scheduler's pre-emption) asks the loop to
    finish the step it is in, write a checkpoint and stop; a second one stops at once (the checkpoint on disk is
    then the last one written). Handlers are installed only in the main thread and restored on exit."""

    def __init__(self, ckpt_path: Path):
        self.ckpt_path = ckpt_path
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            self.restore()
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\ngan-probe train: stopping after this step and writing {self.ckpt_path} (again to stop at once)",
              file=sys.stderr, flush=True)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            # None: the previous handler was not installed from Python (the default is the closest match)
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}


def _check_finite(losses: torch.Tensor, step: int, ctx: DistContext, ckpt_path: Path,
                  saved_step: int | None) -> None:
    """Stop every rank with one clear error if any rank saw a NaN/inf loss since the last check.

    Called before anything is written at a check point, so the checkpoint on disk stays the last good one.
    """
    first = step - len(losses) + 1
    bad = (~torch.isfinite(losses).all(dim=1)).nonzero()
    bad_step = first + int(bad[0]) if len(bad) else 0
    if ctx.enabled:  # the earliest bad step over all ranks (0: none)
        flag = torch.tensor([step + 1 - bad_step if bad_step else 0], dtype=torch.int64, device=losses.device)
        flag = int(all_reduce(flag, "max", ctx))
        bad_step = step + 1 - flag if flag else 0
    if not bad_step:
        return
    row = losses[bad_step - first].tolist() if len(bad) and first + int(bad[0]) == bad_step else None
    values = f" (loss_d={row[0]}, loss_g={row[1]})" if row is not None else ""
    kept = (f"the last good checkpoint is {ckpt_path} (step {saved_step})" if saved_step is not None
            else "no checkpoint had been written yet")
    raise GanProbeError(f"non-finite loss at step {bad_step}{values}; training stopped, {kept}")


def _total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.max_steps is None and config.epochs is None:
        return 25 * steps_per_epoch
    candidates = [s for s in (config.max_steps,
                              None if config.epochs is None else config.epochs * steps_per_epoch) if s is not None]
    return min(candidates)


def _best_probe_so_far(out: Path, step: int, probe_info: dict[str, Any]) -> dict[str, Any] | None:
    """On resume at ``step``: the best probe result of the steps up to it (None: none yet).

    best_probe.json holds it when it was written at or before ``step`` with the same probe (settings and images);
    when it was written after ``step`` (the run stopped between a probe and the checkpoint written with it, or
    resumes from checkpoint.prev.pt), the best is the highest ``probe_acc`` in the log up to ``step``, and the
    files are rewritten at the next improvement, as the steps are repeated. A probe with other settings starts
    afresh.
    """
    path = out / BEST_PROBE_JSON
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("probe") != probe_info:
        return None
    if isinstance(saved.get("step"), int) and saved["step"] <= step and isinstance(saved.get("probe_acc"), float):
        return saved
    best = None
    for row in read_log(out):
        if "probe_acc" in row and row["step"] <= step and (best is None or row["probe_acc"] > best["probe_acc"]):
            best = {"step": int(row["step"]), "probe_acc": row["probe_acc"]}
    return best


# options that may change when a run is resumed (they do not define the trajectory on a given machine; the
# --probe-* options only decide what is measured along it)
RUNTIME_OPTIONS = ("epochs", "max_steps", "max_minutes", "device", "data_root", "download", "amp", "sync_bn",
                   "compile", "cuda_graphs", "log_every", "sample_every", "checkpoint_every", "probe_every",
                   "probe_dataset", "probe_data_root", "probe_images", "probe_layers", "probe_C", "probe_seed")
ALWAYS_FROM_CALL = ("epochs", "max_steps", "max_minutes", "device")


def _explicit(config: TrainConfig, given: Iterable[str] | None) -> set[str]:
    if given is not None:
        return set(given)
    defaults = TrainConfig()
    return {f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(defaults, f.name)}


def merge_resume_config(saved: TrainConfig, given: TrainConfig, explicit: set[str], path: Path) -> TrainConfig:
    """The configuration of a resumed run: the checkpoint's, with the runtime options of the new call.

    An explicitly given option that defines the run (dataset, preset, model widths, loss, batch size, lr, seed,
    ...) and disagrees with the checkpoint raises :class:`CheckpointError`.
    """
    for f in fields(TrainConfig):
        name = f.name
        if name in RUNTIME_OPTIONS or name not in explicit:
            continue
        if name == "model":
            saved_model = saved.model_config()
            for key, value in given.model.items():
                if getattr(saved_model, key) != value:
                    raise CheckpointError(f"{path}: checkpoint was trained with {key}={getattr(saved_model, key)!r}, "
                                          f"but --{key.replace('_', '-')} {value!r} was given")
        elif getattr(saved, name) != getattr(given, name):
            raise CheckpointError(f"{path}: checkpoint was trained with {name}={getattr(saved, name)!r}, but "
                                  f"--{name.replace('_', '-')} {getattr(given, name)!r} was given")
    merged = saved.to_dict()
    for name in RUNTIME_OPTIONS:
        if name in ALWAYS_FROM_CALL or name in explicit:
            merged[name] = getattr(given, name)
    merged["data_root"] = given.data_root or saved.data_root
    return TrainConfig.from_dict(merged)
