"""The DCGAN training loop: paper hyperparameters, atomic checkpoints, exact resume.

Randomness is derived from ``(seed, epoch)`` for the data order and ``(seed, step)`` for latent codes, so a
run resumed from any checkpoint follows exactly the same trajectory as an uninterrupted one (on the CPU).

>>> from gan_probe.train import TrainConfig, train          # doctest: +SKIP
>>> train(TrainConfig(dataset="digits", preset="small32", max_steps=20), "runs/digits")
"""
from __future__ import annotations

import csv
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path, write_json
from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_split
from .devices import resolve_device
from .errors import CheckpointError, ConfigError, GanProbeError
from .models import Discriminator, Generator, ModelConfig, preset_config
from .models.losses import LOSSES, d_loss, g_loss
from .provenance import provenance

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
LOG = "log.csv"
LOG_FIELDS = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "seconds")


@dataclass
class TrainConfig:
    """Training options. Defaults are the paper's: Adam(2e-4, beta1=0.5), batch 128, N(0, 0.02) init."""

    dataset: str = "digits"
    data_root: str | None = None
    split: str = "train"
    download: bool = False
    preset: str = "small32"
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides (image_size, nz, ...)
    loss: str = "bce"
    mog_sigma_reg: float = 1.0  # DeLiGAN's weight on sum_k ||1 - sigma_k||^2 / N (only for latent "mog")
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int | None = None
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss {self.loss!r}: expected one of {', '.join(LOSSES)}")
        for name in ("batch_size", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be non-negative, got {value}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if not self.mog_sigma_reg >= 0:
            raise ConfigError(f"--mog-sigma-reg must be non-negative, got {self.mog_sigma_reg}")

    def model_config(self) -> ModelConfig:
        return preset_config(self.preset, **self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"train config: unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    total_steps: int
    loss_d: float | None
    loss_g: float | None
    seconds: float
    resumed_from: int


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
    """The training log as a list of rows with float values."""
    with open(Path(run_dir) / LOG, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


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
          callback: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train (or resume) a DCGAN into ``out_dir``; returns a summary. See :class:`TrainConfig`."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    state: dict[str, Any] | None = None
    if resume:
        found = latest_checkpoint(out) if out.is_dir() else None
        if found is None and (ckpt_path.exists() or (out / PREVIOUS).exists()):
            load_checkpoint(ckpt_path)  # raises the clear corrupt-file error
        if found is not None:
            state = load_checkpoint(found)
            saved = TrainConfig.from_dict(state["config"]["train"])
            _check_resume_compatible(saved, config, found)
            config = TrainConfig(**{**saved.to_dict(), "epochs": config.epochs, "max_steps": config.max_steps,
                                    "device": config.device, "data_root": config.data_root or saved.data_root})
    elif ckpt_path.exists():
        raise GanProbeError(f"{ckpt_path}: the run directory already holds a checkpoint; pass --resume to continue "
                            f"it or choose another --out")

    device = resolve_device(config.device)
    model_cfg = config.model_config()
    data = load_split(config.dataset, config.data_root, config.split, image_size=model_cfg.image_size,
                      download=config.download)
    n = len(data)
    if n < config.batch_size:
        raise ConfigError(f"--batch-size {config.batch_size}: the {config.dataset} {config.split} split has only "
                          f"{n} images")
    steps_per_epoch = n // config.batch_size
    total = _total_steps(config, steps_per_epoch)

    torch.manual_seed(config.seed)
    gen, disc = Generator(model_cfg).to(device), Discriminator(model_cfg).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    start = 0
    if state is not None:
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["optimizer_g"])
        opt_d.load_state_dict(state["optimizer_d"])
        start = int(state["step"])
    cuda = device.type == "cuda"
    if cuda:
        gen = gen.to(memory_format=torch.channels_last)
        disc = disc.to(memory_format=torch.channels_last)

    out.mkdir(parents=True, exist_ok=True)
    data_info = data.describe()
    write_json(out / "config.json", {"train": config.to_dict(), "model": model_cfg.to_dict(), "data": data_info,
                                     "steps_per_epoch": steps_per_epoch, "total_steps": total})
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

    log = _Log(out / LOG, start)

    def checkpoint(step: int) -> None:
        payload = {
            "generator": gen.state_dict(), "discriminator": disc.state_dict(),
            "optimizer_g": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(),
            "step": step, "epoch": step // steps_per_epoch,
            "config": {"model": model_cfg.to_dict(), "train": config.to_dict()},
            "data": data_info, "provenance": provenance(device=str(device), seeds={"seed": config.seed}),
        }
        if ckpt_path.exists():
            os.replace(ckpt_path, out / PREVIOUS)
        save_checkpoint(ckpt_path, payload)

    def samples(step: int) -> None:
        gen.eval()
        with torch.no_grad():
            save_grid(gen(fixed_z()), out / "samples" / f"step_{step:07d}.png")
        gen.train()

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and config.amp)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    order, order_epoch = None, -1
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    window_t, window_images = t0, 0
    step = start
    try:
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(n, config.seed, epoch), epoch
            idx = order[pos * config.batch_size:(pos + 1) * config.batch_size]
            real = to_model_range(images[idx.to(images.device)].to(device, non_blocking=True))
            if cuda:
                real = real.contiguous(memory_format=torch.channels_last)
            z = gen.prior.sample(config.batch_size, generator=_rng(config.seed, 2, step, "cpu"),
                                 device="cpu").to(device)

            with autocast:
                fake = gen(z)
                real_logits = disc(real)
                fake_logits = disc(fake.detach())
                loss_d = d_loss(config.loss, real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            with autocast:
                fake_logits_g = disc(fake)
                loss_g = g_loss(config.loss, fake_logits_g) + gen.prior.regularizer(config.mog_sigma_reg).to(device)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            step += 1
            window_images += config.batch_size

            if step % config.log_every == 0 or step == total:
                ld, lg = float(loss_d.detach()), float(loss_g.detach())
                if not (math.isfinite(ld) and math.isfinite(lg)):
                    raise GanProbeError(f"non-finite loss at step {step} (loss_d={ld}, loss_g={lg}); training "
                                        f"stopped, the last good checkpoint is {ckpt_path}")
                now = time.perf_counter()
                last = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss_d": ld, "loss_g": lg,
                        "d_real": float(torch.sigmoid(real_logits.float()).mean()),
                        "d_fake": float(torch.sigmoid(fake_logits.float()).mean()),
                        "images_per_s": round(window_images / max(now - window_t, 1e-9), 1),
                        "seconds": round(now - t0, 3)}
                window_t, window_images = now, 0
                log.write(last)
                if bar is not None:
                    bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}", img_s=f"{last['images_per_s']:.0f}")
                if callback is not None:
                    callback(step, last)
            if bar is not None:
                bar.update(1)
            if step % config.sample_every == 0 or step == total:
                samples(step)
            if step % config.checkpoint_every == 0 or step == total:
                checkpoint(step)
    finally:
        log.close()
        if bar is not None:
            bar.close()
    if start == total and not ckpt_path.exists():
        checkpoint(step)
    return TrainResult(out, step, total, last.get("loss_d"), last.get("loss_g"), time.perf_counter() - t0, start)


def _total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.max_steps is None and config.epochs is None:
        return 25 * steps_per_epoch
    candidates = [s for s in (config.max_steps,
                              None if config.epochs is None else config.epochs * steps_per_epoch) if s is not None]
    return min(candidates)


def _check_resume_compatible(saved: TrainConfig, given: TrainConfig, path: Path) -> None:
    for name in ("dataset", "preset", "loss"):
        a, b = getattr(saved, name), getattr(given, name)
        if b != TrainConfig.__dataclass_fields__[name].default and a != b:
            raise CheckpointError(f"{path}: checkpoint was trained with {name}={a!r}, but --{name} {b!r} was given")
