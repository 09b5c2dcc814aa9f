"""The randomized sketch preconditioner of the primal Newton-CG solver."""
import numpy as np
import pytest
import torch

from gan_probe.probe import SolverOptions, fit_standardizer
from gan_probe.probe.design import dense_design, standardized_design
from gan_probe.probe.loss import class_targets
from gan_probe.probe.newton import newton_cg
from gan_probe.probe.packed import packing_available
from gan_probe.probe.preconditioners import SketchPreconditioner, Subspace
from gan_probe.probe.sketch import SketchedSpectrum


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def decaying_matrix(n=300, d=80, seed=0):
    """Rows with a power-law spectrum: the setting the sketch is built for."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.normal(size=(d, d)))[0]
    scales = 30.0 * np.arange(1, d + 1) ** -1.2
    return torch.as_tensor(rng.normal(size=(n, d)) * scales @ U.T)


def labelled_problem(n, d, seed, spread):
    """Three classes on decaying features: the float32 matrix, its standardizer and the +-1 targets."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (decaying_matrix(n, d, seed=seed).numpy() + rng.normal(size=(3, d))[y] * spread + 4).astype(np.float32)
    return x, fit_standardizer(x), class_targets(y, np.unique(y))


def test_sketch_finds_the_top_eigenpairs():
    X = decaying_matrix()
    spectrum = SketchedSpectrum.compute(dense_design(X), rank=10, oversample=20)
    exact = torch.linalg.eigvalsh(X.T @ X).flip(0)[:10]
    np.testing.assert_allclose(spectrum.theta[:5].numpy(), exact[:5].numpy(), rtol=1e-3)
    V = spectrum.V.double()
    np.testing.assert_allclose((V.T @ V).numpy(), np.eye(10), atol=1e-5)
    np.testing.assert_allclose(spectrum.XV.double().numpy(), (X @ V).numpy(), rtol=1e-4, atol=1e-4)
    # the same seed gives the same basis
    again = SketchedSpectrum.compute(dense_design(X), rank=10, oversample=20)
    assert torch.equal(again.V, spectrum.V)


def test_preconditioner_is_the_stated_operator_and_updates_equal_recomputations():
    X = decaying_matrix(200, 40, seed=1)
    spectrum = SketchedSpectrum.compute(dense_design(X), rank=6)
    V, XV = spectrum.V.double(), spectrum.XV.double()
    row_sq = (X * X).sum(1)
    C = 0.3
    rng = np.random.default_rng(2)
    masks = [rng.random((200, 2)) < p for p in (1.0, 0.6, 0.58)]  # all active, then a big and a small change
    pre = SketchPreconditioner(spectrum)
    R = torch.as_tensor(rng.normal(size=(40, 2)))
    for mask in masks:
        active = torch.as_tensor(mask, dtype=torch.float64)
        got = pre.operator(active, torch.tensor([0, 1]), C, row_sq)(R, torch.tensor([0, 1]))
        # the recycled-subspace preconditioner is the same operator on the same basis (one interface)
        same = Subspace(V, XV).operator(active, torch.tensor([0, 1]), C, row_sq)(R, torch.tensor([0, 1]))
        np.testing.assert_allclose(same.numpy(), got.numpy(), rtol=1e-4, atol=1e-6)
        for k in range(2):
            a = active[:, k]
            M = torch.eye(6, dtype=torch.float64) + 2 * C * (XV * a[:, None]).T @ XV
            inside = ((XV * a[:, None]) * XV).sum()
            c = 1 + 2 * C * (a @ row_sq - inside) / (40 - 6)
            Pinv = V @ torch.linalg.inv(M) @ V.T + (torch.eye(40, dtype=torch.float64) - V @ V.T) / c
            np.testing.assert_allclose(got[:, k].numpy(), (Pinv @ R[:, k]).numpy(), rtol=1e-4, atol=1e-6)
        # the kept per-class matrices equal the direct ones (the last call was an incremental update): their lower
        # triangles, all the factorisation reads
        for k in range(2):
            direct = torch.tril((XV * active[:, k:k + 1]).T @ XV)
            scale = float(direct.abs().max())   # float32 products: compare to the matrix's scale
            kept = torch.tril(pre._state[k][1])
            np.testing.assert_allclose(kept.numpy(), direct.numpy(), rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("precision", ["storage", "bfloat16"])
def test_sketch_preconditioned_newton_reaches_the_subspace_preconditioned_optimum(precision):
    x, st, Y = labelled_problem(500, 70, seed=3, spread=0.5)
    ref = newton_cg(standardized_design(x, st), Y, 0.05,
                    options=SolverOptions(precondition="subspace", hessian_precision="storage", tol=1e-10))
    res = newton_cg(standardized_design(x, st), Y, 0.05,
                    options=SolverOptions(precondition="sketch", sketch_rank=20, hessian_precision=precision,
                                          tol=1e-10))
    assert isinstance(res.subspace, SketchPreconditioner)
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-6)
    if precision != "storage":
        return
    # a warm start at another C reuses the sketch: the same steps as with a fresh (identically seeded) sketch,
    # without its reads of the data
    opts = SolverOptions(precondition="sketch", sketch_rank=20, hessian_precision="storage")
    again = newton_cg(standardized_design(x, st), Y, 0.1, W0=res.W, subspace=res.subspace, options=opts)
    fresh = newton_cg(standardized_design(x, st), Y, 0.1, W0=res.W, options=opts)
    assert again.subspace is res.subspace
    assert again.passes == fresh.passes - (opts.sketch_power + 1)   # the sketch's reads: q + 1/2, counted as q + 1
    # (the kept class matrices were updated from the first solve's, not recomputed: equal up to rounding)
    np.testing.assert_allclose(again.objective, fresh.objective, rtol=1e-7)


