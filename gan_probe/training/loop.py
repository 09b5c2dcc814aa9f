"""The training loop: one loop for every model family, paper hyperparameters, atomic checkpoints, exact resume.

Randomness is derived from ``(seed, epoch)`` for the data order and ``(seed, step)`` for a step's noise
(:mod:`.schedule`), so a run resumed from any checkpoint follows exactly the same trajectory as an uninterrupted
one (on the CPU). What is trained is a model family's business (:mod:`.family`: the DCGAN pair of :mod:`.gan`,
the VAE of :mod:`.vae`); the loop reads batches, asks the family for a step, and at its check points logs, saves
sample grids and checkpoints, probes (``--probe-every``) and stops on time, on request or on a non-finite loss.

Distributed (``torchrun --nproc_per_node N -m gan_probe train ...``): ``batch_size`` is the global batch. Every
step draws the same global batch (indices from the epoch's permutation, noise from the step's seed) as a single
process and rank r takes rows ``[r * B/N, (r + 1) * B/N)`` of it; DistributedDataParallel averages the
gradients, so the effective batch and learning rate do not depend on N. With ``sync_bn`` the batch-norm
statistics are those of the global batch too and N processes follow the single-process trajectory up to
floating-point rounding; without it each rank normalises with its own slice's statistics.

>>> from gan_probe.training import TrainConfig, train          # doctest: +SKIP
>>> train(TrainConfig(dataset="digits", preset="small32", max_steps=20), "runs/digits")   # doctest: +SKIP
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ..atomic import remove_stale_temporaries, write_json
from ..models.checkpoint import load_checkpoint, require_training_state
from ..data import ImageSplit, load_split
from ..data.holdout import holdout_split
from ..distributed import DistContext, agree, all_reduce, init_distributed, main_first, main_only
from ..errors import ConfigError
from ..models import ModelConfig, to_model_range
from ..provenance import provenance
from .config import TrainConfig, explicit_options, merge_resume_config, total_steps
from .control import StopRequest, TrainingStopped, check_finite
from .families import build_family
from .family import ModelFamily
from .log import LOG, TrainLog, log_fields
from .rundir import CHECKPOINT, CONFIG, find_start, save_grid, write_checkpoint
from .schedule import epoch_order, rank_rows

Callback = Callable[[int, dict[str, float]], None]


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
    losses: dict[str, float] = field(default_factory=dict)  # the last log row's main losses (the progress bar's)


@dataclass
class RunPlan:
    """What a run trains on and for how long, settled before anything is written."""

    config: TrainConfig
    model_cfg: ModelConfig
    data: ImageSplit
    steps_per_epoch: int
    total: int
    start: int  # the step training starts from (0, or the checkpoint's)
    resumed: bool
    seconds_before: float  # training time the checkpoint records (log.csv's seconds count the whole run)
    data_info: dict[str, Any]
    dist_info: dict[str, Any]


def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = False, progress: bool = False,
          callback: Callback | None = None, given: Iterable[str] | None = None) -> TrainResult:
    """Train (or resume) a model into ``out_dir``; returns a summary. See :class:`TrainConfig`.

    Under ``torchrun`` (``WORLD_SIZE`` set) every rank calls this function: the process group is started from
    the environment if needed (:func:`gan_probe.distributed.init_distributed`), the modules are wrapped in
    DistributedDataParallel, each rank trains on its ``batch_size / world_size`` slice of every global batch,
    and only rank 0 writes files, shows the progress bar and calls ``callback``. The caller destroys the
    process group (:func:`gan_probe.distributed.shutdown`).

    ``given`` names the options the user set explicitly (the CLI passes them); on ``resume`` an explicit
    option that disagrees with the checkpoint's training options is an error, runtime options (``epochs``,
    ``max_steps``, ``device``, ``amp``, ``sync_bn``, ``compile``, the ``*_every`` intervals) take the new
    value. ``None``: options that differ from the defaults count as given.
    """
    from ..locks import output_lock

    with output_lock(out_dir, "--out", ctx=init_distributed(config.device)):  # rank 0 locks the run directory
        return _train(config, out_dir, resume, progress, callback, given)


def _train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool, progress: bool,
           callback: Callback | None, given: Iterable[str] | None) -> TrainResult:
    ctx = init_distributed(config.device)
    out = Path(out_dir)
    config, state = resume_state(config, out, resume, given, ctx)
    plan = plan_run(config, state, ctx, progress)
    family = build_family(config, plan.model_cfg, ctx, state)
    probe, probe_info = start_online_probe(plan, out, ctx, progress)
    main_only(lambda: open_run(out, plan, family, probe_info, ctx), ctx)
    return TrainingLoop(out, plan, family, probe, ctx, progress, callback).run()


def resume_state(config: TrainConfig, out: Path, resume: bool, given: Iterable[str] | None,
                 ctx: DistContext) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The run's configuration and the checkpoint it resumes from (None: a fresh run)."""
    explicit = explicit_options(config, given)
    found = main_only(lambda: find_start(out, resume), ctx)  # rank 0 chooses; refuses to overwrite a run
    if found is None:
        return config, None
    state = agree(lambda: load_checkpoint(found), ctx)  # every rank reads the file rank 0 chose
    require_training_state(state, found)
    saved = TrainConfig.from_dict(state["config"]["train"])
    return merge_resume_config(saved, config, explicit, Path(found)), state


