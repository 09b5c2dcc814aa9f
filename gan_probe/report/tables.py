"""Paper-style tables as pandas DataFrames, rendered to Markdown, LaTeX (booktabs) and CSV.

Every :class:`Table` has two frames: ``display`` (strings laid out like the DCGAN paper's tables, e.g.
"73.8% (±0.4%)") for Markdown and LaTeX, and ``data`` (numbers, percent columns suffixed ``_pct``) for CSV.
Published rows come first, in the paper's order, then measured rows; a "Source" column says which is which and
measured rows point to a note that names their result files, data checksums, checkpoint and protocol.

>>> format_pm(0.738, 0.004, decimals=1, scale=100)
'73.8% (±0.4%)'
>>> latex_escape("DCGAN_v2 & 50% #1 ±")
'DCGAN\\\\_v2 \\\\& 50\\\\% \\\\#1 $\\\\pm$'
"""
from __future__ import annotations

import string
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from ..atomic import write_text
from .published import PublishedRow, published_rows
from .results import FAMILIES, HELD_OUT, TEST_SPLIT, ProbeResult, RunDir, SampleQualityResult
from .series import describe_probe, probe_curve

MISSING = "-"
PM = "±"
REF_COLUMN = "p{5cm}"  # LaTeX: the long citation column wraps


@dataclass
class Table:
    """A rendered-table description: display strings, numeric data, notes and LaTeX column alignment."""

    name: str  # file stem under tables/
    title: str
    display: pd.DataFrame
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    align: tuple[str, ...] = ()  # LaTeX column spec per display column: "l", "r", "c" or "p{width}"
    rule_before: list[int] = field(default_factory=list)  # display row indices preceded by a \midrule

    def to_dict(self) -> dict[str, Any]:
        rows = self.data.astype(object).where(self.data.notna(), None).to_dict(orient="records")
        return {"name": self.name, "title": self.title, "columns": list(self.display.columns),
                "display": self.display.to_dict(orient="records"), "data": rows, "notes": self.notes}


# ----------------------------------------------------------------------------------------------- formatting


def format_value(value: float | None, decimals: int, scale: float = 1.0, unit: str = "%") -> str:
    """``value * scale`` with ``decimals`` digits and ``unit``; "-" for a missing value.

    >>> format_value(0.8283, 1, scale=100)
    '82.8%'
    >>> format_value(None, 1)
    '-'
    """
    if value is None or pd.isna(value):
        return MISSING
    return f"{value * scale:.{decimals}f}{unit}"


def format_pm(value: float | None, std: float | None, decimals: int, std_decimals: int | None = None,
              scale: float = 1.0, unit: str = "%", style: str = "paren") -> str:
    """Value with its spread: "73.8% (±0.4%)" (``style="paren"``) or "6.16 ± 0.07" (``style="inline"``)."""
    text = format_value(value, decimals, scale, unit)
    if text == MISSING or std is None or pd.isna(std):
        return text
    spread = format_value(std, decimals if std_decimals is None else std_decimals, scale, unit)
    return f"{text} ({PM}{spread})" if style == "paren" else f"{text} {PM} {spread}"


def format_int(value: int | None) -> str:
    return MISSING if value is None or pd.isna(value) else f"{int(value)}"


def short_sha(value: Any, n: int = 12) -> str:
    return str(value)[:n] if value else MISSING


def _markers() -> Iterable[str]:
    for ch in string.ascii_lowercase:
        yield ch
    n = 0
    while True:
        n += 1
        for ch in string.ascii_lowercase:
            yield f"{ch}{n}"


def _pct(x: float | None) -> float | None:
    return None if x is None else round(x * 100.0, 6)


def spread(r: ProbeResult) -> float | None:
    """The ± of a row: the standard deviation over label draws, none for a single draw (nothing varied)."""
    return r.accuracy_std if (r.draws or 1) > 1 else None


def format_C(r: ProbeResult) -> str:
    """The C of a row, marked "(fixed)" when the user gave it rather than a validation split choosing it."""
    if r.C is None:
        return MISSING
    return f"{r.C:g} (fixed)" if r.hyperparameters_fixed else f"{r.C:g}"