@pytest.mark.parametrize("layout", ["plain", "packed"])
def test_conjugate_gradients_on_the_active_rows_only_give_the_same_solution(layout):
    from dataclasses import replace

    from gan_probe.probe.plan import plan_solve

    if layout == "packed" and not packing_available():
        pytest.skip("this torch build cannot pack (no oneDNN)")
    x, st, Y = labelled_problem(400, 50, seed=4, spread=2.0)
    opts = SolverOptions(precondition="sketch", sketch_rank=10, hessian_precision="bfloat16",
                         hessian_layout=layout, tol=1e-10)
    runs = {}
    for fraction in (0.0, 1.0):      # never / always compact
        design = standardized_design(x, st)
        plan = replace(plan_solve(design, opts), compact_fraction=fraction)
        runs[fraction] = newton_cg(design, Y, 0.5, options=opts, plan=plan)
        assert runs[fraction].hessian_layout == layout
    compact, full = runs[1.0], runs[0.0]
    assert min(e["active_rows"] for e in compact.history) < 1.0   # some rows did drop out
    np.testing.assert_allclose(compact.objective, full.objective, rtol=1e-6)


@pytest.mark.parametrize("packed", [False, True])
def test_newton_directions_from_the_active_rows_equal_those_from_all_rows(packed):
    from gan_probe.probe.newton import _cg

    if packed and not packing_available():
        pytest.skip("this torch build cannot pack (no oneDNN)")
    x = decaying_matrix(300, 40, seed=5).numpy().astype(np.float32)
    design = standardized_design(x, fit_standardizer(x))
    design.request_shadow(torch.bfloat16, packed=packed)
    shadow = design.ensure_shadow()
    rng = np.random.default_rng(6)
    active = torch.as_tensor(rng.random((300, 2)) < 0.4, dtype=torch.float64)
    active[:50] = 0                                  # rows active for no class
    rows = (active.sum(1) > 0).nonzero().flatten()
    g = torch.as_tensor(rng.normal(size=(41, 2)))
    eta = torch.full((2,), 1e-6, dtype=torch.float64)
    P_all, _, _ = _cg(shadow, active, g, 0.2, eta, 200)
    P_rows, _, _ = _cg(shadow.subset(rows), active[rows], g, 0.2, eta, 200)
    assert len(rows) < 300 - 50 + 1
    # equal up to bfloat16 rounding of the products (summed in another order): 1e-2 of the direction's norm,
    # where a wrong selection of rows is off by its whole size
    scale = float(P_all.norm())
    assert float((P_rows - P_all).norm()) < 1e-2 * scale
    P_wrong, _, _ = _cg(shadow.subset(rows), active[rows.flip(0)], g, 0.2, eta, 200)   # rows mismatched
    assert float((P_wrong - P_all).norm()) > 0.1 * scale


def test_inverses_in_float32_match_float64_and_fall_back_where_float32_cannot_factor():
    from gan_probe.probe.preconditioners import _inverses

    rng = np.random.default_rng(7)
    A = torch.as_tensor(rng.normal(size=(3, 30, 40)))
    # the sketch's kind of matrix: I + 2C (X~V)^T A (X~V), eigenvalues spread over four orders of magnitude
    scales = torch.logspace(4, 0, 30, dtype=torch.float64)
    M = torch.eye(30, dtype=torch.float64) + (A * scales[:, None]) @ (A * scales[:, None]).transpose(1, 2)
    got = _inverses(M)
    assert got.dtype == torch.float32
    exact = torch.linalg.inv(M)
    # relative to each inverse's own size (the products in M^-1 r are dominated by its largest entries)
    for k in range(3):
        assert float((got[k].double() - exact[k]).norm() / exact[k].norm()) < 1e-3
    # nearly singular in float32 (an off-diagonal entry that rounds to 1): factored in float64 instead
    tight = torch.tensor([[[1.0, 1 - 1e-9], [1 - 1e-9, 1.0]]], dtype=torch.float64)
    np.testing.assert_allclose(_inverses(tight)[0].double().numpy(), torch.linalg.inv(tight[0]).numpy(), rtol=1e-6)
