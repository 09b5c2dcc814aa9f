"""Training options (:class:`TrainConfig`): validated when built, merged with a checkpoint's on resume.

>>> TrainConfig(dataset="digits", max_steps=20).lr
0.0002
>>> total_steps(TrainConfig(epochs=2), steps_per_epoch=10)
20
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..data import DATASETS
from ..errors import CheckpointError, ConfigError
from ..models import ModelConfig, preset_config
from ..models.losses import LOSSES
from ..records import from_known_fields
from .family import FAMILIES
from .probe import DEFAULT_C as PROBE_C


@dataclass
class TrainConfig:
    """Training options. Defaults are the paper's: Adam(2e-4, beta1=0.5), batch 128, N(0, 0.02) init."""

    family: str = "dcgan"  # the model family (gan_probe.training.family.FAMILIES): "dcgan" or "vae"
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
    # the online linear probe (gan_probe.training.probe): every probe_every steps, on the train split of
    # probe_dataset; logged as probe_acc, the best checkpoint kept as best_probe.pt
    probe_every: int | None = None
    probe_dataset: str | None = None
    probe_data_root: str | None = None
    probe_images: int = 2000
    probe_layers: list[int] | None = None  # 0-based conv layers; None: all
    probe_C: float = PROBE_C
    probe_seed: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"--model {self.family!r}: expected one of {', '.join(FAMILIES)}")
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
        self._check_family()

    def _check_family(self) -> None:
        if self.family != "vae":
            return
        if self.probe_every is not None:
            raise ConfigError("--probe-every: the online probe scores a DCGAN discriminator; with --model vae probe "
                              "the encoder after training (gan-probe extract, then svm)")
        if self.model.get("latent", "normal") != "normal":
            raise ConfigError(f"--latent {self.model['latent']}: a VAE's prior is N(0, I); use --latent normal (the "
                              f"default with --model vae)")

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
        """The :class:`~gan_probe.training.probe.ProbeSettings` of ``--probe-*`` (None without --probe-every)."""
        if self.probe_every is None:
            return None
        from .probe import ProbeSettings

        layers = None if self.probe_layers is None else tuple(self.probe_layers)
        return ProbeSettings(self.probe_dataset, self.probe_images, layers, self.probe_C, self.probe_seed)

    def model_config(self) -> ModelConfig:
        if self.family == "vae":  # the prior of a VAE is N(0, I), whatever the preset's GAN prior
            return preset_config(self.preset, **{"latent": "normal", **self.model})
        return preset_config(self.preset, **self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return from_known_fields(cls, data, "train config")


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.max_steps is None and config.epochs is None:
        return 25 * steps_per_epoch
    candidates = [s for s in (config.max_steps,
                              None if config.epochs is None else config.epochs * steps_per_epoch) if s is not None]
    return min(candidates)



# options that may change when a run is resumed (they do not define the trajectory on a given machine; the
# --probe-* options only decide what is measured along it)
RUNTIME_OPTIONS = ("epochs", "max_steps", "max_minutes", "device", "data_root", "download", "amp", "sync_bn",
                   "compile", "cuda_graphs", "log_every", "sample_every", "checkpoint_every", "probe_every",
                   "probe_dataset", "probe_data_root", "probe_images", "probe_layers", "probe_C", "probe_seed")
ALWAYS_FROM_CALL = ("epochs", "max_steps", "max_minutes", "device")


def explicit_options(config: TrainConfig, given: Iterable[str] | None) -> set[str]:
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
            flag = "model" if name == "family" else name.replace("_", "-")
            raise CheckpointError(f"{path}: checkpoint was trained with {name}={getattr(saved, name)!r}, but "
                                  f"--{flag} {getattr(given, name)!r} was given")
    merged = saved.to_dict()
    for name in RUNTIME_OPTIONS:
        if name in ALWAYS_FROM_CALL or name in explicit:
            merged[name] = getattr(given, name)
    merged["data_root"] = given.data_root or saved.data_root
    return TrainConfig.from_dict(merged)
