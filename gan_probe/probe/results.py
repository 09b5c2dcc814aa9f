"""Probe a feature store end to end and describe the outcome as one JSON-ready result object.

The result file (written atomically by :func:`write_result`) starts with the headline fields -- ``dataset,
protocol, accuracy, accuracy_std, error, C, n_train, n_test, n_features, draws, solver, seconds`` -- followed by
the C-selection curve, per-draw accuracies, the feature store's ``meta.json``, the seeds and a provenance
block. **Accuracies and errors are fractions in [0, 1]** (``0.738`` means 73.8%).

>>> import numpy as np, tempfile
>>> from gan_probe.features.store import save_store
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(2), 30)
>>> x = (rng.normal(size=(60, 4)) + 3.0 * y[:, None]).astype(np.float32)
>>> root = save_store(tempfile.mkdtemp(), x, y, x, y, {"dataset": "toy"})
>>> res = probe_store(root, ProbeConfig(C=1.0, device="cpu"))
>>> res["dataset"], res["protocol"], res["accuracy"] > 0.9
('toy', 'full', True)
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_json
from ..features.store import FeatureStore, check_finite, labels_path, load_store
from ..provenance import provenance
from .config import ProbeConfig
from .protocols import run_protocol
from .resume import fits_dir
from .rows import active
from .standardize import fit_standardizer

FORMAT = "gan-probe-svm"
FORMAT_VERSION = 1
HEADLINE = ("dataset", "protocol", "accuracy", "accuracy_std", "error", "error_std", "C", "n_train", "n_val",
            "n_test", "n_features", "n_classes", "draws", "solver", "seconds")


def run_probe(features: str | os.PathLike | FeatureStore, config: ProbeConfig,
              result_path: str | os.PathLike | None = None, dataset_name: str | None = None, progress: bool = False,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Probe a feature store and, given ``result_path``, write the result there (:func:`write_result`).

    The one owner of a probe run's files, for ``gan-probe svm`` and the pipeline alike: while the full-label
    protocol fits its C grid, each fit is kept in ``fits_dir(result_path)`` (``RESULT.fits/``), from which a rerun
    of an interrupted run resumes (:mod:`gan_probe.probe.resume`); the result is written atomically and the
    directory then goes. Without ``result_path`` nothing is written.
    """
    resume_dir = fits_dir(result_path) if result_path is not None else None
    result = probe_store(features, config, dataset_name=dataset_name, progress=progress, log=log,
                         resume_dir=resume_dir)
    if result_path is not None and active().rank == 0:   # (rows shared among ranks: rank 0 writes)
        write_result(result_path, result)
    return result


