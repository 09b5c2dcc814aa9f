"""Where a representation lives: the per-layer profile of a discriminator (a table and a figure).

A profile is a set of probe results of one model on one dataset and protocol that differ only in the conv
layers probed (``svm --layers``, recorded in each result's ``features_meta``): each layer alone
("conv3") and the first k layers together ("conv1-3"). Results of a model with at least
:data:`MIN_PROFILE_RESULTS` layer subsets form a profile; the report shows them here instead of in the
paper-style tables (they stay in the table of all results).

>>> profiles = layer_profiles(results.probes)                                      # doctest: +SKIP
>>> layer_profile_figure(profiles, "figures/layers.png")                           # doctest: +SKIP
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from .results import ProbeResult

MIN_PROFILE_RESULTS = 3


@dataclass
class LayerProfile:
    """One model's layer-subset results on one dataset and protocol."""

    model: str
    family: str
    dataset: str | None
    protocol: str
    labels_per_class: int | None
    alone: dict[int, ProbeResult] = field(default_factory=dict)  # layer -> result of that layer alone
    first: dict[int, ProbeResult] = field(default_factory=dict)  # k -> result of layers 0..k-1 (k >= 2)

    @property
    def results(self) -> list[ProbeResult]:
        return list(self.alone.values()) + list(self.first.values())

    @property
    def title(self) -> str:
        lpc = "all labels" if self.labels_per_class is None else f"{self.labels_per_class} labels per class"
        return f"{self.dataset}, {lpc}"


def layer_profiles(probes: Sequence[ProbeResult]) -> list[LayerProfile]:
    """The profiles among ``probes`` (see the module docstring), in input order."""
    groups: OrderedDict[tuple, LayerProfile] = OrderedDict()
    for r in probes:
        if r.layers is None:
            continue
        ident = r.checkpoint_sha256 or (r.features_meta.get("init_seed"), r.preset, r.family)
        key = (r.model_label, ident, r.dataset, r.protocol, r.labels_per_class)
        profile = groups.setdefault(key, LayerProfile(r.model_label or r.label, r.family, r.dataset, r.protocol,
                                                      r.labels_per_class))
        if len(r.layers) == 1:
            profile.alone[r.layers[0]] = r
        elif r.layers == list(range(len(r.layers))):
            profile.first[len(r.layers)] = r
    return [p for p in groups.values() if len(p.results) >= MIN_PROFILE_RESULTS]


def profile_members(profiles: Sequence[LayerProfile]) -> set[int]:
    """``id()`` of every result shown in a profile (to leave them out of the paper-style tables)."""
    return {id(r) for p in profiles for r in p.results}


def layer_profile_frame(profiles: Sequence[LayerProfile]) -> pd.DataFrame:
    """Long format: one row per (model, setting, subset) with accuracy and its std in percent."""
    rows = []
    for p in profiles:
        for kind, table in (("alone", p.alone), ("first", p.first)):
            for k, r in sorted(table.items()):
                rows.append({"model": p.model, "family": p.family, "dataset": p.dataset, "protocol": p.protocol,
                             "labels_per_class": p.labels_per_class, "kind": kind,
                             "layers": f"conv{k + 1}" if kind == "alone" else f"conv1-{k}",
                             "k": k + 1 if kind == "alone" else k, "n_features": r.n_features,
                             "accuracy_pct": 100 * r.accuracy,
                             "accuracy_std_pct": None if r.accuracy_std is None else 100 * r.accuracy_std,
                             "C": r.C, "file": r.path})
    return pd.DataFrame(rows)


def layer_profile_table(profiles: Sequence[LayerProfile]):
    """Accuracy of each layer alone and of the first k layers, one row per model and setting."""
    from .tables import MISSING, Table, format_pm

    if not profiles:
        return None
    depth = max([k + 1 for p in profiles for k in p.alone] + [k for p in profiles for k in p.first])
    columns = ["Model", "Setting"] + [f"conv{k}" for k in range(1, depth + 1)] + \
        [f"conv1-{k}" for k in range(2, depth + 1)]
    display_rows = []
    for p in profiles:
        row = {"Model": p.model, "Setting": p.title}
        for k in range(1, depth + 1):
            r = p.alone.get(k - 1)
            row[f"conv{k}"] = MISSING if r is None else format_pm(r.accuracy, r.accuracy_std, 1, scale=100)
            if k >= 2:
                r = p.first.get(k)
                row[f"conv1-{k}"] = MISSING if r is None else format_pm(r.accuracy, r.accuracy_std, 1, scale=100)
        display_rows.append(row)
    display = pd.DataFrame(display_rows, columns=columns).astype(str)
    data = layer_profile_frame(profiles)
    return Table("layer_profile", "Per-layer profile: each conv layer alone and the first k layers together",
                 display, data,
                 ["Test accuracy ± standard deviation over label draws of a linear L2-SVM on the pooled features of "
                  "the named layers only (gan-probe svm --layers); C chosen on the validation split for each "
                  "subset. '-': not measured (e.g. layers the model does not have)."],
                 ("l", "l") + ("r",) * (len(columns) - 2))


def layer_profile_figure(profiles: Sequence[LayerProfile], path: str | Path) -> Path:
    """Two panels (each layer alone; the first k layers), accuracy against the layer, one line per model."""
    from .figures import FAMILY_COLORS, MARKERS, new_figure, save_figure

    fig = new_figure(10.0, 4.0)
    axes = fig.subplots(1, 2, sharey=True)
    seen: dict[str, int] = {}
    for p in profiles:
        index = seen[p.family] = seen.get(p.family, -1) + 1
        style = {"color": FAMILY_COLORS.get(p.family, FAMILY_COLORS["other"]), "marker": MARKERS[index % 7],
                 "linestyle": ("-", "--", "-.", ":")[index % 4], "capsize": 3}
        label = p.model + ("" if len({q.title for q in profiles}) == 1 else f" ({p.title})")
        first = {**({1: p.alone[0]} if 0 in p.alone else {}), **p.first}  # k = 1 is conv1 alone
        for ax, table, offset in ((axes[0], p.alone, 1), (axes[1], first, 0)):
            ks = sorted(table)
            if not ks:
                continue
            xs = [k + offset for k in ks]
            ys = [100 * table[k].accuracy for k in ks]
            err = [100 * (table[k].accuracy_std or 0.0) for k in ks]
            ax.errorbar(xs, ys, yerr=err, label=label, **style)
    axes[0].set_title("each layer alone")
    axes[0].set_xlabel("conv layer")
    axes[1].set_title("the first k layers together")
    axes[1].set_xlabel("k (conv1 .. conv k)")
    axes[0].set_ylabel("test accuracy (%)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize=8,
               bbox_to_anchor=(0.5, -0.02 - 0.05 * len(labels)))
    dataset = {p.dataset for p in profiles}
    fig.suptitle("Per-layer linear probe" + (f" on {dataset.pop()}" if len(dataset) == 1 else ""))
    return save_figure(fig, path)
