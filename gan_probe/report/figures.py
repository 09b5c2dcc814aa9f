"""The report's figures, drawn with matplotlib's object API (Agg canvas, no pyplot state) and written atomically.

>>> from gan_probe.report.series import label_efficiency_data
>>> label_efficiency_figure(label_efficiency_data(probes), "figures/le.png", "cifar10")   # doctest: +SKIP
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..atomic import atomic_path
from .results import RunDir
from .series import CCurve, ProbeCurve, probe_curve

FAMILY_COLORS = {"dcgan": "#1f77b4", "random-d": "#2ca02c", "vae": "#d62728", "network": "#8c564b",
                 "kmeans": "#ff7f0e", "pixels": "#7f7f7f", "other": "#9467bd", "published": "#222222"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
DPI = 150
PNG_METADATA = {"Software": None}  # no matplotlib version in the file: same inputs -> same bytes


def new_figure(width: float = 6.4, height: float = 4.0, **kwargs) -> Figure:
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (temporary file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata=PNG_METADATA)
    return path


def _style(family: str, index_in_family: int) -> dict:
    return {"color": FAMILY_COLORS.get(family, FAMILY_COLORS["other"]),
            "marker": MARKERS[index_in_family % len(MARKERS)],
            "linestyle": LINESTYLES[index_in_family % len(LINESTYLES)]}


def all_labels_position(few: Sequence[float], full: Sequence[float]) -> float | None:
    """Where the "all labels" points of a label-efficiency plot sit: one shared x for every full-protocol point
    (measured ones use about 4,000 images per class after a validation split, the paper's 5,000), at the largest
    of their counts and at least 1.5x past the largest few-label count. None without full-protocol points.

    >>> all_labels_position([25, 400], [4000.0, 5000.0]), all_labels_position([1000], [900.0])
    (5000.0, 1500.0)
    """
    if not len(full):
        return None
    return max(max(full), 1.5 * max(few, default=0.0))


def label_ticks(few: Sequence[float], x_all: float | None) -> tuple[list[float], list[str]]:
    """The ticks of a label-efficiency axis: each few-label count, then "all" at ``x_all``.

    >>> label_ticks([400, 50, 400], 5000.0)
    ([50.0, 400.0, 5000.0], ['50', '400', 'all'])
    """
    ticks = sorted({float(v) for v in few})
    labels = [f"{v:g}" for v in ticks]
    if x_all is not None:
        ticks.append(float(x_all))
        labels.append("all")
    return ticks, labels


def describe_all_labels(points: pd.DataFrame, published: pd.DataFrame | None = None) -> str | None:
    """The caption's sentence on the "all" position: how many labels per class each source's full protocol used.

    >>> df = pd.DataFrame({"protocol": ["full", "few-labels"], "labels_per_class": [4000.0, 400.0]})
    >>> describe_all_labels(df, pd.DataFrame({"protocol": ["full"], "labels_per_class": [5000.0]}))
    '"all": every labelled training image, drawn at one position (measured: ~4,000 per class; paper: 5,000 per class).'
    """
    parts = []
    for name, df, approx in (("measured", points, "~"), ("paper", published, "")):
        if df is None or df.empty:
            continue
        counts = sorted({round(float(v)) for v in df.loc[df["protocol"] == "full", "labels_per_class"]})
        if counts:
            parts.append(f"{name}: " + ", ".join(f"{approx}{c:,}" for c in counts) + " per class")
    if not parts:
        return None
    return f'"all": every labelled training image, drawn at one position ({"; ".join(parts)}).'


def label_efficiency_figure(points: pd.DataFrame, path: str | Path, dataset: str,
                            published: pd.DataFrame | None = None) -> Path:
    """Test accuracy (%) against labelled images per class (log axis), one line per model, ± std error bars.

    ``points`` is :func:`gan_probe.report.series.label_efficiency_data` (rows of other datasets are ignored);
    ``published`` (optional) adds the paper's points as open markers joined by dotted lines.
    """
    df = points[points["dataset"] == dataset]
    has_published = published is not None and not published.empty
    frames = [df, published] if has_published else [df]
    few = [v for f in frames for v in f.loc[f["protocol"] != "full", "labels_per_class"].astype(float)]
    x_all = all_labels_position(few, [v for f in frames
                                      for v in f.loc[f["protocol"] == "full", "labels_per_class"].astype(float)])

    def placed(group: pd.DataFrame) -> pd.DataFrame:  # every "all labels" point at the one shared position
        group = group.copy()
        group.loc[group["protocol"] == "full", "labels_per_class"] = x_all
        return group.sort_values("labels_per_class")

    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    seen: dict[str, int] = {}
    for model, group in df.groupby("model", sort=False):
        family = str(group["family"].iloc[0])
        idx = seen.get(family, 0)
        seen[family] = idx + 1
        style = _style(family, idx)
        group = placed(group)
        yerr = group["std_pct"].astype(float).fillna(0.0).to_numpy()
        ax.errorbar(group["labels_per_class"], group["accuracy_pct"], yerr=yerr if yerr.any() else None,
                    label=model, capsize=3, linewidth=1.6, markersize=5, **style)
    if has_published:
        for i, (model, group) in enumerate(published.groupby("model", sort=False)):
            group = placed(group)
            yerr = group["std_pct"].astype(float).fillna(0.0).to_numpy()
            ax.errorbar(group["labels_per_class"], group["accuracy_pct"], yerr=yerr if yerr.any() else None,
                        label=f"{model} (paper)", color=FAMILY_COLORS["published"], marker=MARKERS[i % len(MARKERS)],
                        markerfacecolor="white", linestyle=":", linewidth=1.0, capsize=3, markersize=6)
    ax.set_xscale("log")
    ticks, labels = label_ticks(few, x_all)
    if ticks:
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.minorticks_off()
    ax.set_xlabel("labelled training images per class (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Label efficiency on {dataset}")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


def c_selection_figure(panels: Sequence[tuple[str, Sequence[CCurve]]], path: str | Path, title: str) -> Path:
    """Validation accuracy (%) against C (log axis): one panel per (protocol, labels per class), one line per
    result, a star on the chosen C; one legend for all panels."""
    n = len(panels)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig = new_figure(4.2 * ncols + 0.2, 3.3 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles: dict[str, object] = {}
    for ax, (panel_title, curves) in zip(axes, panels):
        seen: dict[str, int] = {}
        stars: list[tuple[float, float, str]] = []
        for curve in curves:
            idx = seen.get(curve.family, 0)
            seen[curve.family] = idx + 1
            style = _style(curve.family, idx)
            c = np.array([p[0] for p in curve.points])
            acc = np.array([p[1] for p in curve.points]) * 100.0
            (line,) = ax.plot(c, acc, linewidth=1.5, markersize=4, **style)
            handles.setdefault(curve.model, line)
            if curve.chosen is not None and len(c):
                hit = np.isclose(c, curve.chosen, rtol=1e-6, atol=0)
                y = acc[hit][0] if hit.any() else np.interp(np.log(curve.chosen), np.log(c), acc)
                stars.append((curve.chosen, float(y), style["color"]))
        for x, y, color, size, z in nested_stars(stars):
            ax.plot([x], [y], marker="*", markersize=size, color=color, markeredgecolor="black",
                    linestyle="none", zorder=z)
        ax.set_xscale("log")
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("C (log scale)")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    (star,) = axes[0].plot([], [], marker="*", markersize=12, color="white", markeredgecolor="black",
                           linestyle="none")
    handles["chosen C"] = star
    fig.suptitle(title)
    fig.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.0, 0.93),
               fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def nested_stars(stars: Sequence[tuple[float, float, str]], largest: float = 15.0, step: float = 4.0,
                 smallest: float = 6.0) -> list[tuple[float, float, str, float, int]]:
    """``(x, y, color, size, zorder)`` for chosen-C stars: stars at the same point (same C, same accuracy to 0.01
    points) are drawn smaller and smaller on top of each other, so that each one's colour stays visible.

    >>> [(size, z) for *_, size, z in nested_stars([(1e-3, 80.0, "r"), (1e-3, 80.0, "b"), (1e-2, 70.0, "g")])]
    [(15.0, 5), (11.0, 6), (15.0, 5)]
    """
    seen: dict[tuple[float, float], int] = {}
    out = []
    for x, y, color in stars:
        key = (round(float(np.log10(x)), 6), round(float(y), 2))
        k = seen.get(key, 0)
        seen[key] = k + 1
        out.append((x, y, color, max(smallest, largest - step * k), 5 + k))
    return out


def sample_grid_figure(png: str | Path, path: str | Path, title: str, min_inches: float = 4.0,
                       max_inches: float = 7.0) -> Path:
    """Redraw a sample-grid PNG with a title, enlarged by a whole factor (nearest neighbour: no blur) to about
    ``min_inches`` at the report's DPI."""
    from PIL import Image

    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB"))
    h, w = pixels.shape[:2]
    longest = max(h, w)
    scale = max(1, min(int(min_inches * DPI // longest), int(max_inches * DPI // longest)))  # whole pixels
    fig = new_figure(w * scale / DPI, h * scale / DPI + 0.35)
    ax = fig.add_axes((0, 0, 1, h * scale / DPI / (h * scale / DPI + 0.35)))
    ax.imshow(pixels, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=0.995)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    return Path(path)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def probe_panel(ax, curves: Sequence[ProbeCurve], colors: Sequence[str] | None = None,
                legend: bool = True) -> None:
    """Draw probe accuracy (%) against the step on ``ax``: one line per run, a star on each run's best step."""
    for i, curve in enumerate(curves):
        color = colors[i] if colors is not None else f"C{i % 10}"
        acc = np.array(curve.accuracy) * 100.0
        ax.plot(curve.steps, acc, color=color, marker="o", markersize=3, linewidth=1.5, label=curve.label)
        ax.plot([curve.best_step], [curve.best_accuracy * 100.0], marker="*", markersize=14, color=color,
                markeredgecolor="black", linestyle="none", zorder=5,
                label=f"best: step {curve.best_step}, {curve.best_accuracy * 100.0:.1f}%")
    ax.set_xlabel("step")
    ax.set_ylabel("probe validation accuracy (%)")
    ax.set_title("Online linear probe of D")
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", frameon=False)


def probe_curve_figure(curves: Sequence[ProbeCurve], path: str | Path, title: str | None = None) -> Path:
    """A stand-alone figure of the online probe's accuracy against the training step (``--probe-every``)."""
    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    probe_panel(ax, curves)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def loss_curves_figure(runs: Sequence[RunDir], path: str | Path) -> Path:
    """Training curves from log.csv: D and G losses (left; for a VAE run, ``--model vae``, its ELBO terms: the
    loss -ELBO solid, the reconstruction term dashed, the KL term dotted), D's mean outputs on real/fake images
    (middle) and, when a log has ``probe_acc`` (``--probe-every``), the online probe's accuracy with its best step
    starred.

    Long logs are drawn raw (faint) with a moving average on top (window: 1/50 of the rows).
    """
    has_d = any(any("d_real" in row for row in run.log) for run in runs)
    probes = [(i, c) for i, c in enumerate(probe_curve(run) for run in runs) if c is not None]
    panels = 1 + has_d + bool(probes)
    fig = new_figure({1: 6.4, 2: 11.0, 3: 16.0}[panels], 4.0)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        # not the probe's row of step 0
        rows = [r for r in run.log if "step" in r and ("loss_d" in r or "loss" in r)]
        step = np.array([r["step"] for r in rows])
        window = max(1, len(rows) // 50)
        for key, style, name in _loss_lines(rows):
            y = np.array([r.get(key, np.nan) for r in rows])
            if window > 1:
                axes[0].plot(step, y, color=color, linestyle=style, alpha=0.2, linewidth=0.8)
            axes[0].plot(step, _smooth(y, window), color=color, linestyle=style, linewidth=1.5,
                         label=f"{run.label}: {name}")
        if has_d:
            for key, style, name in (("d_real", "-", "D(x)"), ("d_fake", "--", "D(G(z))")):
                y = np.array([r.get(key, np.nan) for r in rows])
                axes[1].plot(step, _smooth(y, window), color=color, linestyle=style, linewidth=1.5,
                             label=f"{run.label}: {name}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].set_title("Training losses" + (" (moving average)" if any(len(r.log) >= 100 for r in runs) else ""))
    if has_d:
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("mean sigmoid(D)")
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_title("Discriminator outputs")
    if probes:
        probe_panel(axes[-1], [c for _, c in probes], [f"C{i % 10}" for i, _ in probes], legend=False)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if len(runs) == 1:
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best", frameon=False)
    else:  # one key for all panels: a colour per run, then what solid and dashed lines are
        if probes:  # and on the probe panel the best steps, which the run colours alone do not say
            stars = [(h, label) for h, label in zip(*axes[-1].get_legend_handles_labels()) if label.startswith("best")]
            axes[-1].legend(*zip(*stars), fontsize=7, loc="best", frameon=False)
        handles = [Line2D([], [], color=f"C{i % 10}", linewidth=1.5) for i in range(len(runs))]
        labels = [run.label for run in runs]
        handles += [Line2D([], [], color="0.3", linestyle="-"), Line2D([], [], color="0.3", linestyle="--")]
        labels += ["solid: D loss" + (", D(x)" if has_d else ""), "dashed: G loss" + (", D(G(z))" if has_d else "")]
        if any(_loss_lines(run.log) is VAE_LINES for run in runs):
            handles.append(Line2D([], [], color="0.3", linestyle=":"))
            labels[-2:] = [labels[-2] + "; VAE: -ELBO", labels[-1] + "; VAE: reconstruction", "dotted: VAE: KL"]
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.93), fontsize=8, frameon=False)
    return save_figure(fig, path)


GAN_LINES = (("loss_d", "-", "D loss"), ("loss_g", "--", "G loss"))
VAE_LINES = (("loss", "-", "-ELBO"), ("recon", "--", "reconstruction"), ("kl", ":", "KL"))


def _loss_lines(rows: Sequence[dict]) -> tuple[tuple[str, str, str], ...]:
    """The (log column, line style, name) of a run's loss curves: a VAE's ELBO terms or the GAN's losses."""
    return VAE_LINES if any("recon" in r for r in rows) else GAN_LINES


def copy_png(src: str | Path, dst: str | Path) -> Path:
    """Copy a PNG (e.g. a run's sample grid) into the report, atomically."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
