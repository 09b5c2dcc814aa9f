"""The representation comparison table: one row per representation, a linear L2-SVM and a kNN column per setting.

A report gets this table when its results probe at least one representation with both classifiers in one setting
(``gan-probe svm`` and ``gan-probe knn`` on the same feature store): it shows, side by side, how much of each
representation's accuracy a linear classifier and a nearest-neighbour vote recover. Settings are (dataset,
protocol, labels): CIFAR-10 with 400 labels per class, the SVHN slice with 1,000 labels, and so on, each with its
own columns. Only such pairs are shown: a representation or setting that only one classifier probed (a per-layer
profile, say) stays in the other tables. SVHN columns show the test error, as the paper's Table 2 does; the others
show accuracy.

>>> from gan_probe.report.comparison import representation_name
>>> representation_name("k-means (1600 centroids) + kNN (weighted vote)"), representation_name("Raw pixels + L2-SVM")
('k-means (1600 centroids)', 'Raw pixels')
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from .results import FAMILIES, ProbeResult
from .tables import MISSING, Table, _frames, _pct, describe_test_images, format_pm, selection_budget, spread

CLASSIFIERS = {"svm": "L2-SVM", "knn": "kNN"}


def representation_name(label: str) -> str:
    """A row's label without its classifier suffix (" + L2-SVM", " + kNN", " + kNN (weighted vote)")."""
    for marker in (" + L2-SVM", " + kNN"):
        at = label.rfind(marker)
        if at >= 0 and (label.endswith(marker) or label[at + len(marker):].startswith(" (")):
            return label[:at]
    return label


def classifier_name(r: ProbeResult) -> str:
    """The column a result goes to: "L2-SVM", or "kNN" with its vote ("kNN, weighted vote")."""
    if r.classifier != "knn":
        return CLASSIFIERS["svm"]
    return f"kNN, {r.vote} vote" if r.vote else "kNN"


def _setting(r: ProbeResult) -> tuple:
    return (r.dataset or "", r.protocol, r.labels_per_class if r.protocol != "full" else None)


def _setting_title(setting: tuple, n_train: int | None) -> str:
    dataset, protocol, lpc = setting
    name = {"cifar10": "CIFAR-10", "svhn": "SVHN"}.get(dataset, dataset)
    if protocol == "svhn":
        return f"{name}, {n_train:,} labels, error" if n_train else f"{name}, error"
    if protocol == "full":
        return f"{name}, all labels"
    return f"{name}, {lpc} per class"


def _paired(probes: Sequence[ProbeResult]) -> list[ProbeResult]:
    """The results of the (representation, setting) pairs that both an L2-SVM and a kNN result probe."""
    kinds: dict[tuple, set] = {}
    for r in probes:
        kinds.setdefault((representation_name(r.label), _setting(r)), set()).add(r.classifier == "knn")
    return [r for r in probes if kinds[(representation_name(r.label), _setting(r))] == {True, False}]


def comparison_table(probes: Sequence[ProbeResult]) -> Table | None:
    """SVM and kNN columns per setting for every representation probed by both in that setting (None if none)."""
    probes = _paired(probes)
    if not probes:
        return None
    settings: OrderedDict[tuple, int | None] = OrderedDict()
    classifiers: OrderedDict[str, None] = OrderedDict([(CLASSIFIERS["svm"], None)])
    cells: OrderedDict[str, dict[tuple, ProbeResult]] = OrderedDict()
    for r in probes:
        setting = _setting(r)
        settings.setdefault(setting, r.n_train if r.protocol == "svhn" else None)
        classifiers.setdefault(classifier_name(r), None)
        cells.setdefault(representation_name(r.label), {})[(setting, classifier_name(r))] = r
    family_of = {}
    for r in probes:
        family_of.setdefault(representation_name(r.label), r.family)
    rank = {name: (FAMILIES.index(f) if f in FAMILIES else len(FAMILIES), i)
            for i, (name, f) in enumerate(family_of.items())}
    cells = OrderedDict(sorted(cells.items(), key=lambda item: rank[item[0]]))  # the other tables' family order
    columns = ["Representation"]
    for setting, n_train in settings.items():
        title = _setting_title(setting, n_train)
        columns += [f"{title} ({c})" for c in classifiers]
    display_rows, data_rows = [], []
    data_cols = ["representation", "dataset", "protocol", "labels_per_class", "classifier", "accuracy_pct",
                 "accuracy_std_pct", "error_pct", "selection_labels", "file"]
    for name, by_key in cells.items():
        row = {"Representation": name}
        for setting, n_train in settings.items():
            title = _setting_title(setting, n_train)
            for classifier in classifiers:
                r = by_key.get((setting, classifier))
                column = f"{title} ({classifier})"
                if r is None:
                    row[column] = MISSING
                    continue
                value = r.error if r.protocol == "svhn" else r.accuracy
                row[column] = format_pm(value, spread(r), 1 if r.protocol != "svhn" else 2, scale=100)
                data_rows.append({"representation": name, "dataset": r.dataset, "protocol": r.protocol,
                                  "labels_per_class": r.labels_per_class, "classifier": classifier,
                                  "accuracy_pct": _pct(r.accuracy), "accuracy_std_pct": _pct(spread(r)),
                                  "error_pct": _pct(r.error), "selection_labels": r.selection_labels,
                                  "file": r.path})
        display_rows.append(row)
    display, data = _frames(display_rows, data_rows, columns, data_cols)
    notes = []
    for dataset in dict.fromkeys(s[0] for s in settings):
        name = {"cifar10": "CIFAR-10", "svhn": "SVHN"}.get(dataset, dataset)
        notes.append(describe_test_images([r for r in probes if r.dataset == dataset], name))
    budgets = sorted({f"{classifier_name(r)}: {selection_budget(r).removesuffix('.')}" for r in probes})
    notes.append("L2-SVM: a linear L2-SVM on the standardised features, C chosen on a validation split; kNN: "
                 "cosine-similarity nearest neighbours (majority or exp(sim / T)-weighted vote, as each result "
                 "records), k (and T) chosen on the same kind of validation split. Labels that chose the "
                 "hyperparameters (validation images): " + "; ".join(budgets) + ". ± is the standard deviation over "
                 "label draws. The rows' files and data are listed under the other tables.")
    align = ("l",) + ("r",) * (len(columns) - 1)
    return Table("comparison", "Representations compared: a linear L2-SVM and kNN on the same features", display,
                 data, notes, align)