def probe_store(features: str | os.PathLike | FeatureStore, config: ProbeConfig, dataset_name: str | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None,
                resume_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run ``config``'s protocol on a feature store (a directory or a loaded :class:`FeatureStore`);
    ``resume_dir``: see :func:`gan_probe.probe.protocols.run_protocol` (:func:`run_probe` chooses it for a run
    that writes a result file)."""
    store = features if isinstance(features, FeatureStore) else load_store(features)
    notes = []
    dataset = dataset_name or store.meta.get("dataset")
    if not dataset:
        dataset = store.root.name
        notes.append(f"meta.json names no dataset and --dataset-name was not given; using {dataset!r}")
    standardizer = fit_standardizer(store.train_features, split="train", progress=progress)  # checks train too
    share = active().share(len(store.test_features))   # (rows shared among ranks: each checks its own)
    active().agree(lambda: check_finite(store.test_features, "test features", rows=share))  # before the fits
    out = run_protocol(store.train_features, store.train_labels, store.test_features, store.test_labels, config,
                       standardizer=standardizer, progress=progress, log=log, resume_dir=resume_dir)
    out["dataset"] = dataset
    return result_object(out, store, config.to_dict(), config.seed, notes + out.pop("notes", []))


def result_object(out: dict[str, Any], store: FeatureStore, config: dict[str, Any], seed: int,
                  notes: list[str] | None = None) -> dict[str, Any]:
    """A protocol's output as a result file's object: the format header, the headline fields first, then the
    rest, the config, the store's meta and the provenance (every classifier's results share it)."""
    result: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    result.update({k: out.pop(k) for k in HEADLINE if k in out})
    result["units"] = "accuracy and error are fractions in [0, 1]"
    result.update(out)
    result["config"] = config
    result["features"] = str(store.root)
    result["features_meta"] = store.meta
    if notes:
        result["notes"] = notes
    files = [store.root / "meta.json", labels_path(store.root, "train"), labels_path(store.root, "test")]
    result["provenance"] = provenance(device=result["solver_info"].get("device"), seeds={"seed": seed},
                                      files=files, features_dir=str(store.root))
    return result


def write_result(path: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Write a result object atomically as JSON; the grid fits kept for it while it ran
    (:func:`gan_probe.probe.resume.fits_dir`) are then no longer needed and go."""
    written = write_json(path, result)
    shutil.rmtree(fits_dir(path), ignore_errors=True)
    return written


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short human summary of a result (what ``gan-probe svm`` prints)."""
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    lines = [f"{result['dataset']}: {result['n_train']} labelled training rows"
             + (f" x {result['draws']} draws" if result["draws"] > 1 else "")
             + f", {result['n_test']} test rows, {result['n_features']} features"]
    sel = result.get("C_selection") or {}
    knn = result.get("knn_selection")
    if knn is not None:
        setting = f"k = {result['k']}" + (f", T = {result['T']:g}" if result.get("T") is not None else "")
        best = next((p for p in knn["curve"] if (p["k"], p["T"]) == (result["k"], result.get("T"))), None)
        lines.append(f"{result['vote']} {setting} " + (f"(chosen on {knn['val_size']} validation rows, validation "
                                                       f"accuracy {pct(best['val_accuracy'])})" if best else "(fixed)"))
    elif sel["mode"] == "auto":
        best = next(p for p in sel["curve"] if p["C"] == sel["chosen"])
        lines.append(f"C = {result['C']:g} (chosen on {sel['val_size']} validation rows, validation accuracy "
                     f"{pct(best['val_accuracy'])}; grid {', '.join(f'{c:g}' for c in sel['grid'])})")
        if sel.get("skipped"):
            lines.append(f"not fitted: C = {', '.join(f'{c:g}' for c in sel['skipped'])} (validation accuracy had "
                         f"fallen below its best; --C-patience)")
        if sel.get("at_grid_edge"):
            lines.append(f"warning: C = {result['C']:g} is the {sel['at_grid_edge']} value of --C-grid; the best C may "
                         f"lie outside it: extend the grid {'down' if sel['at_grid_edge'] == 'smallest' else 'up'}")
    else:
        lines.append(f"C = {result['C']:g} (fixed)")
    if result["protocol"] == "svhn":
        lo, hi = result["error_interval_95"]
        mlo, mhi = result["mean_error_interval_95"]
        lines.append(f"test error {pct(result['error'])} +- {pct(1.96 * result['error_std'])} "
                     f"(mean +- 1.96 std over {result['draws']} draws: [{pct(lo)}, {pct(hi)}]; 95% interval of "
                     f"the mean [{pct(mlo)}, {pct(mhi)}])")
    elif result["draws"] > 1:
        lines.append(f"test accuracy {pct(result['accuracy'])} +- {pct(result['accuracy_std'])} "
                     f"(mean +- std over {result['draws']} draws)")
    else:
        lines.append(f"test accuracy {pct(result['accuracy'])} (error {pct(result['error'])})")
    info = result.get("solver_info", {})
    how = result["solver"] + (f" ({info['method']}, {info['device']})" if info.get("method") else "")
    lines.append(f"solver {how}, {result['seconds']:.1f} s")
    return lines