def selection_budget(r: ProbeResult) -> str:
    """How many labelled images chose the row's hyperparameters: "4,000 val.", "fixed", or "-" when unknown.

    These labels come on top of the ones the classifier is trained on (a few-label protocol's validation split
    is separate from its labelled draws)."""
    if r.hyperparameters_fixed:
        return "fixed"
    return MISSING if r.selection_labels is None else f"{r.selection_labels:,} val."


def describe_test_images(results: Sequence[ProbeResult], dataset: str) -> str:
    """One sentence on which images the measured rows were scored on, from their feature stores' records."""
    held = [r for r in results if r.evaluated_on == HELD_OUT]
    official = [r for r in results if r.evaluated_on == TEST_SPLIT]
    unknown = [r for r in results if r.evaluated_on is None]
    parts = []
    if held:  # with their number where the results record it
        sizes = " or ".join(f"{n:,}" for n in sorted({r.n_test for r in held if r.n_test}))
        parts.append(f"on {sizes + ' ' if sizes else ''}images held out of the {dataset} training images (not the "
                     f"official test set)")
    if official:
        parts.append(f"on the {dataset} test split")
    if unknown:
        parts.append("on test images their feature stores do not describe")
    which = "Measured rows are scored " if len(parts) == 1 else "Measured rows are scored, row by row (see notes), "
    return which + "; ".join(parts) + "."


# ----------------------------------------------------------------------------------------------- details


def describe_protocol(r: ProbeResult) -> str:
    """One line about how a probe result was obtained."""
    if r.protocol == "full":
        text = "full protocol (all labels)"
    elif r.protocol == "few-labels":
        text = f"few-labels protocol, {r.labels_per_class if r.labels_per_class is not None else '?'} per class"
    else:
        text = f"SVHN protocol, {r.n_train if r.n_train is not None else '?'} labels"
    bits = []
    if r.draws is not None:
        bits.append(f"{r.draws} draw{'s' if r.draws != 1 else ''}")
    if r.C is not None:
        if r.hyperparameters_fixed:
            bits.append(f"C = {r.C:g} fixed by the user")
        elif r.selection_labels is not None:
            bits.append(f"C = {r.C:g} chosen on {r.selection_labels:,} labelled validation images")
        else:
            bits.append(f"C = {r.C:g}")
    if r.n_train is not None and r.n_test is not None:
        where = {HELD_OUT: " held out of the training images", TEST_SPLIT: " (test split)"}.get(r.evaluated_on, "")
        bits.append(f"{r.n_train} train / {r.n_test} test{where}")
    if r.solver:
        bits.append(r.solver)
    return text + (f" ({', '.join(bits)})" if bits else "")


def describe_data(r: ProbeResult) -> str:
    parts = []
    for split, info in r.data.items():
        name = info.get("dataset") or r.dataset or "?"
        n = f" n={info['n']}" if info.get("n") is not None else ""
        parts.append(f"{split} = {name}{n} sha256 {short_sha(info.get('sha256') or info.get('checksum'))}")
    return "; ".join(parts)


def describe_features(r: ProbeResult) -> str:
    meta = r.features_meta
    if r.family in ("dcgan", "random-d"):
        if r.checkpoint or r.checkpoint_sha256:
            step = meta.get("checkpoint_step")
            text = (f"checkpoint {r.checkpoint or '?'} (sha256 {short_sha(r.checkpoint_sha256)}"
                    f"{f', step {step}' if step is not None else ''})")
        elif r.family == "random-d":
            seed = meta.get("init_seed")
            text = f"random initialisation{f' (seed {seed})' if seed is not None else ''}"
        else:
            text = "checkpoint not recorded"
        layers = meta.get("layer_names") or meta.get("layers")
        grid = meta.get("grid")
        if layers:
            text += f"; layers {', '.join(str(x) for x in layers)}"
        if grid:
            text += f" max-pooled to {grid}x{grid}" if layers else f"; features max-pooled to {grid}x{grid}"
        return text
    if r.family == "kmeans":
        k = r.max_feature_units
        return f"k-means features{f' ({k} centroids)' if k else ''}"
    if r.family == "pixels":
        return "raw pixels"
    return str(meta.get("source") or "features of unknown origin")


