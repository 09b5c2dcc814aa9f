"""Data behind the report's figures, assembled from normalised records (kept apart from the plotting).

>>> df = label_efficiency_data(results.probes)                      # doctest: +SKIP
>>> df[["model", "labels_per_class", "accuracy_pct"]].values.tolist()  # doctest: +SKIP
[['DCGAN (paper32) + L2-SVM', 100.0, 61.2], ['DCGAN (paper32) + L2-SVM', 400.0, 70.1], ...]
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from .published import published_rows
from .results import FAMILIES, ProbeResult, RunDir

LABEL_EFFICIENCY_COLUMNS = ["dataset", "model", "family", "labels_per_class", "accuracy_pct", "std_pct", "protocol",
                            "source", "file"]
# published models drawn on the label-efficiency figure next to the measured curves
PUBLISHED_CURVES = ("DCGAN + L2-SVM", "1 Layer K-means")


def label_efficiency_data(probes: Sequence[ProbeResult]) -> pd.DataFrame:
    """Accuracy against labelled images per class, one row per probe result.

    The x value is ``labels_per_class`` (few-labels and SVHN protocols) or ``n_train / n_classes`` (full
    protocol). Results without a dataset or without a way to compute x are left out. Rows are sorted by dataset,
    family (dcgan, random-d, kmeans, pixels, other), model and x.
    """
    rows = []
    for r in probes:
        x = r.labels_per_class_or_total
        if r.dataset is None or x is None:
            continue
        rows.append({"dataset": r.dataset, "model": r.label, "family": r.family, "labels_per_class": float(x),
                     "accuracy_pct": r.accuracy * 100.0,
                     "std_pct": None if r.accuracy_std is None else r.accuracy_std * 100.0,
                     "protocol": r.protocol, "source": "measured", "file": r.path})
    df = pd.DataFrame(rows, columns=LABEL_EFFICIENCY_COLUMNS)
    if df.empty:
        return df
    df["_rank"] = df["family"].map(lambda f: FAMILIES.index(f) if f in FAMILIES else len(FAMILIES))
    df = df.sort_values(["dataset", "_rank", "model", "labels_per_class"], kind="stable").drop(columns="_rank")
    return df.reset_index(drop=True)


def published_label_efficiency(dataset: str, models: Sequence[str] = PUBLISHED_CURVES) -> pd.DataFrame:
    """The paper's points for ``dataset`` (accuracy in percent; SVHN errors are turned into accuracies)."""
    rows = []
    for row in published_rows():
        if row.dataset != dataset or row.model not in models or row.labels_per_class is None:
            continue
        if row.metric not in ("accuracy", "error"):
            continue
        acc = row.value if row.metric == "accuracy" else 100.0 - row.value
        rows.append({"dataset": dataset, "model": row.model, "family": "published",
                     "labels_per_class": float(row.labels_per_class), "accuracy_pct": acc, "std_pct": row.std,
                     "protocol": row.protocol, "source": "published", "file": row.citation})
    return pd.DataFrame(rows, columns=LABEL_EFFICIENCY_COLUMNS)


@dataclass
class CCurve:
    """Validation accuracy against C for one probe result."""

    model: str
    family: str
    points: list[tuple[float, float]]  # (C, validation accuracy as a fraction), sorted by C
    chosen: float | None
    file: str


def c_selection_groups(probes: Sequence[ProbeResult]) -> "OrderedDict[tuple, list[CCurve]]":
    """C-selection curves grouped by ``(dataset, protocol, labels per class or None)``, sorted by dataset,
    protocol (full, few-labels, svhn) and labels per class."""
    order = {"full": 0, "few-labels": 1, "svhn": 2}
    groups: dict[tuple, list[CCurve]] = {}
    for r in probes:
        if not r.c_curve:
            continue
        lpc = r.labels_per_class if r.protocol != "full" else None
        key = (r.dataset or "unknown", r.protocol, lpc)
        groups.setdefault(key, []).append(CCurve(r.label, r.family, sorted(r.c_curve), r.c_chosen, r.path))
    ranked = sorted(groups, key=lambda k: (k[0], order.get(k[1], 9), k[2] or 0))
    return OrderedDict((k, groups[k]) for k in ranked)


def group_title(key: tuple) -> str:
    """``("cifar10", "few-labels", 400)`` -> "few-labels, 400 per class"."""
    _, protocol, lpc = key
    return protocol + (f", {lpc} per class" if lpc is not None else "")


@dataclass
class ProbeCurve:
    """The online probe's validation accuracy against the training step (``gan-probe train --probe-every``)."""

    label: str
    steps: list[int]
    accuracy: list[float]  # fractions in [0, 1]
    best_step: int
    best_accuracy: float
    settings: dict  # config.json's "probe" entry (dataset, images, C, ...); empty when absent
    path: str


def probe_curve(run: RunDir) -> ProbeCurve | None:
    """The probe curve of a run's log.csv (None when no row has ``probe_acc``). The best step is the earliest
    with the highest accuracy, the rule ``gan-probe train`` keeps ``best_probe.pt`` by.

    >>> run = RunDir("r", "r", {}, [{"step": 5, "probe_acc": 0.4}, {"step": 10, "probe_acc": 0.5},
    ...                             {"step": 12}, {"step": 15, "probe_acc": 0.5}], [], None)
    >>> c = probe_curve(run); (c.steps, c.best_step, c.best_accuracy)
    ([5, 10, 15], 10, 0.5)
    """
    points = [(int(r["step"]), float(r["probe_acc"])) for r in run.log if "step" in r and "probe_acc" in r]
    if not points:
        return None
    best_step, best_acc = points[0]
    for step, acc in points[1:]:
        if acc > best_acc:
            best_step, best_acc = step, acc
    settings = run.config.get("probe") if isinstance(run.config.get("probe"), dict) else {}
    return ProbeCurve(run.label, [p[0] for p in points], [p[1] for p in points], best_step, best_acc, settings,
                      run.path)


def describe_probe(settings: dict) -> str:
    """What a probe curve measured, in words.

    >>> describe_probe({"dataset": "cifar10", "n_fit": 1500, "n_val": 500, "C": 3e-4})
    'cifar10, 1500 + 500 images, C = 0.0003'
    """
    if not settings:
        return "probe settings not recorded"
    parts = [str(settings.get("dataset", "?"))]
    if "n_fit" in settings and "n_val" in settings:
        parts.append(f"{settings['n_fit']} + {settings['n_val']} images")
    if settings.get("C") is not None:
        parts.append(f"C = {settings['C']:g}")
    if settings.get("layers"):
        parts.append("layers " + ",".join(map(str, settings["layers"])))
    return ", ".join(parts)
