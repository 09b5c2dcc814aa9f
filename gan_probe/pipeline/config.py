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

from ..errors import ConfigError, GanProbeError
from ..probe.settle import DEFAULT_SETTLE_STEPS
from ..protocol_names import FEW_LABELS, FULL, PROTOCOLS, SVHN

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NEEDS_ROOT = ("cifar10", "svhn", "imagenet", "folder")


@dataclass
class TrainingKeys:
    """The training keys [train] and [vae] share; 0 means the preset's value (``epochs``, ``max_steps``: unset)."""

    preset: str = "small32"
    image_size: int = 0
    nz: int = 0
    ngf: int = 0
    ndf: int = 0
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    epochs: int = 0
    max_steps: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500

    MODEL_KEYS = ("image_size", "nz", "ngf", "ndf")  # what goes into TrainConfig.model when set (class constant)


@dataclass
class TrainSection(TrainingKeys):
    """[train]: the GAN to train (or ``checkpoint`` to skip training and probe an existing one)."""

    dataset: str = "digits"
    data_root: str = ""
    checkpoint: str = ""
    latent: str = ""
    loss: str = "bce"


@dataclass
class ProbeSection:
    """[probe]: the labelled data the features are probed on, and the SVM protocols."""

    dataset: str = "digits"
    data_root: str = ""
    holdout: int = 0  # > 0: hold out this many training images as the test set
    grid: int = 4
    layers: list[int] = field(default_factory=list)
    bn: str = "recompute"
    protocols: list[str] = field(default_factory=lambda: [FULL, FEW_LABELS])
    labels_per_class: list[int] = field(default_factory=lambda: [400])
    draws: int = 10
    C: str = "auto"
    C_grid: list[float] = field(default_factory=list)
    C_patience: int = 0  # full labels: stop the C grid after this many values below the best (0: fit it all)
    settle: int = DEFAULT_SETTLE_STEPS  # full labels: grid fits stop after this many Newton steps with (almost) no
    #                                     changed validation prediction (0: every grid fit runs to the tolerance)
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
class VaeSection(TrainingKeys):
    """[vae]: a VAE (``gan-probe train --model vae``) trained in ``OUT/vae`` on [train]'s data unless ``dataset`` is
    given; its encoder's store (``conv1`` .. ``convN`` pooled like D's, and ``mu``) is probed like the other stores.
    The training keys are [train]'s; 0 or an empty string means the preset's value (``layers``: every layer)."""

    enabled: bool = False
    dataset: str = ""
    data_root: str = ""
    layers: list[str] = field(default_factory=list)  # names (conv1 .. convN, mu) or 0-based indices


