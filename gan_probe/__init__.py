"""gan-probe: rerun the DCGAN paper's evaluation on your own models and data.

The main API is importable from the package itself (``from gan_probe import extract_features, probe_store``);
each name is imported from its subpackage on first use, so ``import gan_probe`` stays cheap. Where things live:

==================  ==============================================================================================
``data``            dataset readers (cifar10, svhn, imagenet, image folders, digits): ``load_split``, ``ImageSplit``
``models``          DCGAN generator / discriminator and presets; ``models.checkpoint``: ``load_models`` and saving
``training``        model training: ``from gan_probe.training import train``; ``train(TrainConfig(...), out)``
``features``        pooled discriminator features -> feature stores: ``extract_features``, ``load_store``
``probe``           linear L2-SVM probes with the paper's protocols: ``probe_store``, ``ProbeConfig``, ``fit_svm``
``baselines``       the k-means (Coates & Ng) and raw-pixel baselines: ``KMeansDictionary``, ``kmeans_features``
``metrics``         Inception Score and FID: ``inception_score``, ``frechet_distance``
``report``          tables, figures and report.md from result files: ``build_report``, ``load_results``
``pipeline``        train -> extract -> probe -> metrics -> report from one config: ``run_pipeline``
``viz``             the paper's figures (samples, interpolations, arithmetic, filters, neighbours)
``convert``         the DCGAN authors' released models -> checkpoints: ``save_converted``
``cli``             the ``gan-probe`` command line, a thin layer over the above
==================  ==============================================================================================

>>> import gan_probe
>>> gan_probe.ProbeConfig.__module__
'gan_probe.probe.config'
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import GanProbeError  # noqa: E402

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "load_split": "gan_probe.data", "ImageSplit": "gan_probe.data", "DATASETS": "gan_probe.data",
    "load_models": "gan_probe.models.checkpoint",
    "TrainConfig": "gan_probe.training",
    "ExtractOptions": "gan_probe.features", "extract_features": "gan_probe.features",
    "load_store": "gan_probe.features",
    "ProbeConfig": "gan_probe.probe", "probe_store": "gan_probe.probe", "fit_svm": "gan_probe.probe",
    "KMeansDictionary": "gan_probe.baselines", "kmeans_features": "gan_probe.baselines",
    "inception_score": "gan_probe.metrics", "frechet_distance": "gan_probe.metrics",
    "build_report": "gan_probe.report", "load_results": "gan_probe.report",
    "run_pipeline": "gan_probe.pipeline",
    "save_converted": "gan_probe.convert",
}

__all__ = ["__version__", "GanProbeError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