def describe_probe_row(label: str, results: Sequence[ProbeResult]) -> str:
    """The note for one measured row: its files, protocols, data checksums, features and checkpoint."""
    files = "; ".join(f"{r.path}: {describe_protocol(r)}" for r in results)
    first = results[0]
    parts = [f"{label}: {files}", describe_features(first)]
    if first.n_features is not None:
        parts.append(f"{first.n_features} feature dims")
    data = describe_data(first)
    if data:
        parts.append(f"data {data}")
    return ". ".join(parts) + "."


# ----------------------------------------------------------------------------------------------- builders


def _family_rank(r: ProbeResult) -> int:
    return FAMILIES.index(r.family) if r.family in FAMILIES else len(FAMILIES)


def _group_rows(results: Sequence[ProbeResult]) -> "OrderedDict[str, list[ProbeResult]]":
    ordered = sorted(enumerate(results), key=lambda t: (_family_rank(t[1]), t[0]))
    groups: OrderedDict[str, list[ProbeResult]] = OrderedDict()
    for _, r in ordered:
        groups.setdefault(r.label, []).append(r)
    return groups


def _published_by_model(table: str) -> "OrderedDict[str, list[PublishedRow]]":
    groups: OrderedDict[str, list[PublishedRow]] = OrderedDict()
    for row in sorted(published_rows(table), key=lambda r: r.order):
        groups.setdefault(row.model, []).append(row)
    return groups


