"""Assemble the whole report directory: tables, figures, report.md, report.json.

Layout of ``DIR/``::

    report.md            tables, figures (relative links), notes and the provenance section
    report.json          the normalised records, tables (display and data), figures, notes, provenance
    tables/NAME.tex      booktabs tables (``--format tex``)
    tables/NAME.csv      numeric tables (``--format csv``)
    figures/*.png        label efficiency, C selection, training curves, sample grids, given PNGs

The directory is built next to ``DIR`` under a temporary name and renamed into place, so ``DIR`` is either the
previous complete report or the new one; re-running replaces it cleanly. An existing ``DIR`` that is neither
empty nor a gan-probe report is never touched.

>>> report = build_report(["results/", "runs/cifar_dcgan"], "reports/cifar10")     # doctest: +SKIP
>>> report.markdown_path                                                          # doctest: +SKIP
PosixPath('reports/cifar10/report.md')
"""
from __future__ import annotations

import datetime as _dt
import glob
import importlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..atomic import _umask, write_json, write_text
from ..errors import ConfigError, GanProbeError
from ..provenance import command_line, git_commit, versions
from . import figures as figs
from .provenance_block import provenance_dict, provenance_markdown
from .results import Results, load_results
from .series import (c_selection_groups, describe_probe, group_title, label_efficiency_data, probe_curve,
                     published_label_efficiency)
from .assemble import build_tables
from .tables import RENDERERS, Table, to_markdown

FORMATS = ("md", "tex", "csv")
REPORT_FORMAT = "gan-probe-report"
REPORT_FORMAT_VERSION = 1


@dataclass
class FigureRef:
    path: str  # relative to the report directory
    title: str
    caption: str


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: Path
    results: Results
    tables: list[Table]
    figures: list[FigureRef]
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # relative paths of every file written

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / "report.md"


