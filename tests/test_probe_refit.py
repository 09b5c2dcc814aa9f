"""The refit takes over the C grid's bfloat16 copy of its rows and its sketch of the data, extended to the
validation rows: the same solution as a refit that starts afresh, without copying or sketching the grid's rows
again."""
import dataclasses

import numpy as np
import pytest
import torch

from gan_probe.probe import probe_config
from gan_probe.probe.design import dense_design, standardized_design
from gan_probe.probe.packed import packing_available
from gan_probe.probe.plan import Machine, SolverOptions, plan_solve
from gan_probe.probe.protocols import run_protocol
from gan_probe.probe.standardize import fit_standardizer
from gan_probe.probe.svm import TrainingProblem

from feature_stores import gaussian_blobs

LAYOUTS = ["plain"] + (["packed"] if packing_available() else [])


def _options(layout):
    return SolverOptions(precondition="sketch", sketch_rank=24, hessian_precision="bfloat16", hessian_layout=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_refit_continues_from_the_grid_and_reaches_the_fresh_refits_solution(layout):
    x, y = gaussian_blobs(700, 90, seed=1)
    st = fit_standardizer(x)
    order = np.random.default_rng(2).permutation(700)
    rest, val = np.sort(order[:560]), np.sort(order[560:])
    grid = TrainingProblem(x, y, rows=rest, standardizer=st, device="cpu", method="primal", options=_options(layout))
    grid.solve(0.01)
    refit_rows = np.concatenate([rest, val])
    refit = TrainingProblem(x, y, rows=refit_rows, standardizer=st, device="cpu", method="primal",
                            options=_options(layout))
    assert refit.continue_from(grid)
    # the grid's copy is shared, not copied; the validation rows follow it
    shadow = refit.design.shadow
    assert shadow.n == 700 and shadow.shadow is None
    if layout == "packed":
        assert shadow.blocks[0][2] is grid.design.shadow.blocks[0][2]
    fresh = standardized_design(x, st, refit_rows, 1.0, "cpu")
    fresh.request_shadow(torch.bfloat16, packed=layout == "packed")
    W = torch.as_tensor(np.random.default_rng(3).normal(size=(91, 4)))
    assert torch.allclose(shadow.matmul(W), fresh.ensure_shadow().matmul(W), rtol=1e-6, atol=1e-6)
    assert torch.allclose(refit.design.row_sq, fresh.row_sq, rtol=1e-6)
    # the stacked sketch: the grid's basis, Rayleigh-Ritz on all the rows -- what moving it onto them gives
    stacked = refit._subspace.spectrum
    moved = grid.sketch.on(fresh.shadow)
    assert torch.allclose(stacked.theta, moved.theta, rtol=5e-3)         # (bfloat16 products)
    # its X~V is the product with every row, in the refit's order; V stays orthonormal
    XV = fresh.shadow.matmul(stacked.V.double())
    assert torch.allclose(stacked.XV.double(), XV, rtol=0, atol=1e-2 * float(XV.abs().max()))
    V = stacked.V.double()
    assert torch.allclose(V.T @ V, torch.eye(V.shape[1], dtype=torch.float64), atol=1e-5)
    res = refit.solve(0.01, W0=grid._warm)
    again = TrainingProblem(x, y, rows=refit_rows, standardizer=st, device="cpu", method="primal",
                            options=_options(layout)).solve(0.01, W0=grid._warm)
    assert res.converged and res.plan.hessian_precision == "bfloat16"
    assert res.objective.sum() == pytest.approx(again.objective.sum(), rel=1e-7)


def test_nothing_is_taken_from_a_problem_over_other_rows_or_without_a_copy():
    x, y = gaussian_blobs(300, 20, seed=4)
    st = fit_standardizer(x)
    rows = np.arange(300)
    grid = TrainingProblem(x, y, rows=rows[:200], standardizer=st, device="cpu", method="primal")
    grid.solve(0.1)                                   # small: float32 products, no copy
    refit = TrainingProblem(x, y, rows=rows, standardizer=st, device="cpu", method="primal")
    assert grid.design.shadow is None and not refit.continue_from(grid)
    other = TrainingProblem(x, y, rows=rows[50:250], standardizer=st, device="cpu", method="primal",
                            options=_options("plain"))
    other.solve(0.1)
    assert not refit.continue_from(other)             # not the first rows of the refit
    own_stats = TrainingProblem(x, y, rows=rows[:200], device="cpu", method="primal", options=_options("plain"))
    own_stats.solve(0.1)
    assert not refit.continue_from(own_stats)         # standardised with other statistics


def test_a_held_copy_decides_the_plan_whatever_memory_is_left():
    design = dense_design(torch.zeros(2048, 4096), intercept_scaling=1.0)     # 2^23 entries: the large path
    starved = Machine(available_memory=1 << 20, fast_bfloat16=True, packing=True)
    plan = plan_solve(design, SolverOptions(), starved)
    assert plan.hessian_precision == "storage"          # no room for a copy
    design.adopt_shadow([_with_copy(design)])
    held = plan_solve(design, SolverOptions(), starved)
    assert held.hessian_precision == "bfloat16" and held.hessian_layout == "plain"


def _with_copy(design):
    part = dense_design(torch.zeros(design.n, design.n_features), intercept_scaling=1.0)
    part.request_shadow(torch.bfloat16)
    part.ensure_shadow()
    return part


def test_the_protocols_refit_is_the_grid_rows_then_the_validation_rows():
    x, y = gaussian_blobs(600, 40, seed=5)
    xt, yt = gaussian_blobs(200, 40, seed=6)
    config = probe_config(C_grid="1e-3,1e-2,1e-1", method="primal", device="cpu")
    config = dataclasses.replace(config, options=_options("plain"))
    out = run_protocol(x, y, xt, yt, config)
    refit = out["fits"][-1]
    assert refit["rows"] == "all training rows" and refit["converged"]
    # the same problem solved over the rows in their own order: the same objective and test accuracy
    st = fit_standardizer(x)
    plain = TrainingProblem(x, y, standardizer=st, device="cpu", method="primal", options=_options("plain"))
    res = plain.solve(out["C"])
    assert out["objective"] == pytest.approx(float(res.objective.sum()), rel=1e-6)