def _frames(display_rows: list[dict], data_rows: list[dict], display_cols: list[str],
            data_cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    display = pd.DataFrame(display_rows, columns=display_cols).astype(str)
    data = pd.DataFrame(data_rows, columns=data_cols)
    return display, data


SELECTION_COLUMN = "Labels choosing C"
CIFAR_COLUMNS = ["Model", "Accuracy (all labels)", "Accuracy (400 per class)", SELECTION_COLUMN,
                 "Max # of feature units", "Source", "Reference"]
CIFAR_DATA = ["model", "source", "accuracy_all_pct", "accuracy_all_std_pct", "accuracy_400_pct",
              "accuracy_400_std_pct", "selection_labels", "evaluated_on", "max_feature_units", "reference",
              "details", "files"]
SELECTION_NOTE = ("Labels choosing C: the labelled validation images whose accuracy chose the SVM's C (\"fixed\": "
                  "C given by the user), on top of the labelled images the SVM is trained on.")


def _selection_cell(rows: Sequence[ProbeResult]) -> str:
    cells = list(dict.fromkeys(selection_budget(r) for r in rows))
    return " / ".join(cells) if cells else MISSING


def _selection_data(rows: Sequence[ProbeResult]) -> int | None:
    sizes = {r.selection_labels for r in rows if r.selection_labels is not None}
    return sizes.pop() if len(sizes) == 1 else None


def cifar10_table(probes: Sequence[ProbeResult], published: bool = True,
                  labels_per_class: int = 400) -> Table | None:
    """Table 1 of the paper: CIFAR-10 accuracy with all labels and with 400 labels per class.

    Measured rows come from ``dataset == "cifar10"`` results with the full protocol (first accuracy column) or
    the few-labels protocol at ``labels_per_class`` (second column, ± the result's ``accuracy_std``).
    Returns None when there is no such result.
    """
    def slot(r: ProbeResult) -> str | None:
        if r.dataset != "cifar10":
            return None
        if r.protocol == "full":
            return "all"
        if r.protocol == "few-labels" and r.labels_per_class == labels_per_class:
            return "few"
        return None

    measured = [r for r in probes if slot(r)]
    if not measured:
        return None
    display_rows, data_rows, notes, rules, pub_notes = [], [], [], [], []
    decimals = {"all": 1, "few": 1}
    if published:
        for model, rows in _published_by_model("cifar10").items():
            full = next((r for r in rows if r.protocol == "full"), None)
            few = next((r for r in rows if r.protocol == "few-labels"), None)
            if few is not None and few.labels_per_class != labels_per_class:
                few = None
            ref = rows[0]
            display_rows.append({
                "Model": model,
                "Accuracy (all labels)": format_pm(full.value, full.std, full.decimals, full.std_decimals)
                if full else MISSING,
                "Accuracy (400 per class)": format_pm(few.value, few.std, few.decimals, few.std_decimals)
                if few else MISSING, SELECTION_COLUMN: MISSING,
                "Max # of feature units": format_int(ref.max_feature_units),
                "Source": "published", "Reference": ref.reference})
            data_rows.append({
                "model": model, "source": "published", "accuracy_all_pct": full.value if full else None,
                "accuracy_all_std_pct": full.std if full else None, "accuracy_400_pct": few.value if few else None,
                "accuracy_400_std_pct": few.std if few else None, "selection_labels": None,
                "evaluated_on": "official test set", "max_feature_units": ref.max_feature_units,
                "reference": ref.reference, "details": ref.note, "files": None})
            if ref.note:
                pub_notes.append(f"{model} (published): {ref.note}.")
        rules.append(len(display_rows))
    markers = _markers()
    for label, group in _group_rows(measured).items():
        full = next((r for r in group if slot(r) == "all"), None)
        few = next((r for r in group if slot(r) == "few"), None)
        mark = next(markers)
        note = describe_probe_row(label, [r for r in (full, few) if r is not None])
        notes.append(f"[{mark}] {note}")
        units = next((r.max_feature_units for r in group if r.max_feature_units is not None), None)
        present = [r for r in (full, few) if r is not None]
        display_rows.append({
            "Model": label,
            "Accuracy (all labels)": format_pm(full.accuracy, spread(full), decimals["all"], scale=100)
            if full else MISSING,
            "Accuracy (400 per class)": format_pm(few.accuracy, spread(few), decimals["few"], scale=100)
            if few else MISSING, SELECTION_COLUMN: _selection_cell(present),
            "Max # of feature units": format_int(units), "Source": "measured", "Reference": f"[{mark}]"})
        data_rows.append({
            "model": label, "source": "measured", "accuracy_all_pct": _pct(full.accuracy) if full else None,
            "accuracy_all_std_pct": _pct(spread(full)) if full else None,
            "accuracy_400_pct": _pct(few.accuracy) if few else None,
            "accuracy_400_std_pct": _pct(spread(few)) if few else None,
            "selection_labels": _selection_data(present),
            "evaluated_on": "; ".join(dict.fromkeys(str(r.evaluated_on) for r in present)),
            "max_feature_units": units, "reference": "measured", "details": note,
            "files": "; ".join(r.path for r in present)})
    notes += pub_notes
    notes.append(describe_test_images(measured, "CIFAR-10") + (" Published rows: the official CIFAR-10 test set."
                                                              if published else ""))
    notes.append("± is the standard deviation over the label draws (accuracy_std of the result file; none for a "
                 "single draw). " + SELECTION_NOTE + " \"a / b\": the two accuracy columns' values when they "
                 "differ. Max # of feature units: the widest layer (k-means: "
                 "centroids).")
    display, data = _frames(display_rows, data_rows, CIFAR_COLUMNS, CIFAR_DATA)
    data["max_feature_units"] = data["max_feature_units"].astype("Int64")
    return Table("cifar10", "CIFAR-10 classification with linear L2-SVMs on frozen features "
                            "(cf. Radford, Metz & Chintala, ICLR 2016, Table 1)",
                 display, data, notes, ("l", "r", "r", "r", "r", "l", REF_COLUMN), rules if published else [])


SVHN_COLUMNS = ["Model", "Test error (1,000 labels)", SELECTION_COLUMN, "Source", "Reference"]
SVHN_DATA = ["model", "source", "test_error_pct", "test_error_std_pct", "n_labels", "selection_labels",
             "evaluated_on", "reference", "details", "files"]


def svhn_table(probes: Sequence[ProbeResult], published: bool = True) -> Table | None:
    """Table 2 of the paper: SVHN test error with 1,000 labels (results with ``protocol == "svhn"``)."""
    measured = [r for r in probes if r.protocol == "svhn"]
    if not measured:
        return None
    display_rows, data_rows, notes, rules, pub_notes = [], [], [], [], []
    if published:
        for model, rows in _published_by_model("svhn").items():
            row = rows[0]
            display_rows.append({"Model": model,
                                 "Test error (1,000 labels)": format_pm(row.value, row.std, row.decimals,
                                                                        row.std_decimals),
                                 SELECTION_COLUMN: MISSING, "Source": "published", "Reference": row.reference})
            data_rows.append({"model": model, "source": "published", "test_error_pct": row.value,
                              "test_error_std_pct": row.std, "n_labels": 1000, "selection_labels": None,
                              "evaluated_on": "official test set", "reference": row.reference,
                              "details": row.note, "files": None})
            if row.note:
                pub_notes.append(f"{model} (published): {row.note}.")
        rules.append(len(display_rows))
    markers = _markers()
    for label, group in _group_rows(measured).items():
        r = group[0]
        mark = next(markers)
        note = describe_probe_row(label, [r])
        notes.append(f"[{mark}] {note}")
        display_rows.append({"Model": label,
                             "Test error (1,000 labels)": format_pm(r.error, spread(r), 2, scale=100),
                             SELECTION_COLUMN: selection_budget(r), "Source": "measured", "Reference": f"[{mark}]"})
        data_rows.append({"model": label, "source": "measured", "test_error_pct": _pct(r.error),
                          "test_error_std_pct": _pct(spread(r)), "n_labels": r.n_train,
                          "selection_labels": r.selection_labels, "evaluated_on": r.evaluated_on,
                          "reference": "measured", "details": note, "files": r.path})
    notes += pub_notes
    notes.append(describe_test_images(measured, "SVHN") + (" Published rows: the official SVHN test set."
                                                          if published else ""))
    notes.append("Test error with 1,000 labelled training images; ± is the standard deviation over the label draws "
                 "(accuracy_std of the result file; none for a single draw). " + SELECTION_NOTE)
    display, data = _frames(display_rows, data_rows, SVHN_COLUMNS, SVHN_DATA)
    data["n_labels"] = data["n_labels"].astype("Int64")
    return Table("svhn", "SVHN classification with 1,000 labels (cf. Radford, Metz & Chintala, ICLR 2016, Table 2)",
                 display, data, notes, ("l", "r", "r", "l", REF_COLUMN), rules if published else [])


SQ_COLUMNS = ["Model", "Inception Score", "FID", "Source", "Reference"]
SQ_DATA = ["model", "source", "inception_score", "inception_score_std", "fid", "fid_reference", "reference",
           "details", "files"]


def describe_sample_row(label: str, results: Sequence[SampleQualityResult]) -> str:
    parts = []
    for s in results:
        what = []
        if s.inception_score is not None:
            what.append("IS")
        if s.fid is not None:
            what.append(f"FID vs {s.reference}" if s.reference else "FID")
        bits = [", ".join(what)]
        if s.n_samples is not None:
            bits.append(f"{s.n_samples} samples")
        if s.splits is not None:
            bits.append(f"{s.splits} splits")
        if s.extractor:
            bits.append(f"network {s.extractor}")
        if s.conventions:
            shown = {k: v for k, v in s.conventions.items()
                     if isinstance(v, (str, int, float, bool)) and len(str(v)) < 40}
            bits.append("conventions: " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:6]))
        bits += [f"WARNING: {w}" for w in s.warnings]
        parts.append(f"{s.path} ({'; '.join(b for b in bits if b)})")
    return f"{label}: " + "; ".join(parts) + "."