def parse_formats(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"md,tex"`` or ``["md", "tex"]`` -> ("md", "tex"); unknown names raise ConfigError."""
    items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    bad = [v for v in items if v not in FORMATS]
    if bad or not items:
        raise ConfigError(f"--format {','.join(items) or value!r}: expected a comma-separated subset of "
                          f"{', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


class _Names:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, stem: str, suffix: str = ".png") -> str:
        base, i = slug(stem), 1
        name = base + suffix
        while name in self.used:
            i += 1
            name = f"{base}-{i}{suffix}"
        self.used.add(name)
        return name


# ----------------------------------------------------------------------------------------------- figures


INTERPOLATION_ROWS, INTERPOLATION_STEPS = 4, 10


def _interpolation(checkpoint: str, path: Path) -> str | None:
    """Draw a latent interpolation figure of a run's checkpoint with :mod:`gan_probe.viz` when it is available
    (``interpolate_figure`` + ``save_figure``; 4 walks of 10 steps, seed 0).

    Returns None on success, or a note saying why it was skipped.
    """
    try:
        viz = importlib.import_module("gan_probe.viz")
    except ImportError:
        return "latent interpolation skipped: gan_probe.viz is not available in this installation"
    draw, save = getattr(viz, "interpolate_figure", None), getattr(viz, "save_figure", None)
    if draw is None or save is None:
        return "latent interpolation skipped: gan_probe.viz has no interpolate_figure/save_figure"
    try:
        from ..models.checkpoint import load_models

        models = load_models(checkpoint, device="cpu", vae=True)  # a VAE's decoder interpolates like G
        save(draw(models, rows=INTERPOLATION_ROWS, steps=INTERPOLATION_STEPS, seed=0), path)
    except GanProbeError as exc:
        return f"latent interpolation for {checkpoint} skipped: {exc}"
    if not path.is_file():
        return f"latent interpolation for {checkpoint} skipped: gan_probe.viz wrote no file"
    return None


def build_figures(results: Results, fig_dir: Path, published: bool = True,
                  interpolation: bool = True) -> tuple[list[FigureRef], list[str]]:
    """Draw every figure the inputs allow into ``fig_dir``; returns figure references and notes."""
    refs: list[FigureRef] = []
    notes: list[str] = []
    names = _Names()
    rel = fig_dir.name

    points = label_efficiency_data(results.probes)
    for dataset in dict.fromkeys(points["dataset"]) if not points.empty else []:
        sub = points[points["dataset"] == dataset]
        if sub["labels_per_class"].nunique() < 2:
            continue
        pub = published_label_efficiency(dataset) if published else None
        name = names(f"label_efficiency_{dataset}")
        figs.label_efficiency_figure(points, fig_dir / name, dataset, pub)
        caption = (f"Test accuracy of a linear L2-SVM against the number of labelled training images per class on "
                   f"{dataset} (log axis); error bars: ± standard deviation over label draws.")
        if pub is not None and not pub.empty:
            caption += " Open markers: the paper's numbers (Radford, Metz & Chintala, ICLR 2016)."
        all_note = figs.describe_all_labels(sub, pub)
        if all_note:
            caption += " " + all_note
        refs.append(FigureRef(f"{rel}/{name}", f"Label efficiency ({dataset})", caption))

    by_dataset: dict[str, list[tuple[str, list]]] = {}
    for key, curves in c_selection_groups(results.probes).items():
        by_dataset.setdefault(key[0], []).append((group_title(key), curves))
    for dataset, panels in by_dataset.items():
        name = names(f"c_selection_{dataset}")
        title = f"C selection on {dataset}"
        figs.c_selection_figure(panels, fig_dir / name, title)
        refs.append(FigureRef(f"{rel}/{name}", title,
                              "Validation accuracy against the SVM's C (log axis) for each protocol; the star marks "
                              "the C each result chose (stars at the same point are drawn smaller on top of "
                              "each other)."))

    from .layers import layer_profile_figure, layer_profiles

    profiles = layer_profiles(results.probes)
    for dataset in dict.fromkeys(p.dataset for p in profiles):
        name = names(f"layer_profile_{dataset}")
        layer_profile_figure([p for p in profiles if p.dataset == dataset], fig_dir / name)
        refs.append(FigureRef(f"{rel}/{name}", f"Per-layer profile ({dataset})",
                              "Test accuracy of a linear L2-SVM on one conv layer's pooled features (left) and on "
                              "the first k layers together (right); error bars: ± standard deviation over label "
                              "draws."))

    logged = [r for r in results.runs if r.log]
    if logged:
        name = names("training_curves")
        figs.loss_curves_figure(logged, fig_dir / name)
        probed = any(probe_curve(r) is not None for r in logged)
        gans = any(any("loss_d" in row for row in r.log) for r in logged)
        vaes = [r for r in logged if any("recon" in row for row in r.log)]
        vae_note = (" VAE runs (--model vae): the negative ELBO (solid), its reconstruction term (dashed) and its KL "
                    "term (dotted), in nats per image." if vaes else "")
        caption = ("Discriminator and generator losses (left) and D's mean output on real and generated "
                   + ("images (middle) from each run's log.csv; right: the online probe's validation "
                      "accuracy (--probe-every), a star on the best step." if probed
                      else "images (right) from each run's log.csv.")) if gans else "From each run's log.csv."
        refs.append(FigureRef(f"{rel}/{name}", "Training curves", caption + vae_note))
    for run in results.runs:
        curve = probe_curve(run)
        if curve is not None:
            name = names(f"probe_curve_{Path(run.path).resolve().name}")
            figs.probe_curve_figure([curve], fig_dir / name, f"Online linear probe: {run.label}")
            refs.append(FigureRef(f"{rel}/{name}", f"Online probe: {run.label}",
                                  f"Validation accuracy of a linear L2-SVM on D's pooled features during training "
                                  f"({describe_probe(curve.settings)}); the star marks the best step "
                                  f"({curve.best_step}, {curve.best_accuracy * 100:.1f}%), whose checkpoint the run "
                                  f"kept as best_probe.pt."))
        if run.last_sample:
            name = names(f"samples_{Path(run.path).resolve().name}")
            figs.sample_grid_figure(run.last_sample, fig_dir / name, f"{run.label}: {Path(run.last_sample).stem}")
            refs.append(FigureRef(f"{rel}/{name}", f"Samples: {run.label}",
                                  f"The run's last sample grid ({run.last_sample}; fixed latent codes), redrawn "
                                  f"without resampling."))
        else:
            notes.append(f"{run.path}: no samples/*.png to show")
        if interpolation and run.checkpoint:
            name = names(f"interpolation_{Path(run.path).resolve().name}")
            note = _interpolation(run.checkpoint, fig_dir / name)
            if note is None:
                refs.append(FigureRef(f"{rel}/{name}", f"Latent interpolation: {run.label}",
                                      f"Generator outputs along {INTERPOLATION_ROWS} paths between random latent codes "
                                      f"(seed 0; {run.checkpoint}). The paper reads gradual, plausible transitions "
                                      f"as a sign against memorisation and abrupt jumps as a sign of it; the strip "
                                      f"is shown for that judgement, which the report does not make (`gan-probe viz "
                                      f"neighbours` shows the nearest training images of samples)."))
            else:
                names.used.discard(name)
                notes.append(note)
    for image in results.images:
        name = names(Path(image.path).stem)
        figs.copy_png(image.path, fig_dir / name)
        refs.append(FigureRef(f"{rel}/{name}", image.label, f"Supplied figure: {image.path}."))
    return refs, list(dict.fromkeys(notes))


# ----------------------------------------------------------------------------------------------- markdown


def _report_provenance(command: str | None) -> dict[str, Any]:
    from .. import __version__

    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "version": __version__, "gan_probe_commit": git_commit(), "versions": versions(),
            "command": command if command is not None else command_line()}


def render_markdown(title: str, results: Results, tables: Sequence[Table], figures: Sequence[FigureRef],
                    notes: Sequence[str], report_prov: dict[str, Any], formats: Sequence[str]) -> str:
    counts = [f"{len(results.probes)} linear-probe result{'s' if len(results.probes) != 1 else ''}",
              f"{len(results.samples)} sample-quality result{'s' if len(results.samples) != 1 else ''}",
              f"{len(results.runs)} training run{'s' if len(results.runs) != 1 else ''}"]
    if results.images:
        counts.append(f"{len(results.images)} supplied figure{'s' if len(results.images) != 1 else ''}")
    out = [f"# {title}", "",
           f"Generated by `gan-probe report` on {report_prov['created']} from " + ", ".join(counts) + ".", ""]
    if tables:
        out += ["Rows marked *published* are the numbers printed in the cited papers; rows marked *measured* come "
                "from the result files named in the notes under each table (data checksums, checkpoint and protocol).",
                "", "## Tables", ""]
        for i, table in enumerate(tables, start=1):
            out.append(to_markdown(table, heading=f"### Table {i}. {table.title}"))
            links = [f"[{fmt.upper() if fmt == 'csv' else 'LaTeX'}](tables/{table.name}{RENDERERS[fmt][0]})"
                     for fmt in formats if fmt in RENDERERS]
            if links:
                out += ["Files: " + ", ".join(links), ""]
    if figures:
        out += ["## Figures", ""]
        for i, fig in enumerate(figures, start=1):
            out += [f"### Figure {i}. {fig.title}", "", f"![{fig.title}]({fig.path})", "", f"*{fig.caption}*", ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out.append(provenance_markdown(results, report_prov))
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- directory


def _is_previous_report(path: Path) -> bool:
    try:
        return json.loads((path / "report.json").read_text()).get("format") == REPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_out_dir(out: Path, inputs: Sequence[str]) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not _is_previous_report(out):
        raise ConfigError(f"--out {out}: the directory is not empty and is not a gan-probe report; choose another "
                          f"--out (it would be replaced)")
    resolved = out.resolve()
    for item in inputs:
        p = Path(item).resolve()
        if p == resolved or resolved in p.parents:
            raise ConfigError(f"--out {out}: holds the input {item} and would be replaced; choose a directory "
                              f"outside the inputs")


def _remove_stale_staging(out: Path) -> list[Path]:
    """Delete the staging (``.NAME.tmp-*``) and retired (``.NAME.old-*``) directories that a build of ``out``
    killed part-way left beside it. Like a training run's resume, this assumes one build per ``out`` at a time."""
    stale = [p for pattern in (".tmp-*", ".old-*")
             for p in out.parent.glob(f".{glob.escape(out.name)}{pattern}") if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def _swap_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def build_report(results: Results | Iterable[str | os.PathLike], out: str | os.PathLike,
                 formats: str | Iterable[str] = FORMATS, title: str | None = None, published: bool = True,
                 interpolation: bool = True, command: str | None = None,
                 skipped: Mapping[str, str] | None = None) -> Report:
    """Build the report directory ``out`` from result files / run directories (or loaded :class:`Results`).

    ``formats``: any of "md" (report.md), "tex" (tables/*.tex), "csv" (tables/*.csv); figures and report.json
    are always written. ``published=False`` leaves the paper's rows out. ``interpolation=False`` skips the latent
    interpolation strips (they need ``gan_probe.viz`` and a run checkpoint). ``command`` is recorded in the
    provenance section (default: this process's command line). ``skipped``: why a sample-quality metric was not
    computed (``{"inception_score": reason}``), said under its "-" in the table.
    """
    formats = parse_formats(formats)
    if not isinstance(results, Results):
        results = load_results(list(results))
    if not len(results):
        raise GanProbeError("no results to report")
    out = Path(out)
    _check_out_dir(out, results.inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0o700 would become the report's; give it the usual mode
    try:
        report = _write(results, staging, formats, title, published, interpolation, command, skipped)
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.out_dir = out
    return report


def _write(results: Results, root: Path, formats: Sequence[str], title: str | None, published: bool,
           interpolation: bool, command: str | None, skipped: Mapping[str, str] | None = None) -> Report:
    title = title or "gan-probe report"
    files: list[str] = []
    tables = build_tables(results.probes, results.samples, published, results.runs, skipped)
    for table in tables:
        for fmt in formats:
            if fmt in RENDERERS:
                suffix, render = RENDERERS[fmt]
                render(table, root / "tables" / f"{table.name}{suffix}")
                files.append(f"tables/{table.name}{suffix}")
    figures, fig_notes = build_figures(results, root / "figures", published, interpolation)
    files += [f.path for f in figures]
    notes = list(dict.fromkeys([*results.notes, *fig_notes]))
    prov = _report_provenance(command)
    if "md" in formats:
        write_text(root / "report.md", render_markdown(title, results, tables, figures, notes, prov, formats))
        files.append("report.md")
    files.append("report.json")
    write_json(root / "report.json", {
        "format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION, "title": title, "provenance": prov,
        "inputs": results.inputs, "formats": list(formats), "files": files,
        "records": [r.to_dict() for r in results.records], "tables": [t.to_dict() for t in tables],
        "figures": [f.__dict__ for f in figures], "notes": notes, "result_provenance": provenance_dict(results)})
    return Report(root, results, tables, figures, notes, files)