def plan_run(config: TrainConfig, state: dict[str, Any] | None, ctx: DistContext, progress: bool) -> RunPlan:
    """Load the training images and settle the batch, the steps and what the run records about them."""
    if config.batch_size % ctx.world_size:
        raise ConfigError(f"--batch-size {config.batch_size}: the global batch must be divisible by the world "
                          f"size {ctx.world_size} (each rank takes batch-size / world-size images)")
    model_cfg = config.model_config()
    data = main_first(lambda: load_split(config.dataset, config.data_root, config.split,
                                         image_size=model_cfg.image_size, download=config.download,
                                         progress=progress and ctx.is_main), ctx)
    if config.holdout is not None:  # train only on what the probe's --holdout keeps for training
        data, _ = holdout_split(data, config.holdout, config.holdout_seed)
    if len(data) < config.batch_size:
        raise ConfigError(f"--batch-size {config.batch_size}: the {config.dataset} {config.split} split has only "
                          f"{len(data)} images")
    steps_per_epoch = len(data) // config.batch_size
    data_info = data.describe()
    if "holdout" in data.info:
        data_info["holdout"] = data.info["holdout"]
    dist_info = {**ctx.describe(), "global_batch": config.batch_size,
                 "per_rank_batch": config.batch_size // ctx.world_size, "sync_bn": config.sync_bn}
    return RunPlan(config, model_cfg, data, steps_per_epoch, total_steps(config, steps_per_epoch),
                   start=int(state["step"]) if state is not None else 0, resumed=state is not None,
                   seconds_before=float(state.get("seconds") or 0.0) if state is not None else 0.0,
                   data_info=data_info, dist_info=dist_info)


def start_online_probe(plan: RunPlan, out: Path, ctx: DistContext, progress: bool):
    """``--probe-every``: rank 0 loads the probe's images once (before anything is written, so bad settings
    leave no trace). Returns (the probe on rank 0, else None; its description on every rank, None without)."""
    config = plan.config
    if config.probe_every is None:
        return None, None
    from .probe import BestProbe, OnlineProbe

    box: list[BestProbe] = []

    def make() -> dict[str, Any]:
        probe = OnlineProbe(config.probe_settings(), plan.model_cfg, config.probe_data_root, ctx.device,
                            progress=progress)
        box.append(BestProbe(probe, out, plan.steps_per_epoch))
        return box[0].info

    info = main_only(make, ctx)
    return (box[0] if box else None), info


def open_run(out: Path, plan: RunPlan, family: ModelFamily, probe_info: dict[str, Any] | None,
             ctx: DistContext) -> None:
    """Rank 0: create the run directory, clear what a killed run was writing, write config.json."""
    config = plan.config
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, recursive=True)  # what a killed run was writing (checkpoint, samples)
    write_json(out / CONFIG, {"family": family.name, "train": config.to_dict(), "model": plan.model_cfg.to_dict(),
                              "data": plan.data_info,
                              "steps_per_epoch": plan.steps_per_epoch, "total_steps": plan.total,
                              "distributed": plan.dist_info, **family.describe(), "probe": probe_info,
                              "provenance": provenance(device=str(ctx.device), seeds={"seed": config.seed})})


def training_images(data: ImageSplit, device: torch.device) -> torch.Tensor:
    """The uint8 images as a tensor: in memory when they fit comfortably (random batches from a memory map
    thrash on large data), on the GPU when they fit there."""
    if data.images.nbytes < 4 * 2 ** 30:
        images = torch.from_numpy(np.array(data.images))
    else:  # a read-only memory map: batches are copied out of it, never written
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            images = torch.from_numpy(np.asarray(data.images))
    if device.type == "cuda" and images.numel() < 8 * 2 ** 30:
        images = images.to(device)  # GPU-resident uint8 data
    return images