def sample_quality_table(samples: Sequence[SampleQualityResult], published: bool = True,
                         datasets: Iterable[str] | None = None, skipped: Mapping[str, str] | None = None
                         ) -> Table | None:
    """Inception Score (± std over splits) and FID, one row per sample source (IS and FID results merged).

    ``datasets``: the datasets the report is about; published rows of other datasets are left out (None: all
    published rows). ``skipped``: why a metric was not computed (``{"inception_score": reason}``), said in the
    note under a "-" in its column.
    """
    if not samples:
        return None
    display_rows, data_rows, notes, rules, pub_notes = [], [], [], [], []
    wanted = None if datasets is None else set(datasets)
    published_groups = OrderedDict(
        (model, rows) for model, rows in _published_by_model("sample_quality").items()
        if wanted is None or rows[0].dataset in wanted) if published else OrderedDict()
    if published_groups:
        for model, rows in published_groups.items():
            isr = next((r for r in rows if r.metric == "inception_score"), None)
            fid = next((r for r in rows if r.metric == "fid"), None)
            ref = rows[0]
            display_rows.append({
                "Model": model,
                "Inception Score": format_pm(isr.value, isr.std, isr.decimals, isr.std_decimals, unit="",
                                             style="inline") if isr else MISSING,
                "FID": format_value(fid.value, fid.decimals, unit="") if fid else MISSING,
                "Source": "published", "Reference": ref.reference})
            data_rows.append({"model": model, "source": "published",
                              "inception_score": isr.value if isr else None,
                              "inception_score_std": isr.std if isr else None, "fid": fid.value if fid else None,
                              "fid_reference": None, "reference": ref.reference, "details": ref.note, "files": None})
            if ref.note:
                pub_notes.append(f"{model} (published): {ref.note}.")
        rules.append(len(display_rows))
    groups: OrderedDict[str, list[SampleQualityResult]] = OrderedDict()
    for s in samples:
        groups.setdefault(s.label, []).append(s)
    markers = _markers()
    for label, group in groups.items():
        isr = next((s for s in group if s.inception_score is not None), None)
        fid = next((s for s in group if s.fid is not None), None)
        mark = next(markers)
        note = describe_sample_row(label, group)
        notes.append(f"[{mark}] {note}")
        display_rows.append({
            "Model": label,
            "Inception Score": format_pm(isr.inception_score, isr.inception_score_std, 2, unit="", style="inline")
            if isr else MISSING,
            "FID": format_value(fid.fid, 2, unit="") if fid else MISSING,
            "Source": "measured", "Reference": f"[{mark}]"})
        data_rows.append({"model": label, "source": "measured",
                          "inception_score": isr.inception_score if isr else None,
                          "inception_score_std": isr.inception_score_std if isr else None,
                          "fid": fid.fid if fid else None, "fid_reference": fid.reference if fid else None,
                          "reference": "measured", "details": note, "files": "; ".join(s.path for s in group)})
    notes += pub_notes
    notes += _missing_metric_notes(samples, skipped or {})
    notes.append("Inception Score: mean ± standard deviation over splits; FID: lower is better. Scores are only "
                 "comparable when computed with the same network, resizing and sample count (see each note).")
    display, data = _frames(display_rows, data_rows, SQ_COLUMNS, SQ_DATA)
    return Table("sample_quality", "Sample quality: Inception Score and FID", display, data, notes,
                 ("l", "r", "r", "l", REF_COLUMN), rules if published_groups else [])


