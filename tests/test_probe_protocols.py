"""Label draws, C selection and the three probe protocols on tiny synthetic features."""
import dataclasses
import math
import re

import numpy as np
import pytest

from gan_probe.errors import ConfigError
from gan_probe.probe import DEFAULT_C_GRID, ProbeConfig, per_class_draw, run_protocol, spread_draw, stratified_holdout
from gan_probe.probe.protocols import _selection


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def blobs(n_per_class, k=4, d=10, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).normal(size=(k, d)) * 1.5
    y = np.repeat(np.arange(k), n_per_class)
    x = centers[y] + spread * rng.normal(size=(len(y), d))
    return x.astype(np.float32), y


# -- label draws --------------------------------------------------------------------------------------------

def test_per_class_draws_are_balanced_reproducible_and_seed_dependent():
    labels = np.repeat(np.arange(5), 30)
    pool = np.arange(150)
    a = per_class_draw(labels, pool, 7, seed=3, draw=0)
    assert np.bincount(labels[a]).tolist() == [7] * 5
    assert np.array_equal(a, per_class_draw(labels, pool, 7, seed=3, draw=0))
    assert not np.array_equal(a, per_class_draw(labels, pool, 7, seed=3, draw=1))
    assert not np.array_equal(a, per_class_draw(labels, pool, 7, seed=4, draw=0))
    assert len(np.unique(a)) == len(a)


def test_draws_stay_inside_the_pool():
    labels = np.repeat(np.arange(3), 20)
    rest, val = stratified_holdout(labels, 12, seed=0)
    assert not set(rest) & set(val) and len(rest) + len(val) == 60
    assert np.bincount(labels[val]).tolist() == [4, 4, 4]
    for d in range(5):
        rows = per_class_draw(labels, rest, 5, seed=0, draw=d)
        assert set(rows) <= set(rest)


def test_spread_draw_puts_the_same_number_in_every_class():
    labels = np.repeat(np.arange(10), 200)
    rows = spread_draw(labels, np.arange(2000), 1000, seed=0)
    assert np.bincount(labels[rows]).tolist() == [100] * 10
    uneven = spread_draw(labels, np.arange(2000), 23, seed=1)
    counts = np.bincount(labels[uneven], minlength=10)
    assert counts.sum() == 23 and counts.min() == 2 and counts.max() == 3


def test_stratified_holdout_keeps_class_proportions():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    _, val = stratified_holdout(labels, 20, seed=5)
    assert np.bincount(labels[val]).tolist() == [12, 6, 2]


def test_too_many_labels_per_class_is_a_clear_error():
    labels = np.array([0] * 10 + [1] * 4)
    with pytest.raises(ConfigError, match="--labels-per-class 5: class 1 has only 4"):
        per_class_draw(labels, np.arange(14), 5, seed=0)


def test_holdout_larger_than_the_data_is_a_clear_error():
    with pytest.raises(ConfigError, match="--val-size 20"):
        stratified_holdout(np.repeat([0, 1], 10), 20, seed=0)


# -- C selection --------------------------------------------------------------------------------------------

def test_selection_takes_the_best_mean_and_breaks_ties_towards_smaller_C():
    grid = [0.01, 0.1, 1.0]
    val = np.array([[0.5, 0.8, 0.7], [0.6, 0.6, 0.7]])       # means 0.55, 0.70, 0.70
    sel = _selection(grid, val, None, fixed=False, n_val=10, n_sel=2)
    assert sel["chosen"] == 0.1
    assert [p["val_accuracy"] for p in sel["curve"]] == pytest.approx([0.55, 0.7, 0.7])


def test_protocol_chooses_the_grid_point_with_the_best_validation_accuracy():
    x, y = blobs(40, spread=2.5, seed=1)
    cfg = ProbeConfig(C_grid=(1e-5, 1e-3, 1e-1, 10.0), val_size=40, seed=2, device="cpu")
    out = run_protocol(x, y, x, y, cfg)
    curve = out["C_selection"]["curve"]
    best = max(p["val_accuracy"] for p in curve)
    assert out["C"] == min(p["C"] for p in curve if p["val_accuracy"] == best)
    assert out["n_val"] == 40 and out["n_train"] == len(y)  # refit on all training labels
    assert [p["C"] for p in curve] == [1e-5, 1e-3, 1e-1, 10.0]


