"""Grid fits that stop once their validation predictions settle, and the refit's reuse of the grid's sketch."""
import numpy as np
import pytest
import torch

from gan_probe.errors import ConfigError
from gan_probe.probe import probe_config
from gan_probe.probe.config import PIPELINE_NAMES
from gan_probe.probe.design import dense_design
from gan_probe.probe.newton import newton_cg
from gan_probe.probe.plan import SolverOptions
from gan_probe.probe.protocols import run_protocol
from gan_probe.probe.settle import SettledPredictions
from gan_probe.probe.sketch import SketchedSpectrum

from feature_stores import gaussian_blobs


def test_monitor_counts_changes_and_stops_after_steps_unchanged():
    val = dense_design(torch.tensor([[1.0], [-1.0], [2.0]], dtype=torch.float64), intercept_scaling=1.0)
    watch = SettledPredictions(val, steps=2)
    first = torch.tensor([[1.0, -1.0], [0.0, 0.0]], dtype=torch.float64)     # predicts 0, 1, 0
    flipped = torch.tensor([[-1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)   # predicts 1, 0, 1
    assert watch(first) is None and watch(flipped) is None and watch(flipped) is None
    assert watch.changes == [3, 3, 0]
    assert watch(flipped) == "validation predictions settled: at most 0 of 3 changed in each of 2 Newton steps"
    watch.reset()
    assert watch(flipped) is None and watch.changes == [3]
    two_class = SettledPredictions(val, steps=1)       # one decision column: its sign
    assert two_class.predictions(torch.tensor([[1.0], [0.0]], dtype=torch.float64)).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="at least 1"):
        SettledPredictions(val, steps=0)


def test_a_fit_trailing_the_best_settles_at_a_tenth_of_its_gap_per_step():
    # 40 validation rows on a line, labelled by sign; weights (a, b) predict class 0 where a * x + b > 0
    xs = torch.linspace(-1, 1, 40, dtype=torch.float64)[:, None]
    val = dense_design(xs, intercept_scaling=1.0)
    labels = (xs[:, 0] > 0).to(torch.int64)                         # class 1 right of 0 (all correct: 40)
    two = lambda shift: torch.tensor([[-1.0, 1.0], [shift, -shift]], dtype=torch.float64)  # noqa: E731

    def run(best):
        watch = SettledPredictions(val, steps=2, fraction=0.0, labels=labels, catch_up=10)
        watch.reset(best_accuracy=best)
        # each step moves the boundary left by one row: one prediction changes; 30, 29, 28, 27 rows right
        return [watch(two(-0.5 - 0.0513 * i)) for i in range(4)], watch

    strict, watch = run(None)               # no best yet: at most 0 changes (fraction 0), never settled
    assert strict == [None] * 4 and watch.changes[1:] == [1, 1, 1]
    # all 40 right at best, this fit 10-13 rows behind: a step may change 10 // 10 = 1 prediction
    behind, watch = run(40 / 40)
    assert behind[:2] == [None, None] and behind[2].startswith("validation predictions settled: at most 1 of 40")
    assert "trailing the best C so far (at most 1/10 of the gap)" in behind[2]
    level, _ = run(12 / 40)                 # this fit is the best so far: the strict count again
    assert level == [None] * 4
    with pytest.raises(ValueError, match="labels for 40 validation rows"):
        SettledPredictions(val, labels=labels[:3])


def test_settled_grid_chooses_the_same_C_and_reports_the_converged_refit():
    x, y = gaussian_blobs(1200, 60, seed=1, spread=2.5)
    xt, yt = gaussian_blobs(400, 60, seed=2, spread=2.5)
    results = {}
    for settle in (0, 1):
        config = probe_config(C_grid="1e-3,1e-2,1e-1,1", settle=settle, method="primal", device="cpu")
        results[settle] = run_protocol(x, y, xt, yt, config)
    full, settled = results[0], results[1]
    assert settled["C"] == full["C"]
    assert settled["accuracy"] == full["accuracy"]
    grid_fits = lambda r: [f for f in r["fits"] if f["rows"] == "train minus validation"]  # noqa: E731
    # a fit stopped by the monitor is marked, records the changes it saw, and is cheaper than the converged one
    stopped = [f for f in grid_fits(settled) if "stopped" in f]
    assert stopped and all(f["val_prediction_changes"][-1] == 0 for f in stopped)
    assert sum(f["passes"] for f in grid_fits(settled)) < sum(f["passes"] for f in grid_fits(full))
    assert not any("stopped" in f for f in grid_fits(full))
    # the validation accuracies of the settled fits are the converged fits' (the predictions had settled)
    curve = lambda r: [p["val_accuracy"] for p in r["C_selection"]["curve"]]  # noqa: E731
    assert np.allclose(curve(settled), curve(full), atol=1.5 / 120)
    assert "grid_fits" in settled["C_selection"] and "grid_fits" not in full["C_selection"]
    # the refit runs to the tolerance either way: the same objective
    assert settled["objective"] == pytest.approx(full["objective"], rel=1e-5)
    assert settled["fits"][-1]["converged"] and "stopped" not in settled["fits"][-1]


def test_settle_is_checked_and_named_as_the_user_spelled_it():
    with pytest.raises(ConfigError, match="--settle -1"):
        probe_config(settle=-1)
    with pytest.raises(ConfigError, match=r"\[probe\].settle"):
        probe_config(settle=True, names=PIPELINE_NAMES)
    assert probe_config().settle == 2 and probe_config(settle=0).settle == 0


def test_a_sketch_moved_onto_other_rows_is_their_rayleigh_ritz_and_leaves_the_solution_unchanged():
    x, y = gaussian_blobs(900, 80, seed=3, spread=1.0)
    X = torch.as_tensor((x - x.mean(0)) / x.std(0), dtype=torch.float64)
    Y = torch.where(torch.as_tensor(y)[:, None] == torch.arange(4)[None, :], 1.0, -1.0).to(torch.float64)
    part, whole = dense_design(X[:600]), dense_design(X)
    sketch = SketchedSpectrum.compute(part, rank=20, power_iterations=2)
    moved = sketch.on(whole)
    V = moved.V.double()
    assert torch.allclose(V.T @ V, torch.eye(20, dtype=torch.float64), atol=1e-5)
    # the same span, now diagonalising the whole design's Gram matrix on it
    proj = sketch.V.double() @ sketch.V.double().T
    assert torch.allclose(proj @ V, V, atol=1e-4)
    XV = whole.matmul(V)
    assert torch.allclose(moved.XV.double(), XV, rtol=1e-4, atol=1e-3)
    T = XV.T @ XV
    assert torch.allclose(T, torch.diag(moved.theta), rtol=1e-4, atol=1e-2 * float(moved.theta[0]) * 1e-3)
    assert bool((moved.theta[:-1] >= moved.theta[1:]).all())
    with pytest.raises(ValueError, match="80 weights"):
        sketch.on(dense_design(X[:, :10]))
    opts = SolverOptions(precondition="sketch", sketch_rank=20)
    plain = newton_cg(whole, Y, 0.05, options=opts)
    reused = newton_cg(whole, Y, 0.05, options=opts, basis=sketch)
    assert reused.converged and reused.objective.sum() == pytest.approx(plain.objective.sum(), rel=1e-7)


def test_newton_stops_when_the_monitor_says_so():
    x, y = gaussian_blobs(300, 20, seed=4, spread=2.5)
    X = torch.as_tensor(x, dtype=torch.float64)
    Y = torch.where(torch.as_tensor(y)[:, None] == torch.arange(4)[None, :], 1.0, -1.0).to(torch.float64)
    calls = []

    def monitor(W):
        calls.append(W.clone())
        return "enough" if len(calls) == 2 else None

    res = newton_cg(dense_design(X), Y, 1.0, monitor=monitor)
    assert res.stopped == "enough" and res.newton_iterations == 2 and not res.converged
    assert res.history[-1]["stopped"] == "enough"
    assert torch.equal(calls[-1], res.W)


def test_a_step_may_change_a_small_share_of_the_predictions_and_still_count_as_settled():
    x = torch.linspace(-1, 1, 4000, dtype=torch.float64)[:, None]
    watch = SettledPredictions(dense_design(x, intercept_scaling=1.0), steps=2, fraction=5e-4)
    assert watch.allowed == 2
    # the rows sit at +-0.00025, +-0.00075, ...: moving the boundary to 0.0004, 0.0008, 0.0011 flips 1, 1, 0 rows
    W = lambda b: torch.tensor([[1.0, -1.0], [-b, b]], dtype=torch.float64)  # noqa: E731
    said = [watch(W(b)) for b in (0.0, 0.0004, 0.0008, 0.0011)]
    assert watch.changes == [4000, 1, 1, 0]
    assert said[:2] == [None, None] and said[2] == said[3] == ("validation predictions settled: at most 2 of 4000 "
                                                               "changed in each of 2 Newton steps")
    watch.reset()
    big = [watch(W(b)) for b in (0.0, 0.01, 0.02, 0.03)]   # 20 rows change each step: never settled
    assert big == [None] * 4 and min(watch.changes[1:]) > 2
    with pytest.raises(ValueError, match="fraction"):
        SettledPredictions(dense_design(x, intercept_scaling=1.0), fraction=1.0)