METRIC_NAMES = {"inception_score": ("Inception Score", "gan-probe inception-score"), "fid": ("FID", "gan-probe fid")}


def _missing_metric_notes(samples: Sequence[SampleQualityResult], skipped: Mapping[str, str]) -> list[str]:
    """Why a measured row shows "-": the reason the metric was skipped, or that no result of it was given."""
    values = {"inception_score": [s.inception_score for s in samples], "fid": [s.fid for s in samples]}
    notes = []
    for metric, (name, command) in METRIC_NAMES.items():
        if all(v is not None for v in values[metric]) and metric not in skipped:
            continue
        if metric in skipped:
            notes.append(f"{name} \"-\": not computed ({skipped[metric]}).")
        elif all(v is None for v in values[metric]):
            notes.append(f"{name} \"-\": not measured (no `{command} --json` result among the report's inputs).")
    return notes


PROBE_COLUMNS = ["Model", "Dataset", "Protocol", "Labels / class", "Accuracy", "Test error", "Test images", "C",
                 SELECTION_COLUMN, "Features", "Draws", "Seconds", "File"]
PROBE_DATA = ["model", "family", "dataset", "protocol", "labels_per_class", "n_train", "n_test", "evaluated_on",
              "accuracy_pct", "accuracy_std_pct", "error_pct", "C", "C_fixed", "selection_labels", "n_features",
              "draws", "solver", "seconds", "file"]