def test_C_patience_stops_the_grid_once_validation_accuracy_stops_improving():
    x, y = blobs(40, spread=2.5, seed=1)
    grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    whole = run_protocol(x, y, x, y, ProbeConfig(C_grid=grid, val_size=40, seed=2, device="cpu"))
    acc = [p["val_accuracy"] for p in whole["C_selection"]["curve"]]
    best = int(np.argmax(acc))
    assert best == 3 and max(acc[4:6]) < acc[best]  # the data this test needs: a peak, then two lower values
    cut = run_protocol(x, y, x, y, ProbeConfig(C_grid=grid, val_size=40, seed=2, device="cpu", C_patience=2))
    sel = cut["C_selection"]
    assert sel["curve"] == whole["C_selection"]["curve"][:6]
    assert sel["skipped"] == [1.0, 10.0] and sel["grid"] == list(grid) and "--C-patience 2" in sel["stopped"]
    assert [f["C"] for f in cut["fits"]] == [*grid[:6], 1e-3]
    assert cut["C"] == whole["C"] == 1e-3 and cut["accuracy"] == whole["accuracy"]
    # the curve starts flat (three ties): ties never count towards the patience, or the cut above would have
    # stopped at the third C; 4 values below the best never exhaust a patience of 5
    assert acc[:3] == [acc[0]] * 3
    longer = run_protocol(x, y, x, y, ProbeConfig(C_grid=grid, val_size=40, seed=2, device="cpu", C_patience=5))
    assert longer["C_selection"]["curve"] == whole["C_selection"]["curve"] and "skipped" not in longer["C_selection"]


# -- protocols ----------------------------------------------------------------------------------------------

def test_full_protocol_with_fixed_C_uses_every_row_and_holds_nothing_out():
    x, y = blobs(30)
    xt, yt = blobs(10, seed=9)
    out = run_protocol(x, y, xt, yt, ProbeConfig(C=0.5, device="cpu"))
    assert out["protocol"] == "full" and out["n_val"] == 0 and out["n_train"] == 120
    assert out["C_selection"]["mode"] == "fixed" and out["C"] == 0.5
    assert 0.9 <= out["accuracy"] <= 1.0 and out["error"] == pytest.approx(1 - out["accuracy"])


def test_fits_record_the_preconditioner_the_precision_and_the_cg_cap_the_solver_used():
    from gan_probe.probe import SolverOptions

    x, y = blobs(30)
    xt, yt = blobs(10, seed=9)
    default = run_protocol(x, y, xt, yt, ProbeConfig(C=0.5, device="cpu", method="primal"))["fits"][-1]
    assert (default["preconditioner"], default["hessian_precision"], default["bfloat16_passes"]) == (
        "subspace", "storage", 0)   # "auto" on a small problem
    assert "hessian_layout" not in default and default["max_cg"] == 250
    opts = SolverOptions(precondition="sketch", sketch_rank=4, hessian_precision="bfloat16", hessian_layout="plain")
    fast = run_protocol(x, y, xt, yt, ProbeConfig(C=0.5, device="cpu", method="primal", options=opts))["fits"][-1]
    assert fast["preconditioner"] == "sketch" and fast["hessian_precision"] == "bfloat16"
    assert fast["bfloat16_passes"] > 0 and fast["hessian_layout"] == "plain" and fast["max_cg"] == 30
    # the whole plan the solve executed is recorded with each fit
    assert fast["plan"] == {"preconditioner": "sketch", "hessian_precision": "bfloat16", "hessian_layout": "plain",
                            "max_cg": 30, "compact_fraction": 0.85, "subspace_rank": 0, "sketch_rank": 4}


def test_labels_per_class_protocol_reports_mean_and_std_over_draws():
    x, y = blobs(50, spread=2.0)
    xt, yt = blobs(25, seed=9, spread=2.0)
    out = run_protocol(x, y, xt, yt, ProbeConfig(labels_per_class=6, draws=4, C=0.1, seed=1, device="cpu"))
    accs = np.array(out["accuracies"])
    assert out["protocol"] == "few-labels" and out["draws"] == 4 and out["n_train"] == 24
    assert out["accuracy"] == pytest.approx(accs.mean())
    assert out["accuracy_std"] == pytest.approx(accs.std(ddof=1))
    again = run_protocol(x, y, xt, yt, ProbeConfig(labels_per_class=6, draws=4, C=0.1, seed=1, device="cpu"))
    assert again["accuracies"] == out["accuracies"]
    other = run_protocol(x, y, xt, yt, ProbeConfig(labels_per_class=6, draws=4, C=0.1, seed=2, device="cpu"))
    assert other["accuracies"] != out["accuracies"]


def test_svhn_protocol_holds_out_validation_first_and_reports_intervals():
    x, y = blobs(60, k=5, spread=2.5)
    xt, yt = blobs(20, k=5, seed=9, spread=2.5)
    cfg = ProbeConfig(labels=20, val_size=50, draws=6, selection_draws=3, C_grid=(1e-3, 1e-1), seed=4,
                      device="cpu")
    out = run_protocol(x, y, xt, yt, cfg)
    assert out["protocol"] == "svhn" and out["n_val"] == 50 and out["n_train"] == 20
    assert out["C_selection"]["selection_draws"] == 3
    errs = 1 - np.array(out["accuracies"])
    std = errs.std(ddof=1)
    assert out["error"] == pytest.approx(errs.mean())
    assert out["error_interval_95"] == pytest.approx([errs.mean() - 1.96 * std, errs.mean() + 1.96 * std])
    half = 1.96 * std / math.sqrt(6)
    assert out["mean_error_interval_95"] == pytest.approx([errs.mean() - half, errs.mean() + half])
    # draws after the selection draws fit only the chosen C
    assert all(len(d["fits"]) == 2 for d in out["draw_details"][:3])
    assert all(len(d["fits"]) == 1 and d["fits"][0]["C"] == out["C"] for d in out["draw_details"][3:])


