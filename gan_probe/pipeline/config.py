"""Pipeline configuration: typed sections loaded from TOML and validated with one-line errors.

Unknown keys, wrong types and missing data roots are reported with the file, the section and the key, e.g.
``cifar10-paper.toml: [train].max_step: unknown key; expected one of batch_size, beta1, ...``.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NEEDS_ROOT = ("cifar10", "svhn", "imagenet", "folder")


@dataclass
class TrainSection:
    """[train]: the GAN to train (or ``checkpoint`` to skip training and probe an existing one)."""

    dataset: str = "digits"
    data_root: str = ""
    checkpoint: str = ""
    preset: str = "small32"
    image_size: int = 0
    nz: int = 0
    ngf: int = 0
    ndf: int = 0
    latent: str = ""
    loss: str = "bce"
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    epochs: int = 0
    max_steps: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500


@dataclass
class ProbeSection:
    """[probe]: the labelled data the features are probed on, and the SVM protocols."""

    dataset: str = "digits"
    data_root: str = ""
    holdout: int = 0  # > 0: hold out this many training images as the test set
    grid: int = 4
    layers: list[int] = field(default_factory=list)
    bn: str = "recompute"
    protocols: list[str] = field(default_factory=lambda: ["full", "few-labels"])
    labels_per_class: list[int] = field(default_factory=lambda: [400])
    draws: int = 10
    C: str = "auto"
    C_grid: list[float] = field(default_factory=list)
    C_patience: int = 0  # full labels: stop the C grid after this many values below the best (0: fit it all)
    svhn_labels: int = 1000
    svhn_val_size: int = 10000
    solver: str = "torch"


@dataclass
class KMeansSection:
    """[kmeans]: the Coates & Ng baseline (one feature store per centroid count)."""

    enabled: bool = True
    centroids: list[int] = field(default_factory=lambda: [1600])
    patches: int = 400_000
    patch: int = 6
    stride: int = 1
    whiten: bool = True
    encoder: str = "triangle"


@dataclass
class BaselinesSection:
    """[baselines]: the honest baselines probed with the same SVM code."""

    random_d: bool = True
    pixels: bool = True


@dataclass
class MetricsSection:
    """[metrics]: sample quality of the generator (skipped with the reason when weights are unavailable)."""

    fid: bool = True
    inception_score: bool = True
    samples: int = 10_000
    splits: int = 10
    inception_weights: str = ""


@dataclass
class ReportSection:
    formats: list[str] = field(default_factory=lambda: ["md", "tex", "csv"])


@dataclass
class PipelineConfig:
    name: str = "pipeline"
    seed: int = 0
    device: str = "auto"
    train: TrainSection = field(default_factory=TrainSection)
    probe: ProbeSection = field(default_factory=ProbeSection)
    kmeans: KMeansSection = field(default_factory=KMeansSection)
    baselines: BaselinesSection = field(default_factory=BaselinesSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    report: ReportSection = field(default_factory=ReportSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any], source: str, section: str | None = None) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{source}: [{section}]." if section else f"{source}: "
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key; expected one of {', '.join(sorted(names))}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key}: expected a [{key}] table")
            kwargs[key] = _build(hint, value, source, key)
        else:
            kwargs[key] = _check_type(value, hint, f"{prefix}{key}")
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], source: str = "config") -> PipelineConfig:
    config = _build(PipelineConfig, data, source)
    validate(config, source)
    return config


def load_config(path: str | os.PathLike | None = None) -> PipelineConfig:
    """Read and validate a pipeline TOML file; ``None`` gives the embedded default (digits)."""
    if path is None:
        return default_config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(data, path.name)


def default_config() -> PipelineConfig:
    """The embedded default: small DCGAN on scikit-learn's digits, with every baseline, under 5 CPU minutes."""
    from importlib.resources import files

    text = files("gan_probe").joinpath("configs", "digits-default.toml").read_text()
    return config_from_dict(tomllib.loads(text), "digits-default.toml")


def validate(config: PipelineConfig, source: str) -> None:
    from ..data import DATASETS
    from ..models import PRESETS
    from ..models.losses import LOSSES

    for section in ("train", "probe"):
        sec = getattr(config, section)
        if sec.dataset not in DATASETS:
            raise ConfigError(f"{source}: [{section}].dataset {sec.dataset!r}: expected one of {', '.join(DATASETS)}")
        if section == "train" and sec.checkpoint:
            if not Path(sec.checkpoint).is_file():
                raise ConfigError(f"{source}: [train].checkpoint {sec.checkpoint}: file not found")
            continue
        if sec.dataset in NEEDS_ROOT:
            if not sec.data_root:
                raise ConfigError(f"{source}: [{section}].data_root is missing (needed for dataset {sec.dataset})")
            if not Path(sec.data_root).exists():
                raise ConfigError(f"{source}: [{section}].data_root {sec.data_root}: no such file or directory")
    if config.train.preset not in PRESETS:
        raise ConfigError(f"{source}: [train].preset {config.train.preset!r}: expected one of {', '.join(PRESETS)}")
    if config.train.loss not in LOSSES:
        raise ConfigError(f"{source}: [train].loss {config.train.loss!r}: expected one of {', '.join(LOSSES)}")
    if not 0 <= config.train.beta1 < 1:  # Adam's decay rate (NaN fails the comparison too)
        raise ConfigError(f"{source}: [train].beta1 must be in [0, 1), got {config.train.beta1}")
    allowed = ("full", "few-labels", "svhn")
    for p in config.probe.protocols:
        if p not in allowed:
            raise ConfigError(f"{source}: [probe].protocols: {p!r} is not one of {', '.join(allowed)}")
    if config.probe.C != "auto":
        try:
            c = float(config.probe.C)
        except ValueError:
            raise ConfigError(f"{source}: [probe].C must be \"auto\" or a positive number, got {config.probe.C!r}") from None
        if c <= 0:
            raise ConfigError(f"{source}: [probe].C must be positive, got {c}")
    if config.probe.C_patience < 0:
        raise ConfigError(f"{source}: [probe].C_patience must be 0 (fit the whole grid) or positive, got "
                          f"{config.probe.C_patience}")
    for fmt in config.report.formats:
        if fmt not in ("md", "tex", "csv"):
            raise ConfigError(f"{source}: [report].formats: {fmt!r} is not one of md, tex, csv")