TEST_IMAGES = {HELD_OUT: "held out of train", TEST_SPLIT: "test split"}


def _test_images_cell(r: ProbeResult) -> str:
    n = format_int(r.n_test)
    where = TEST_IMAGES.get(r.evaluated_on)
    return n if where is None else f"{n} ({where})"


def probe_table(probes: Sequence[ProbeResult]) -> Table | None:
    """Every measured linear-probe result, one row per result file."""
    if not probes:
        return None
    order = sorted(enumerate(probes), key=lambda t: (t[1].dataset or "", PROTOCOLS_ORDER.get(t[1].protocol, 9),
                                                     t[1].labels_per_class or 0, _family_rank(t[1]), t[0]))
    display_rows, data_rows = [], []
    for _, r in order:
        lpc = "all" if r.protocol == "full" and r.labels_per_class is None else format_int(r.labels_per_class)
        display_rows.append({
            "Model": r.label, "Dataset": r.dataset or MISSING, "Protocol": r.protocol, "Labels / class": lpc,
            "Accuracy": format_pm(r.accuracy, spread(r), 2, scale=100),
            "Test error": format_value(r.error, 2, scale=100), "Test images": _test_images_cell(r),
            "C": format_C(r), SELECTION_COLUMN: selection_budget(r),
            "Features": format_int(r.n_features), "Draws": format_int(r.draws),
            "Seconds": MISSING if r.seconds is None else f"{r.seconds:.1f}", "File": r.path})
        data_rows.append({
            "model": r.label, "family": r.family, "dataset": r.dataset, "protocol": r.protocol,
            "labels_per_class": r.labels_per_class, "n_train": r.n_train, "n_test": r.n_test,
            "evaluated_on": r.evaluated_on, "accuracy_pct": _pct(r.accuracy), "accuracy_std_pct": _pct(spread(r)),
            "error_pct": _pct(r.error), "C": r.C, "C_fixed": r.hyperparameters_fixed,
            "selection_labels": r.selection_labels, "n_features": r.n_features, "draws": r.draws,
            "solver": r.solver, "seconds": r.seconds, "file": r.path})
    display, data = _frames(display_rows, data_rows, PROBE_COLUMNS, PROBE_DATA)
    for col in ("labels_per_class", "n_train", "n_test", "selection_labels", "n_features", "draws"):
        data[col] = data[col].astype("Int64")
    return Table("probes", "All linear-probe results", display, data,
                 ["Accuracy ± standard deviation over label draws (none for a single draw). Test images: how many "
                  "images scored the row, and whether they are the dataset's test split or images held out of its "
                  "training split. C: the SVM regularisation constant, chosen on a validation split unless marked "
                  "(fixed). " + SELECTION_NOTE],
                 ("l", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"))


PROTOCOLS_ORDER = {"full": 0, "few-labels": 1, "svhn": 2}

PROBE_CURVE_COLUMNS = ["Run", "Step", "Epoch", "Probe accuracy", "Best"]
PROBE_CURVE_DATA = ["run", "step", "epoch", "probe_acc_pct", "best", "probe", "file"]


def probe_curve_table(runs: Sequence[RunDir]) -> Table | None:
    """The online probe of every run that has one (``gan-probe train --probe-every``): one row per probe step."""
    display_rows, data_rows, notes = [], [], []
    for run in runs:
        curve = probe_curve(run)
        if curve is None:
            continue
        epochs = {int(r["step"]): r.get("epoch") for r in run.log if "step" in r}
        for step, acc in zip(curve.steps, curve.accuracy):
            best = step == curve.best_step
            epoch = epochs.get(step)
            display_rows.append({"Run": curve.label, "Step": format_int(step),
                                 "Epoch": MISSING if epoch is None else f"{epoch:.2f}",
                                 "Probe accuracy": format_value(acc, 1, scale=100), "Best": "*" if best else ""})
            data_rows.append({"run": curve.label, "step": step, "epoch": epoch, "probe_acc_pct": _pct(acc),
                              "best": best, "probe": describe_probe(curve.settings), "file": f"{run.path}/log.csv"})
        notes.append(f"{curve.label}: {describe_probe(curve.settings)}; best step {curve.best_step} "
                     f"({curve.best_accuracy * 100:.1f}%), kept as {run.path}/best_probe.pt.")
    if not display_rows:
        return None
    display, data = _frames(display_rows, data_rows, PROBE_CURVE_COLUMNS, PROBE_CURVE_DATA)
    data["step"] = data["step"].astype("Int64")
    notes.insert(0, "Validation accuracy of a linear L2-SVM on D's pooled features (fit and validation images "
                    "drawn from the probe dataset's training split), measured during training; * marks the best "
                    "step (the earliest of equals).")
    return Table("probe_curve", "Online linear probe during training", display, data, notes,
                 ("l", "r", "r", "r", "c"))


# ----------------------------------------------------------------------------------------------- renderers


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  PM: r"$\pm$", "×": r"$\times$", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: Any) -> str:
    """Escape LaTeX's special characters; "±" and "+-" become ``$\\pm$``."""
    text = str(text).replace("+-", PM)
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _align(table: Table) -> tuple[str, ...]:
    n = len(table.display.columns)
    return tuple(table.align) if len(table.align) == n else ("l",) + ("r",) * (n - 1)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, heading: str | None = None) -> str:
    """A GitHub-flavoured Markdown pipe table followed by the table's notes."""
    cols = list(table.display.columns)
    align = _align(table)
    lines = []
    if heading:
        lines += [heading, ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
    lines.append("|" + "|".join("---:" if a == "r" else ":---:" if a == "c" else "---" for a in align) + "|")
    for row in table.display.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if table.notes:
        lines.append("")
        lines += [f"{_md_cell(n)}  " for n in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_latex(table: Table, label_prefix: str = "tab:gan-probe-") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``) with escaped cells and notes."""
    cols = list(table.display.columns)
    align = "".join(_align(table))
    env = "table*" if len(cols) > 6 else "table"  # wide tables span both columns of a two-column paper
    out = ["% generated by gan-probe report; needs \\usepackage{booktabs}",
           f"\\begin{{{env}}}[t]", "\\centering", *(["\\small"] if env == "table*" else []),
           f"\\caption{{{latex_escape(table.title)}}}",
           f"\\label{{{label_prefix}{table.name.replace('_', '-')}}}", f"\\begin{{tabular}}{{{align}}}", "\\toprule",
           " & ".join(latex_escape(c) for c in cols) + " \\\\", "\\midrule"]
    for i, row in enumerate(table.display.itertuples(index=False)):
        if i in table.rule_before and i > 0:
            out.append("\\midrule")
        cells = [latex_escape(v) for v in row]
        if cells and cells[0].startswith("["):
            cells[0] = "{}" + cells[0]  # after "\\\\" a leading "[" would be read as a length
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if table.notes:
        out += ["\\par\\smallskip", "{\\footnotesize\\sloppy"]
        out += [latex_escape(n) + ("\\par" if i < len(table.notes) - 1 else "") for i, n in enumerate(table.notes)]
        out.append("}")
    out.append(f"\\end{{{env}}}")
    return "\n".join(out) + "\n"


def write_csv(table: Table, path: str | Path) -> Path:
    """The numeric frame as CSV (read it back with ``pandas.read_csv``)."""
    return write_text(path, table.data.to_csv(index=False, lineterminator="\n"))


RENDERERS: dict[str, tuple[str, Callable[[Table, Path], Path]]] = {
    "tex": (".tex", lambda t, p: write_text(p, to_latex(t))),
    "csv": (".csv", write_csv),
}