def test_svhn_protocol_adapts_its_default_validation_size_to_small_training_sets():
    x, y = blobs(30, k=3, spread=2.0)
    out = run_protocol(x, y, x, y, ProbeConfig(labels=9, draws=2, C_grid=(0.1,), device="cpu"))
    assert out["n_val"] == 18 and "notes" in out


@pytest.mark.parametrize("kwargs,match", [
    ({"C": 0.0}, "C must be a positive"),
    ({"C": -1.0}, "C must be a positive"),
    ({"C_grid": (0.1, -2.0)}, "C must be a positive"),
    ({"labels_per_class": 3, "labels": 30}, "different protocols"),
    ({"draws": 0, "labels_per_class": 2}, "--draws"),
    ({"C_patience": 0}, "--C-patience must be at least 1"),
    ({"C_patience": 2, "labels_per_class": 3}, "--C-patience applies to the full-label protocol"),
])
def test_invalid_configurations_are_rejected(kwargs, match):
    x, y = blobs(10)
    with pytest.raises(ConfigError, match=match):
        run_protocol(x, y, x, y, ProbeConfig(device="cpu", **kwargs))


def test_liblinear_solver_runs_the_same_protocol():
    x, y = blobs(25, spread=2.0)
    ours = run_protocol(x, y, x, y, ProbeConfig(labels_per_class=5, draws=2, C=0.3, device="cpu"))
    ref = run_protocol(x, y, x, y, ProbeConfig(labels_per_class=5, draws=2, C=0.3, solver="liblinear"))
    assert ref["solver"] == "liblinear" and ours["solver_info"]["method"] in ("primal", "kernel")
    for a, b in zip(ours["draw_details"], ref["draw_details"]):
        assert a["objective"] <= b["objective"] * (1 + 1e-4)
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.02


@pytest.mark.parametrize("best, edge", [(0, "smallest"), (1, None), (2, "largest")])
def test_selection_flags_a_chosen_C_at_either_end_of_the_grid(best, edge):
    from gan_probe.probe.results import summary_lines

    val = np.full((1, 3), 0.5)
    val[0, best] = 0.9
    sel = _selection([1e-4, 1e-3, 1e-2], val, None, False, 10, 1)
    assert sel["chosen"] == [1e-4, 1e-3, 1e-2][best] and sel.get("at_grid_edge") == edge
    result = {"dataset": "d", "n_train": 5, "draws": 1, "n_test": 3, "n_features": 2, "C_selection": sel,
              "C": sel["chosen"], "protocol": "full", "accuracy": 0.9, "error": 0.1, "solver": "torch", "seconds": 1.0}
    warned = [line for line in summary_lines(result) if line.startswith("warning:")]
    assert len(warned) == (edge is not None)
    if edge:
        assert ("extend the grid down" if edge == "smallest" else "extend the grid up") in warned[0]


def test_a_single_value_grid_is_never_at_an_edge():
    assert "at_grid_edge" not in _selection([1e-3], np.array([[0.7]]), None, False, 10, 1)


@pytest.mark.parametrize("names,flag", [(None, "--labels-per-class"), ("pipeline", "[probe].labels_per_class")])
def test_errors_name_the_setting_as_the_user_set_it(names, flag):
    from gan_probe.probe import probe_config
    from gan_probe.probe.config import PIPELINE_NAMES

    spelling = {} if names is None else {"names": PIPELINE_NAMES}
    grid = "--C-grid" if names is None else "[probe].C_grid"
    with pytest.raises(ConfigError, match=re.escape(f"{grid} value 0.0: C must be a positive number")):
        probe_config(C_grid=[0.1, 0.0], **spelling)
    with pytest.raises(ConfigError, match=re.escape(f"{flag} and ")):
        probe_config(labels_per_class=3, labels=30, **spelling)
    x, y = blobs(10)  # a run-time error too: more labels per class than a class has
    with pytest.raises(ConfigError, match=re.escape(f"{flag} 30: class 0 has only")):
        run_protocol(x, y, x, y, probe_config(labels_per_class=30, C=1.0, device="cpu", **spelling))


def test_probe_config_reads_the_values_as_a_user_gives_them_and_checks_them_once():
    from gan_probe.probe import probe_config

    assert probe_config(C="auto").C is None and probe_config(C="0.5").C == 0.5
    assert probe_config(C_grid="1e-3, 0.1").C_grid == (0.001, 0.1) == probe_config(C_grid=[1e-3, 0.1]).C_grid
    assert probe_config().C_grid == DEFAULT_C_GRID
    config = probe_config(labels_per_class=4, draws=2)
    assert config.protocol == "few-labels" and config.to_dict()["protocol"] == "few-labels"
    assert "names" not in config.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.C = -1.0  # checked when built; nothing changes it afterwards
    with pytest.raises(ConfigError, match=re.escape("--tol 0.0: expected a positive finite number")):
        probe_config(tol=0.0)