class TrainingLoop:
    """Runs a planned run's steps from ``plan.start`` to ``plan.total`` (or the deadline, or a stop request)."""

    def __init__(self, out: Path, plan: RunPlan, family: ModelFamily, probe, ctx: DistContext, progress: bool,
                 callback: Callback | None):
        self.out, self.plan, self.config, self.family, self.ctx = out, plan, plan.config, family, ctx
        self.probe, self.callback = probe, callback
        self.probing_on = self.config.probe_every is not None
        self.ckpt_path = out / CHECKPOINT
        self.images = training_images(plan.data, ctx.device)
        fields = log_fields(family.log_fields, probe=family.online_probe)
        self.log = TrainLog(out / LOG, plan.start, fields) if ctx.is_main else None
        self.saved_step = plan.start if plan.resumed else None  # the step of the checkpoint on disk
        if probe is not None and plan.resumed:
            probe.resume_at(plan.start)
        self.bar = None
        if progress and ctx.is_main:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=plan.total, initial=plan.start, desc="train", unit="step", dynamic_ncols=True)
        # per-step losses, kept on the device and inspected at the check points (log, sample, checkpoint)
        c = self.config
        window = min(c.log_every, c.sample_every, c.checkpoint_every, max(plan.total - plan.start, 1))
        self.losses = torch.zeros(window, len(family.loss_names), device=ctx.device)
        self.since = 0  # steps recorded in ``losses`` since the last check
        self.order, self.order_epoch = None, -1
        self.last: dict[str, float] = {}
        self.rows = rank_rows(ctx.rank, ctx.world_size, c.batch_size)  # this rank's part of a global batch
        self.step = plan.start
        self.out_of_time = False
        self.stopping = False  # a stop was requested (Ctrl-C, SIGTERM): checkpoint after this step, then stop

    def run(self) -> TrainResult:
        self.t0 = time.perf_counter()
        self.window_t, self.window_images = self.t0, 0
        self.deadline = None if self.config.max_minutes is None else self.t0 + 60 * self.config.max_minutes
        self.stop = StopRequest(self.ckpt_path)
        self.stop.install()
        try:
            if self.probing_on and not self.plan.resumed:
                self.probe_untrained()
            while self.step < self.plan.total and not self.advance():
                pass
        finally:
            self.stop.restore()
            if self.log is not None:
                self.log.close()
            if self.bar is not None:
                self.bar.close()
        if self.ctx.is_main and self.plan.start == self.plan.total and not self.ckpt_path.exists():
            self.checkpoint(self.step)
        return TrainResult(self.out, self.step, self.plan.total, self.last.get("loss_d"), self.last.get("loss_g"),
                           time.perf_counter() - self.t0, self.plan.start, self.ctx.world_size,
                           {k: self.last[k] for k in self.family.postfix_fields if k in self.last})

    # -- one step ---------------------------------------------------------------------------------------------

    def advance(self) -> bool:
        """Train one step, then do what its check point asks; True when the run stops here (out of time)."""
        c = self.config
        self.losses[self.since] = self.family.losses(self.step, self.batch(self.step), self.rows)
        self.since += 1
        self.step += 1
        step = self.step
        self.window_images += c.batch_size
        probing = self.probing_on and (step % c.probe_every == 0 or step == self.plan.total)
        logging = step % c.log_every == 0 or step == self.plan.total or probing
        self.agree_on_stopping(logging)
        if not (logging or self.stopping or step % c.sample_every == 0 or step % c.checkpoint_every == 0):
            if self.bar is not None:
                self.bar.update(1)
            return False
        check_finite(self.losses[:self.since], step, self.ctx, self.ckpt_path, self.saved_step,
                     self.family.loss_names)
        self.since = 0
        new_best = self.log_row(step, probing) if logging else False
        if self.bar is not None:
            self.bar.update(1)
        self.write_outputs(step, new_best)
        if self.stopping and step < self.plan.total:
            raise TrainingStopped(f"stopped at step {step} of {self.plan.total} on request; checkpoint written to "
                                  f"{self.ckpt_path}")
        return self.out_of_time

    def batch(self, step: int) -> torch.Tensor:
        """This rank's rows of the step's global batch, in [-1, 1] on the device."""
        epoch, pos = divmod(step, self.plan.steps_per_epoch)
        if epoch != self.order_epoch:
            self.order = epoch_order(len(self.plan.data), self.config.seed, epoch).to(self.images.device)
            self.order_epoch = epoch
        size = self.config.batch_size
        idx = self.order[pos * size:(pos + 1) * size][self.rows]
        real = to_model_range(self.images[idx].to(self.ctx.device, non_blocking=True))
        return self.family.prepare_input(real)

    def agree_on_stopping(self, logging: bool) -> None:
        """Whether the run is out of time or asked to stop; every rank stops at the same step: under torchrun
        they agree at log steps on the deadline and on stop requests."""
        requested = self.stop.signal is not None
        if self.ctx.enabled:
            if logging and not (self.out_of_time or self.stopping):
                flags = torch.tensor([float(self.deadline is not None and time.perf_counter() >= self.deadline),
                                      float(requested)], device=self.ctx.device)
                late, wanted = all_reduce(flags, "max", self.ctx).tolist()
                self.out_of_time, self.stopping = bool(late), bool(wanted)
        else:
            if logging and self.deadline is not None and not self.out_of_time:
                self.out_of_time = time.perf_counter() >= self.deadline
            self.stopping = requested  # one process stops after the step it is in

    def log_row(self, step: int, probing: bool) -> bool:
        """The step's log.csv row (and the probe's score on probe steps); True on a new best probe score."""
        stats = all_reduce(self.family.log_stats(), "mean", self.ctx).tolist()
        now = time.perf_counter()
        self.last = {"step": step, "epoch": round(step / self.plan.steps_per_epoch, 4),
                     **dict(zip(self.family.log_fields, stats)),
                     "images_per_s": round(self.window_images / max(now - self.window_t, 1e-9), 1),
                     "seconds": round(self.plan.seconds_before + now - self.t0, 3)}
        self.window_t, self.window_images = now, 0
        new_best = False
        if probing:  # rank 0 probes, the other ranks wait for its answer
            accuracy, seconds, new_best = main_only(lambda: self.score_probe(step), self.ctx)
            self.last.update(probe_acc=accuracy, probe_seconds=round(seconds, 3))
            self.window_t = time.perf_counter()  # the probe's time is not training throughput
        if self.ctx.is_main:
            self.log.write(self.last)
            if self.bar is not None:
                self.bar.set_postfix(**{k: f"{self.last[k]:.3f}" for k in self.family.postfix_fields},
                                     img_s=f"{self.last['images_per_s']:.0f}")
            if self.callback is not None:
                self.callback(step, self.last)
        return new_best

    def write_outputs(self, step: int, new_best: bool) -> None:
        """The sample grid and the checkpoint this step is due (rank 0 writes them)."""
        c = self.config
        if self.ctx.is_main and (step % c.sample_every == 0 or step == self.plan.total or self.out_of_time):
            save_grid(self.family.samples(), self.out / "samples" / f"step_{step:07d}.png")
        if (step % c.checkpoint_every == 0 or step == self.plan.total or self.out_of_time or self.stopping
                or new_best):
            if self.ctx.is_main:
                self.checkpoint(step)
            self.saved_step = step

    # -- checkpoints and the online probe ---------------------------------------------------------------------

    def payload(self, step: int) -> dict[str, Any]:
        return {
            "family": self.family.name, **self.family.state(),
            "step": step, "epoch": step // self.plan.steps_per_epoch,
            "seconds": round(self.plan.seconds_before + time.perf_counter() - self.t0, 3),  # training time so far
            "config": {"model": self.plan.model_cfg.to_dict(), "train": self.config.to_dict()},
            "data": self.plan.data_info, "distributed": self.plan.dist_info,
            "provenance": provenance(device=str(self.ctx.device), seeds={"seed": self.config.seed}),
        }

    def checkpoint(self, step: int) -> None:
        write_checkpoint(self.out, self.payload(step))

    def score_probe(self, step: int) -> tuple[float, float, bool] | None:
        """Rank 0: the probe's (accuracy, seconds, new best) for the family's discriminator at ``step``."""
        if not self.ctx.is_main:
            return None
        return self.probe(step, self.family.probe_target, lambda: self.payload(step))

    def probe_untrained(self) -> None:
        """Step 0 of a fresh run with a probe: the untrained D, the random-weights reference (with its
        best_probe.pt and a checkpoint, like every new best)."""
        accuracy, seconds, _ = main_only(lambda: self.score_probe(0), self.ctx)
        if self.ctx.is_main:
            seconds_so_far = round(self.plan.seconds_before + time.perf_counter() - self.t0, 3)
            row = {"step": 0, "epoch": 0.0, "seconds": seconds_so_far, "probe_acc": accuracy,
                   "probe_seconds": round(seconds, 3)}
            self.log.write(row)
            if self.callback is not None:
                self.callback(0, row)
            self.checkpoint(0)
        self.saved_step = 0
        self.window_t = time.perf_counter()
