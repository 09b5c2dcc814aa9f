import sys
import types

import numpy as np
import pytest
from PIL import Image

from gan_probe.report import build_figures, label_efficiency_data, load_results, published_label_efficiency
from gan_probe.report import figures as figs
from gan_probe.report.series import c_selection_groups, group_title
from report_synthetic import probe, run_dir, write

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(path, min_side=100):
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side
        return im.size


def _results(tmp_path):
    objs = {}
    for fam, base in (("dcgan", 0.70), ("kmeans", 0.60)):
        for lpc, bump in ((25, 0.0), (100, 0.05), (400, 0.08)):
            objs[f"{fam}_{lpc}"] = probe(fam, "few-labels", base + bump, 0.01 + lpc / 10000, labels_per_class=lpc)
        objs[f"{fam}_full"] = probe(fam, "full", base + 0.15, None)
    objs["nodata"] = probe("pixels", "few-labels", 0.3, 0.01, dataset=None, features_meta={"source": "pixels"})
    objs["svhn"] = probe("dcgan", "svhn", 0.77, 0.007, labels_per_class=None, dataset="svhn", n_train=1000)
    paths = [write(tmp_path / "res" / f"{k}.json", v) for k, v in objs.items()]
    return load_results(paths)


def test_label_efficiency_data_from_several_results(tmp_path):
    df = label_efficiency_data(_results(tmp_path).probes)
    rows = [(r.dataset, r.model, r.labels_per_class, round(r.accuracy_pct, 6),
             None if np.isnan(r.std_pct) else round(r.std_pct, 6)) for r in df.itertuples()]
    assert rows == [
        ("cifar10", "DCGAN (paper32) + L2-SVM", 25.0, 70.0, 1.25),
        ("cifar10", "DCGAN (paper32) + L2-SVM", 100.0, 75.0, 2.0),
        ("cifar10", "DCGAN (paper32) + L2-SVM", 400.0, 78.0, 5.0),
        ("cifar10", "DCGAN (paper32) + L2-SVM", 5000.0, 85.0, None),  # full: 50000 labels / 10 classes
        ("cifar10", "k-means (1600 centroids) + L2-SVM", 25.0, 60.0, 1.25),
        ("cifar10", "k-means (1600 centroids) + L2-SVM", 100.0, 65.0, 2.0),
        ("cifar10", "k-means (1600 centroids) + L2-SVM", 400.0, 68.0, 5.0),
        ("cifar10", "k-means (1600 centroids) + L2-SVM", 5000.0, 75.0, None),
        ("svhn", "DCGAN (paper32) + L2-SVM", 100.0, 77.0, 0.7),  # 1,000 labels / 10 classes
    ]  # the result without a dataset is left out


def test_published_label_efficiency_points():
    cifar = published_label_efficiency("cifar10")
    got = sorted((r.model, r.labels_per_class, r.accuracy_pct, r.std_pct if r.std_pct == r.std_pct else None)
                 for r in cifar.itertuples())
    assert got == [("1 Layer K-means", 400.0, 63.7, 0.7), ("1 Layer K-means", 5000.0, 80.6, None),
                   ("DCGAN + L2-SVM", 400.0, 73.8, 0.4), ("DCGAN + L2-SVM", 5000.0, 82.8, None)]
    svhn = published_label_efficiency("svhn")
    assert svhn["accuracy_pct"].tolist() == [pytest.approx(100 - 22.48)]


def test_c_selection_groups_sorted_by_protocol_and_labels(tmp_path):
    groups = c_selection_groups(_results(tmp_path).probes)
    assert list(groups) == [("cifar10", "full", None), ("cifar10", "few-labels", 25), ("cifar10", "few-labels", 100),
                            ("cifar10", "few-labels", 400), ("svhn", "svhn", 100), ("unknown", "few-labels", 400)]
    assert group_title(("cifar10", "few-labels", 400)) == "few-labels, 400 per class"
    curve = groups[("cifar10", "full", None)][0]
    assert curve.points == [(1e-4, pytest.approx(0.85)), (1e-3, pytest.approx(0.84)), (1e-2, pytest.approx(0.83))]
    assert curve.chosen == 1e-4