@dataclass
class KnnSection:
    """[knn]: a kNN result (``gan-probe knn``) next to every SVM result: the same stores, protocols, draws and label
    budgets, k (and T) chosen on the same kind of validation split; empty grids are the knn command's defaults."""

    enabled: bool = False
    vote: str = "weighted"
    k_grid: list[int] = field(default_factory=list)
    T_grid: list[float] = field(default_factory=list)


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
    vae: VaeSection = field(default_factory=VaeSection)
    knn: KnnSection = field(default_factory=KnnSection)
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
    """Every value of ``config``, before anything runs; errors name the file, section and key."""
    from ..data import DATASETS
    from ..models import LATENTS, PRESETS
    from ..models.losses import LOSSES

    _check_name_and_device(config, source)
    _check_numbers(config, source)

    for section in ("train", "probe", "vae"):
        sec = getattr(config, section)
        if section == "vae" and not sec.dataset:  # the VAE trains on [train]'s data
            continue
        if sec.dataset not in DATASETS:
            raise ConfigError(f"{source}: [{section}].dataset {sec.dataset!r}: expected one of {', '.join(DATASETS)}")
        if section == "train" and sec.checkpoint:
            if not Path(sec.checkpoint).is_file():
                raise ConfigError(f"{source}: [train].checkpoint {sec.checkpoint}: file not found")
            if not config.vae.enabled or config.vae.dataset:
                continue
        if sec.dataset in NEEDS_ROOT:
            if not sec.data_root:
                raise ConfigError(f"{source}: [{section}].data_root is missing (needed for dataset {sec.dataset})")
            if not Path(sec.data_root).exists():
                raise ConfigError(f"{source}: [{section}].data_root {sec.data_root}: no such file or directory")
    for section in ("train", "vae"):
        preset = getattr(config, section).preset
        if preset not in PRESETS:
            raise ConfigError(f"{source}: [{section}].preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if config.train.loss not in LOSSES:
        raise ConfigError(f"{source}: [train].loss {config.train.loss!r}: expected one of {', '.join(LOSSES)}")
    if config.train.latent and config.train.latent not in LATENTS:
        raise ConfigError(f"{source}: [train].latent {config.train.latent!r}: expected one of {', '.join(LATENTS)}")
    for p in config.probe.protocols:
        if p not in PROTOCOLS:
            raise ConfigError(f"{source}: [probe].protocols: {p!r} is not one of {', '.join(PROTOCOLS)}")
    if config.probe.C_patience < 0:
        raise ConfigError(f"{source}: [probe].C_patience must be 0 (fit the whole grid) or positive, got "
                          f"{config.probe.C_patience}")
    for protocol, per_class in probe_runs(config):  # the SVM stages' settings, checked as they will be built
        try:
            probe_run_config(config, protocol, per_class)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    for fmt in config.report.formats:
        if fmt not in ("md", "tex", "csv"):
            raise ConfigError(f"{source}: [report].formats: {fmt!r} is not one of md, tex, csv")
    _check_with_the_stages_own_rules(config, source)


def train_config(config: PipelineConfig):
    """The :class:`~gan_probe.training.TrainConfig` of the [train] section."""
    t = config.train
    return _training_config(config, t, t.dataset, t.data_root, model={"latent": t.latent}, loss=t.loss)


def vae_train_config(config: PipelineConfig):
    """The :class:`~gan_probe.training.TrainConfig` of the [vae] section (``family="vae"``), on [train]'s data unless
    [vae] names its own."""
    v, t = config.vae, config.train
    dataset, data_root = (v.dataset, v.data_root) if v.dataset else (t.dataset, t.data_root)
    return _training_config(config, v, dataset, data_root, family="vae")


def _training_config(config: PipelineConfig, keys: TrainingKeys, dataset: str, data_root: str,
                     model: dict[str, Any] | None = None, **extra: Any):
    """A TrainConfig from a section's training keys (unset model values left to the preset)."""
    from ..training import TrainConfig

    model = {k: v for k, v in {**{k: getattr(keys, k) for k in TrainingKeys.MODEL_KEYS}, **(model or {})}.items()
             if v}
    return TrainConfig(dataset=dataset, data_root=data_root or None, preset=keys.preset, model=model,
                       batch_size=keys.batch_size, lr=keys.lr, beta1=keys.beta1, epochs=keys.epochs or None,
                       max_steps=keys.max_steps or None, seed=config.seed, device=config.device,
                       sample_every=keys.sample_every, checkpoint_every=keys.checkpoint_every, **extra)


def vae_layers(config: PipelineConfig) -> tuple[int | str, ...] | None:
    """``[vae].layers`` as extract takes them: names as given, digits as 0-based indices (None: every layer)."""
    return tuple(int(v) if v.isdigit() else v for v in config.vae.layers) or None


def probe_runs(config: PipelineConfig) -> list[tuple[str, int | None]]:
    """``(protocol, labels per class)`` of each SVM run on a feature store, in order: one per protocol, and for
    the few-labels protocol one per ``[probe].labels_per_class`` value."""
    return [(protocol, per_class) for protocol in config.probe.protocols
            for per_class in (config.probe.labels_per_class if protocol == FEW_LABELS else [None])]


def probe_run_config(config: PipelineConfig, protocol: str, per_class: int | None = None):
    """The :class:`~gan_probe.probe.ProbeConfig` of one SVM run, built by :func:`gan_probe.probe.probe_config` as
    ``gan-probe svm`` builds its own; errors name the settings as this file spells them (``[probe].C_grid``).

    The [probe] section's "unset" values (an empty ``C_grid``, ``C_patience = 0``) become the probe's defaults here;
    ``draws`` applies to the label-draw protocols, ``C_patience`` to the full-label one.
    """
    from ..probe import probe_config
    from ..probe.config import PIPELINE_NAMES

    p = config.probe
    settings: dict[str, Any] = {}
    if protocol == FEW_LABELS:
        settings = {"labels_per_class": per_class, "draws": p.draws}
    elif protocol == SVHN:
        settings = {"labels": p.svhn_labels, "val_size": p.svhn_val_size, "draws": p.draws}
    else:
        settings = {"C_patience": p.C_patience or None, "settle": p.settle}
    return probe_config(C=p.C, C_grid=p.C_grid or None, seed=config.seed, solver=p.solver, device=config.device,
                        names=PIPELINE_NAMES, **settings)


def knn_run_config(config: PipelineConfig, protocol: str, per_class: int | None = None):
    """The :class:`~gan_probe.probe.knn.KnnConfig` of the kNN run beside one SVM run: the same protocol, label draws
    and budgets ([probe].draws, labels_per_class, svhn_labels, svhn_val_size) and seed; [knn]'s vote and grids."""
    from ..probe.knn import DEFAULT_K_GRID, DEFAULT_T_GRID, KnnConfig

    p, k = config.probe, config.knn
    settings: dict[str, Any] = {}
    if protocol == FEW_LABELS:
        settings = {"labels_per_class": per_class, "draws": p.draws}
    elif protocol == SVHN:
        settings = {"labels": p.svhn_labels, "val_size": p.svhn_val_size, "draws": p.draws}
    return KnnConfig(vote=k.vote, k_grid=tuple(k.k_grid) or DEFAULT_K_GRID, T_grid=tuple(k.T_grid) or DEFAULT_T_GRID,
                     seed=config.seed, device=config.device, **settings)


def kmeans_configs(config: PipelineConfig) -> list:
    """The :class:`~gan_probe.baselines.KMeansConfig` of each k-means feature store ([kmeans], one per centroid
    count; none when disabled)."""
    if not config.kmeans.enabled:
        return []
    from ..baselines import KMeansConfig

    k = config.kmeans
    return [KMeansConfig(centroids=n, patch=k.patch, stride=k.stride, patches=k.patches, whiten=k.whiten,
                         encoder=k.encoder, seed=config.seed) for n in k.centroids]


# (section, key, smallest allowed value): counts and sizes; 0 means "unset" where the smallest is 0
TRAINING_MINIMA = (("image_size", 0), ("nz", 0), ("ngf", 0), ("ndf", 0), ("batch_size", 1), ("epochs", 0),
                   ("max_steps", 0), ("sample_every", 1), ("checkpoint_every", 1))  # of TrainingKeys
MINIMA = (*(("train", key, least) for key, least in TRAINING_MINIMA),
          ("probe", "holdout", 0), ("probe", "grid", 1), ("probe", "draws", 1),
          ("probe", "svhn_labels", 1), ("probe", "svhn_val_size", 1), ("kmeans", "patches", 1),
          ("kmeans", "patch", 1), ("kmeans", "stride", 1), ("metrics", "samples", 2), ("metrics", "splits", 1),
          *(("vae", key, least) for key, least in TRAINING_MINIMA))
CHOICES = (("probe", "bn", ("recompute", "checkpoint")), ("probe", "solver", ("torch", "liblinear")),
           ("kmeans", "encoder", ("triangle", "hard")), ("knn", "vote", ("weighted", "majority")))


def _check_name_and_device(config: PipelineConfig, source: str) -> None:
    name = config.name
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name) \
            or "\0" in name:
        raise ConfigError(f"{source}: name {name!r}: expected a single path component (the default output directory "
                          f"is runs/<name>), e.g. \"cifar10-paper\"")
    from ..devices import resolve_device

    try:
        resolve_device(config.device)
    except (ConfigError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{source}: device {config.device!r}: {_detail(exc)}") from None


def _check_numbers(config: PipelineConfig, source: str) -> None:
    import math

    for section, key, least in MINIMA:
        value = getattr(getattr(config, section), key)
        if value < least:
            raise ConfigError(f"{source}: [{section}].{key} must be at least {least}, got {value}")
    for section, key, allowed in CHOICES:
        value = getattr(getattr(config, section), key)
        if value not in allowed:
            raise ConfigError(f"{source}: [{section}].{key} {value!r}: expected one of {', '.join(allowed)}")
    p, k = config.probe, config.kmeans
    for section in ("train", "vae"):
        sec = getattr(config, section)
        if not (math.isfinite(sec.lr) and sec.lr > 0):
            raise ConfigError(f"{source}: [{section}].lr must be a positive number, got {sec.lr}")
        if not 0 <= sec.beta1 < 1:  # Adam's decay rate (NaN fails the comparison too)
            raise ConfigError(f"{source}: [{section}].beta1 must be in [0, 1), got {sec.beta1}")
    bad = [v for v in config.knn.k_grid if v < 1]
    if bad:
        raise ConfigError(f"{source}: [knn].k_grid: {bad[0]} is below 1 (the number of neighbours)")
    bad = [v for v in config.knn.T_grid if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ConfigError(f"{source}: [knn].T_grid value {bad[0]}: the temperature must be a positive number")
    for key, values, least in (("layers", p.layers, 0), ("labels_per_class", p.labels_per_class, 1)):
        bad = [v for v in values if v < least]
        if bad:
            raise ConfigError(f"{source}: [probe].{key}: {bad[0]} is below {least}")
    if FEW_LABELS in p.protocols and not p.labels_per_class:
        raise ConfigError(f"{source}: [probe].labels_per_class is empty, but protocols lists \"{FEW_LABELS}\"")
    if k.enabled and not k.centroids:
        raise ConfigError(f"{source}: [kmeans].centroids is empty; give at least one count or set enabled = false")
    bad = [c for c in k.centroids if c < 1]
    if bad:
        raise ConfigError(f"{source}: [kmeans].centroids: {bad[0]} is below 1")


def _check_with_the_stages_own_rules(config: PipelineConfig, source: str) -> None:
    """Build what each stage will build (training options, model, extraction options, k-means settings) and check
    the feature grid against the discriminator's maps, so that no stage fails on a value after earlier ones ran.
    Their messages name command-line flags (--batch-size); here the TOML key ([train].batch_size)."""
    from ..features import ExtractOptions
    from ..features.extract import check_grid
    from ..features.pooling import select_layers
    from ..models import Discriminator

    t, p = config.train, config.probe
    if t.checkpoint:
        from ..models.checkpoint import load_checkpoint, model_config

        try:
            model = model_config(load_checkpoint(t.checkpoint))
        except GanProbeError as exc:
            raise _keyed(exc, source, "train") from None
    else:
        try:
            model = train_config(config).model_config()
        except ConfigError as exc:
            raise _keyed(exc, source, "train") from None
    try:
        ExtractOptions(grid=p.grid, layers=tuple(p.layers) or None, bn=p.bn, holdout=p.holdout or None)
        disc = Discriminator(model)
        layers = select_layers(disc, tuple(p.layers) or None)
        check_grid(disc, model.image_size, p.grid, layers)
    except ConfigError as exc:
        raise _keyed(exc, source, "probe") from None
    try:
        kmeans_configs(config)
    except ConfigError as exc:
        raise _keyed(exc, source, "kmeans") from None
    if config.vae.enabled:
        _check_vae(config, source)
    if config.knn.enabled:
        for protocol, per_class in probe_runs(config):
            try:
                knn_run_config(config, protocol, per_class).validate()
            except ConfigError as exc:
                raise _keyed(exc, source, "knn") from None


def _check_vae(config: PipelineConfig, source: str) -> None:
    """The VAE's training options and model, its encoder's layers ([vae].layers) and the feature grid on them."""
    from ..features.extract import check_grid
    from ..features.pooling import select_layers
    from ..models.vae import VAE, VAEEncoder

    try:
        model = vae_train_config(config).model_config()
        encoder = VAEEncoder(VAE(model))
    except (ConfigError, ValueError) as exc:
        raise _keyed(exc, source, "vae") from None
    try:
        layers = select_layers(encoder, vae_layers(config))
    except ConfigError as exc:
        raise _keyed(exc, source, "vae") from None
    try:
        check_grid(encoder, model.image_size, config.probe.grid, layers)
    except ConfigError as exc:
        raise ConfigError(f"{_keyed(exc, source, 'probe')} (the [vae] encoder's layers)") from None


def _keyed(exc: Exception, source: str, section: str) -> ConfigError:
    """A stage's message with its command-line flags (``--max-steps``) named as this section's TOML keys."""
    import re

    text = re.sub(r"--([a-z][a-z0-9-]*)", lambda m: f"[{section}].{m.group(1).replace('-', '_')}", str(exc))
    return ConfigError(f"{source}: {text}")


def _detail(exc: Exception) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("--device") and ": " in text else text