def test_figures_are_valid_pngs(tmp_path):
    res = _results(tmp_path)
    df = label_efficiency_data(res.probes)
    _png(figs.label_efficiency_figure(df, tmp_path / "f" / "le.png", "cifar10", published_label_efficiency("cifar10")))
    figs.label_efficiency_figure(df, tmp_path / "f" / "le2.png", "cifar10", published_label_efficiency("cifar10"))
    assert (tmp_path / "f" / "le.png").read_bytes() == (tmp_path / "f" / "le2.png").read_bytes()  # deterministic
    panels = [(group_title(k), v) for k, v in c_selection_groups(res.probes).items() if k[0] == "cifar10"]
    _png(figs.c_selection_figure(panels, tmp_path / "f" / "c.png", "C selection"))
    run = load_results([run_dir(tmp_path / "run")]).runs[0]
    _png(figs.loss_curves_figure([run], tmp_path / "f" / "loss.png"))
    w, h = _png(figs.sample_grid_figure(run.last_sample, tmp_path / "f" / "grid.png", "samples"))
    assert w == 70 * (4 * figs.DPI // 70)  # enlarged by a whole factor
    assert not list((tmp_path / "f").glob(".*"))  # no temporary files left


def test_build_figures_with_run_dir_and_png(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gan_probe.viz", None)  # viz unavailable -> interpolation skipped with a note
    run = run_dir(tmp_path / "runs" / "r1")
    (run / "checkpoint.pt").write_bytes(b"not used")
    extra = tmp_path / "interp_strip.png"
    Image.fromarray(np.zeros((20, 60, 3), np.uint8)).save(extra)
    res = _results(tmp_path)
    res_all = load_results([*res.inputs, run, extra])
    refs, notes = build_figures(res_all, tmp_path / "out" / "figures")
    names = [r.path for r in refs]
    assert names == ["figures/label_efficiency_cifar10.png", "figures/c_selection_cifar10.png",
                     "figures/c_selection_svhn.png", "figures/c_selection_unknown.png", "figures/training_curves.png",
                     "figures/samples_r1.png", "figures/interp_strip.png"]
    for r in refs:
        _png(tmp_path / "out" / r.path, min_side=20)
    assert any("latent interpolation skipped" in n for n in notes)


def test_run_without_log_or_samples_is_tolerated(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "config.json", {"train": {"dataset": "digits"}})
    (run / "checkpoint.pt").write_bytes(b"x")
    res = load_results([run])
    refs, notes = build_figures(res, tmp_path / "figures", interpolation=False)
    assert refs == [] and notes == [f"{run}: no samples/*.png to show"]


def test_interpolation_uses_viz_when_available(tmp_path, monkeypatch):
    calls = []

    def interpolate_figure(models, rows, steps, seed):
        calls.append((models, rows, steps, seed))
        return figs.new_figure(2, 1)

    fake = types.SimpleNamespace(interpolate_figure=interpolate_figure, save_figure=figs.save_figure)
    monkeypatch.setitem(sys.modules, "gan_probe.viz", fake)
    monkeypatch.setattr("gan_probe.models.checkpoint.load_models", lambda path, device, **kw: f"models of {path}")
    run = run_dir(tmp_path / "r", with_samples=False)
    (run / "checkpoint.pt").write_bytes(b"x")
    res = load_results([run])
    refs, notes = build_figures(res, tmp_path / "figures")
    assert [r.path for r in refs] == ["figures/training_curves.png", "figures/interpolation_r.png"]
    assert notes == [f"{run}: no samples/*.png to show"]
    assert calls == [(f"models of {run / 'checkpoint.pt'}", 4, 10, 0)]
    _png(tmp_path / "figures" / "interpolation_r.png", min_side=50)
    refs, _ = build_figures(res, tmp_path / "figures2", interpolation=False)
    assert [r.path for r in refs] == ["figures2/training_curves.png"] and len(calls) == 1


def test_interpolation_of_a_corrupt_checkpoint_is_a_note(tmp_path):
    pytest.importorskip("gan_probe.viz")
    run = run_dir(tmp_path / "r", with_samples=False)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    refs, notes = build_figures(load_results([run]), tmp_path / "figures")
    assert [r.path for r in refs] == ["figures/training_curves.png"]
    assert len(notes) == 2 and notes[1].startswith(f"latent interpolation for {run / 'checkpoint.pt'} skipped: ")
    assert "corrupt or truncated checkpoint" in notes[1]


def test_all_label_points_share_one_position_and_one_tick(tmp_path):
    import matplotlib

    from gan_probe.report.figures import all_labels_position, describe_all_labels, label_ticks, nested_stars

    assert all_labels_position([5, 20, 50], []) is None and label_ticks([5, 20, 50], None) == (
        [5.0, 20.0, 50.0], ["5", "20", "50"])
    assert all_labels_position([400], [4000.0, 5000.0]) == 5000.0
    assert all_labels_position([100], [90.0]) == 150.0  # never left of a few-label point
    assert label_ticks([400], 5000.0) == ([400.0, 5000.0], ["400", "all"])
    # the figure puts the measured "all" (~4,000 per class) and the paper's (5,000) at one x, labelled "all"
    res = load_results([write(tmp_path / "a.json", probe("dcgan", "full", 0.8, None, n_train=40000)),
                        write(tmp_path / "b.json", probe("dcgan", "few-labels", 0.7, 0.01))])
    df = label_efficiency_data(res.probes)
    pub = published_label_efficiency("cifar10")
    captured = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        captured["x"] = sorted({round(float(x)) for line in ax.get_lines() for x in line.get_xdata()})
        captured["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        return real_savefig(fig, *args, **kwargs)

    matplotlib.figure.Figure.savefig = spy
    try:
        figs.label_efficiency_figure(df, tmp_path / "le.png", "cifar10", pub)
    finally:
        matplotlib.figure.Figure.savefig = real_savefig
    assert captured["x"] == [400, 5000] and captured["ticks"] == ["400", "all"]
    assert describe_all_labels(df, pub) == ('"all": every labelled training image, drawn at one position '
                                            '(measured: ~4,000 per class; paper: 5,000 per class).')
    sizes = [size for *_, size, _ in nested_stars([(0.01, 90.0, "r"), (0.01, 90.001, "b"), (0.01, 90.0, "g")])]
    assert sizes == [15.0, 11.0, 7.0]
