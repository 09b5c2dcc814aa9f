"""The torch L2-SVM solver against liblinear (scikit-learn's LinearSVC) and closed forms."""
import numpy as np
import pytest
import torch

from gan_probe.errors import FeatureStoreError
from gan_probe.probe import LinearL2SVM, SolverOptions, TrainingProblem, fit_standardizer, fit_svm
from gan_probe.probe.design import dense_design, standardized_design
from gan_probe.probe.liblinear import fit_liblinear
from gan_probe.probe.loss import class_targets, objective
from gan_probe.probe.newton import newton_cg
from gan_probe.probe.packed import packing_available


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def correlated_features(n, d, k=4, seed=0, rank=6):
    """Features with a few strong shared factors (a power-law-like spectrum), a class signal and an offset."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    factors = rng.normal(size=(n, rank)) * (2.0 ** -np.arange(rank))
    mix = rng.normal(size=(rank, d))
    means = rng.normal(size=(k, d)) * 0.4
    x = factors @ mix * 3 + means[y] + rng.normal(size=(n, d)) + 5.0
    return np.maximum(x, 0).astype(np.float32), y


def liblinear_objective(x, y, C, rows=None, **kw):
    st = fit_standardizer(x, rows)
    W, classes, info = fit_liblinear(x, y, C, st, rows, tol=1e-6, max_iter=20000, **kw)
    design = standardized_design(x, st, rows, kw.get("intercept_scaling", 1.0))
    labels = y if rows is None else y[rows]
    Y = class_targets(labels, classes)
    return objective(design, torch.as_tensor(W), Y, C), W, st


@pytest.mark.parametrize("n,d,method", [(60, 150, "kernel"), (60, 150, "primal"), (300, 40, "primal")])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_objective_and_predictions_match_liblinear(n, d, method, C):
    x, y = correlated_features(n, d, seed=n + d)
    x_test, y_test = correlated_features(200, d, seed=7)
    ref_obj, W_ref, st = liblinear_objective(x, y, C)
    model = LinearL2SVM(C, device="cpu", method=method).fit(x, y)
    assert model.method_ == method
    ours = model.objective_
    # never worse than liblinear by more than 1e-4 (relative), class by class
    assert np.all(ours <= ref_obj * (1 + 1e-4)), (ours, ref_obj)
    ref_scores = standardized_design(x_test, st).matmul(torch.as_tensor(W_ref)).numpy()
    ref_pred = model.classes_[ref_scores.argmax(1)]
    agree = np.mean(model.predict(x_test) == ref_pred)
    assert agree >= 0.99
    assert abs(model.score(x_test, y_test) - np.mean(ref_pred == y_test)) <= 0.01


def test_two_classes_use_one_column_like_liblinear():
    x, y = correlated_features(80, 30, k=2, seed=3)
    ref_obj, W_ref, _ = liblinear_objective(x, y, 0.1)
    model = fit_svm(x, y, C=0.1, device="cpu")
    assert model.coef_.shape == (1, 30)
    assert model.objective_[0] <= ref_obj[0] * (1 + 1e-4)
    np.testing.assert_allclose(model.W_.numpy(), W_ref, rtol=0, atol=2e-3 * np.abs(W_ref).max())


def test_intercept_scaling_matches_liblinear():
    x, y = correlated_features(70, 20, seed=5)
    ref_obj, _, _ = liblinear_objective(x, y, 0.5, intercept_scaling=3.0)
    model = LinearL2SVM(0.5, device="cpu", intercept_scaling=3.0).fit(x, y)
    assert np.all(model.objective_ <= ref_obj * (1 + 1e-4))


def test_closed_form_one_dimensional():
    # points +-1, +-2 with y = sign(x): w = 0.8, b = 0 minimise 0.5 (w^2 + b^2) + C * 2 (1 - w)^2 at C = 1
    X = torch.tensor([[1.0], [2.0], [-1.0], [-2.0]], dtype=torch.float64)
    Y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]], dtype=torch.float64)
    res = newton_cg(dense_design(X, intercept_scaling=1.0), Y, C=1.0)
    np.testing.assert_allclose(res.W.flatten().numpy(), [0.8, 0.0], atol=1e-9)
    assert res.total_objective == pytest.approx(0.5 * 0.64 + 2 * 0.04, abs=1e-12)


def test_kernel_and_primal_routes_agree_and_warm_starts_do_not_change_the_answer():
    x, y = correlated_features(50, 120, seed=11)
    kernel = TrainingProblem(x, y, device="cpu", method="kernel")
    primal = TrainingProblem(x, y, device="cpu", method="primal", options=SolverOptions(tol=1e-10))
    cold = TrainingProblem(x, y, device="cpu", method="primal", options=SolverOptions(tol=1e-10))
    for C in (0.001, 0.1, 10.0):
        a, b = kernel.solve(C), primal.solve(C)
        np.testing.assert_allclose(a.objective, b.objective, rtol=1e-5)
        c = cold.solve(C, warm_start=False)
        np.testing.assert_allclose(b.objective, c.objective, rtol=1e-5)


def test_kernel_newton_points_by_schur_complement_equal_direct_solves():
    from gan_probe.probe.kernel import InverseBlocks, KernelNewton

    x, y = correlated_features(40, 90, seed=13)
    kn = KernelNewton(standardized_design(x, fit_standardizer(x)))
    C = 0.05
    M = kn.K.clone()
    M.diagonal().add_(1 / (2 * C))
    L = torch.linalg.cholesky(M)
    Y = class_targets(y, np.unique(y))
    rng = np.random.default_rng(0)
    active = torch.ones_like(Y, dtype=torch.bool)
    active[rng.choice(40, 5, replace=False), 0] = False      # a few inactive rows: Schur complement
    active[rng.choice(40, 30, replace=False), 1] = False     # mostly inactive: M_AA factored directly
    active[:, 2] = False                                     # nothing active: zero
    blocks = InverseBlocks(L)
    got = kn._newton_points(L, blocks, Y, active, C)
    assert blocks.inverse is None  # 5^2 < 0.4 * 40^2: blocks from columns of L^{-1}, no inverse
    # ... and once the blocks are large, from the inverse; both give the exact Newton points
    many = torch.ones_like(active)
    many[:20, 0] = many[20:, 3] = False  # 20^2 + 20^2 > 0.4 * 40^2
    many[5:25, 2] = False
    by_inverse = InverseBlocks(L)
    got_many = kn._newton_points(L, by_inverse, Y, many, C)
    assert by_inverse.inverse is not None
    for points, act in ((got, active), (got_many, many)):
        for j in range(Y.shape[1]):
            A = act[:, j].nonzero().flatten()
            expected = torch.zeros(40, dtype=torch.float64)
            if len(A):
                expected[A] = torch.linalg.solve(M[A][:, A], Y[A, j])
            torch.testing.assert_close(points[:, j], expected, rtol=1e-9, atol=1e-12)
    # the cached columns are L^{-1} e_j, computed once per row
    rows = (~active[:, 0]).nonzero().flatten()
    torch.testing.assert_close(blocks.columns.get(rows), torch.linalg.inv(L)[:, rows])
    assert blocks.columns.count == len(rows)


def test_chunk_size_does_not_change_the_fit():
    x, y = correlated_features(90, 25, seed=2)
    st = fit_standardizer(x)
    Y = class_targets(y, np.unique(y))
    results = [newton_cg(standardized_design(x, st, chunk_rows=rows, cache_bytes=0), Y, 0.3,
                         options=SolverOptions(tol=1e-10)) for rows in (7, 90)]
    np.testing.assert_allclose(results[0].W.numpy(), results[1].W.numpy(), atol=1e-5)


def test_standardisation_uses_training_statistics_only():
    x, y = correlated_features(80, 12, seed=4)
    x_test, _ = correlated_features(40, 12, seed=9)
    model = fit_svm(x, y, C=0.2, device="cpu")
    np.testing.assert_allclose(model.standardizer_.mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(model.standardizer_.scale, x.astype(np.float64).std(0), rtol=1e-12)
    # test rows are scored with the training statistics, whatever the test set looks like
    coef, intercept = model.raw_weights()
    np.testing.assert_allclose(model.decision_function(x_test), x_test @ coef.T + intercept, rtol=1e-4, atol=1e-4)
    shifted = model.decision_function(x_test + 100.0)
    np.testing.assert_allclose(shifted, (x_test + 100.0) @ coef.T + intercept, rtol=1e-4, atol=1e-3)
    # fitting on a subset of rows takes statistics from that subset only
    rows = np.arange(0, 80, 2)
    sub = LinearL2SVM(0.2, device="cpu").fit(x, y, rows=rows)
    np.testing.assert_allclose(sub.standardizer_.mean, x[rows].astype(np.float64).mean(0), rtol=1e-12)


def test_statistics_pass_is_exact_in_float64_and_handles_constant_columns():
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(size=(1000, 3))).astype(np.float32)
    x[:, 2] = 7.0
    st = fit_standardizer(x, chunk_rows=33)
    np.testing.assert_allclose(st.mean, x.astype(np.float64).mean(0), rtol=1e-14)
    np.testing.assert_allclose(st.scale[:2], x[:, :2].astype(np.float64).std(0), rtol=1e-10)
    assert st.scale[2] == 1.0 and st.n_constant == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_training_features_are_reported_with_split_and_row(bad):
    x, y = correlated_features(50, 6, seed=1)
    x[37, 4] = bad
    with pytest.raises(FeatureStoreError, match=r"train features: non-finite .* row 37, column 4"):
        fit_svm(x, y, C=1.0, device="cpu")


def test_non_finite_test_features_are_reported():
    x, y = correlated_features(50, 6, seed=1)
    model = fit_svm(x, y, C=1.0, device="cpu")
    x_test = x[:10].copy()
    x_test[6, 1] = np.nan
    with pytest.raises(FeatureStoreError, match=r"test features: non-finite value in row 6, column 1"):
        model.predict(x_test)


def test_same_inputs_give_identical_weights():
    x, y = correlated_features(70, 30, seed=8)
    a = fit_svm(x, y, C=0.05, device="cpu").W_
    b = fit_svm(x, y, C=0.05, device="cpu").W_
    assert torch.equal(a, b)


def test_streamed_design_folds_standardisation_exactly():
    x, y = correlated_features(50, 9, seed=6)
    x = x + 40.0  # a large offset: the folded products must still match the standardised ones
    st = fit_standardizer(x)
    cached = standardized_design(x, st, cache_bytes=1 << 40)
    streamed = standardized_design(x, st, cache_bytes=0, chunk_rows=8)
    assert cached.fold is None and streamed.fold is not None
    W = torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    R = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for a, b in zip(cached.fused(W, lambda s, e, Z: R[s:e]), streamed.fused(W, lambda s, e, Z: R[s:e])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cached.rmatmul(R).numpy(), streamed.rmatmul(R).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cached.row_sq.numpy(), streamed.row_sq.numpy(), rtol=1e-5)


@pytest.mark.parametrize("columns", [1, 10, 70])
@pytest.mark.parametrize("numpy_blas", [False, True])
def test_products_of_float32_rows_equal_float64_ones(columns, numpy_blas, monkeypatch):
    from gan_probe import linalg
    from gan_probe.probe.design import PACKED_WEIGHT_COLUMNS
    from gan_probe.probe.packed import weight_packing_available

    # X~^T R goes through NumPy's BLAS from SMALL_WORK multiply-adds on (these products are far smaller), on
    # processors of every vendor
    monkeypatch.setattr(linalg, "SMALL_WORK", 0 if numpy_blas else 1 << 62)
    monkeypatch.setattr(linalg, "TORCH_FLAT_PRODUCT_VENDORS", frozenset())

    x, _ = correlated_features(90, 33, seed=31)
    x = x + 40.0
    st = fit_standardizer(x)
    exact = torch.as_tensor((x.astype(np.float64) - st.mean) / st.scale)
    exact = torch.cat([exact, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    gen = torch.Generator().manual_seed(columns)
    W = torch.randn(34, columns, dtype=torch.float64, generator=gen)
    R = torch.randn(90, columns, dtype=torch.float64, generator=gen)
    for design in (standardized_design(x, st, cache_bytes=1 << 40, chunk_rows=16),
                   standardized_design(x, st, cache_bytes=0, chunk_rows=16)):
        WT = W[:-1].T.to(torch.float32).contiguous()
        packs = columns <= PACKED_WEIGHT_COLUMNS and weight_packing_available()
        assert (type(design._forward_weights(WT, 16)) is not torch.Tensor) == packs
        assert design._numpy_backward(columns) == numpy_blas
        np.testing.assert_allclose(design.matmul(W).numpy(), (exact @ W).numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(design.rmatmul(R).numpy(), (exact.T @ R).numpy(), rtol=1e-5, atol=1e-4)
        Z, G = design.fused(W, lambda s, e, Zc: R[s:e])
        np.testing.assert_allclose(Z.numpy(), (exact @ W).numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(G.numpy(), (exact.T @ R).numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cache", [1 << 40, 0])
def test_a_fused_pass_with_numpy_blas_reads_twice_and_gives_the_same_products(cache, monkeypatch):
    """Where X~^T R goes through NumPy's BLAS, a fused pass after the first reads the data twice (Z, then G from
    coefficients of all rows at once): the same Z, G and accumulated sums as one read, two passes counted."""
    from gan_probe import linalg

    x, _ = correlated_features(90, 33, seed=32)
    st = fit_standardizer(x)
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(34, 4, dtype=torch.float64, generator=gen)
    A = (torch.rand(90, 4, generator=gen) > 0.5).to(torch.float64)
    calls = []

    def coef(s, e, Z, acc):
        calls.append((s, e))
        acc.add_(Z.sum(0))
        return A[s:e] * Z

    results = {}
    monkeypatch.setattr(linalg, "TORCH_FLAT_PRODUCT_VENDORS", frozenset())
    for numpy_blas in (False, True):
        monkeypatch.setattr(linalg, "SMALL_WORK", 0 if numpy_blas else 1 << 62)
        design = standardized_design(x, st, cache_bytes=cache, chunk_rows=16)
        design.fused(W, None)                     # the first pass takes the row norms: always one read
        assert design.passes == 1
        calls.clear()
        acc = torch.zeros(4, dtype=torch.float64)
        Z, G = design.fused(W, lambda s, e, Zc: coef(s, e, Zc, acc), reduce_with=(acc,))
        assert design.passes == (3 if numpy_blas else 2)
        assert calls == ([(0, 90)] if numpy_blas else [(s, min(90, s + 16)) for s in range(0, 90, 16)])
        results[numpy_blas] = (Z, G, acc)
        skipped = design.fused(W, lambda s, e, Zc: None)[1]
        assert torch.equal(skipped, torch.zeros_like(skipped))
    for one, two in zip(results[False], results[True]):
        np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-5, atol=1e-4)


def test_a_plain_bfloat16_copy_keeps_torch_products_where_numpy_blas_would_take_float32(monkeypatch):
    """NumPy has no bfloat16: with NumPy's BLAS preferred for every product, a plain bfloat16 design (CG's copy
    where oneDNN cannot pack) still runs fused passes and X~^T R, and matches the float64 products of its rows."""
    from gan_probe import linalg

    monkeypatch.setattr(linalg, "SMALL_WORK", 0)
    monkeypatch.setattr(linalg, "TORCH_FLAT_PRODUCT_VENDORS", frozenset())
    gen = torch.Generator().manual_seed(5)
    rows = torch.randn(70, 12, dtype=torch.float64, generator=gen).to(torch.bfloat16)
    design = dense_design(rows, 1.0, chunk_rows=16)
    design.row_sq = rows.to(torch.float64).square().sum(1) + 1.0
    W = torch.randn(13, 3, dtype=torch.float64, generator=gen)
    A = (torch.rand(70, 3, generator=gen) > 0.5).to(torch.float64)
    Z, G = design.fused(W, lambda s, e, Zc: A[s:e] * Zc)
    X = torch.cat([rows.to(torch.float64), torch.ones(70, 1, dtype=torch.float64)], 1)
    Wb = W.to(torch.bfloat16).to(torch.float64)          # the products run in the rows' precision
    np.testing.assert_allclose(Z.numpy(), (X @ Wb).numpy(), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(G.numpy(), (X.T @ (A * Z)).numpy(), rtol=2e-2, atol=5e-2)
    R = torch.randn(70, 3, dtype=torch.float64, generator=gen)
    np.testing.assert_allclose(design.rmatmul(R).numpy(), (X.T @ R.to(torch.bfloat16).to(torch.float64)).numpy(),
                               rtol=2e-2, atol=5e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["kernel", "primal"])
def test_cuda_matches_cpu(method):
    x, y = correlated_features(60, 150, seed=12)
    cpu = LinearL2SVM(0.1, device="cpu", method=method).fit(x, y)
    gpu = LinearL2SVM(0.1, device="cuda", method=method).fit(x, y)
    np.testing.assert_allclose(gpu.objective_, cpu.objective_, rtol=1e-5)
    assert np.mean(gpu.predict(x) == cpu.predict(x)) >= 0.99


def test_row_norms_of_streamed_and_resident_designs_agree():
    x, y = correlated_features(120, 30, seed=8)
    st = fit_standardizer(x)
    expected = (((x.astype(np.float64) - st.mean) / st.scale) ** 2).sum(1) + 1.0  # constant column included
    W = torch.zeros(31, 1, dtype=torch.float64)
    for cache in (None, 0):  # standardised in memory / raw chunks with the standardisation folded in
        design = standardized_design(x, st, cache_bytes=cache, chunk_rows=50)
        design.fused(W, None)
        np.testing.assert_allclose(design.row_sq.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("cache", [None, 0])  # resident standardised rows / raw chunks with the folded standardisation
def test_bfloat16_copy_is_taken_in_the_first_pass_and_holds_the_standardised_rows(cache):
    x, y = correlated_features(90, 20, seed=21)
    x = x + 30.0  # an offset that a copy of the raw rows in bfloat16 would not survive
    st = fit_standardizer(x)
    design = standardized_design(x, st, cache_bytes=cache, chunk_rows=25)
    design.request_shadow(torch.bfloat16)
    design.fused(torch.zeros(21, 2, dtype=torch.float64), None)
    assert design.passes == 1                     # no extra read for the copy
    shadow = design.ensure_shadow()
    assert design.passes == 1 and shadow.passes == 0
    rows = torch.cat([b for _, _, b in shadow.chunks()])
    assert rows.dtype == torch.bfloat16 and rows.shape == (90, 20)
    exact = (x.astype(np.float64) - st.mean) / st.scale
    np.testing.assert_allclose(rows.double().numpy(), exact, rtol=2 ** -8, atol=1e-6)
    # a design whose norms were taken before the request reads the data once more for its copy
    later = standardized_design(x, st, cache_bytes=cache, chunk_rows=25)
    later.fused(torch.zeros(21, 1, dtype=torch.float64), None)
    later.request_shadow(torch.bfloat16)
    assert torch.equal(torch.cat([b for _, _, b in later.ensure_shadow().chunks()]), rows)
    assert later.passes == 2


@pytest.mark.parametrize("layout", ["plain", "packed"])
@pytest.mark.parametrize("cache", [None, 0])
def test_bfloat16_hessian_products_reach_the_same_optimum(cache, layout):
    if layout == "packed" and not packing_available():
        pytest.skip("this torch build cannot pack (no oneDNN)")
    x, y = correlated_features(400, 60, seed=22)
    st = fit_standardizer(x)
    Y = class_targets(y, np.unique(y))
    exact = newton_cg(standardized_design(x, st, cache_bytes=cache, chunk_rows=64), Y, 0.05,
                      options=SolverOptions(hessian_precision="storage", tol=1e-10))
    fast = newton_cg(standardized_design(x, st, cache_bytes=cache, chunk_rows=64), Y, 0.05,
                     options=SolverOptions(hessian_precision="bfloat16", hessian_layout=layout, tol=1e-10))
    assert exact.bfloat16_passes == 0 and fast.bfloat16_passes > 0 and fast.hessian_layout == layout
    # only the Newton directions are approximate: the objective and the solution are the exact ones (to the
    # float32 rounding of the products, about 1e-7 of the objective here)
    np.testing.assert_allclose(fast.objective, exact.objective, rtol=1e-6)
    np.testing.assert_allclose(fast.W.numpy(), exact.W.numpy(), rtol=1e-4, atol=1e-5)
    # every step lowered the true objective (the line search uses the exact products)
    values = [e["objective"] for e in fast.history]
    assert all(b <= a * (1 + 1e-7) for a, b in zip(values, values[1:]))
    # one exact pass for the gradient and one for X~P per Newton step, the rest on the copy
    assert fast.passes <= 2 * fast.newton_iterations + 1


def test_bfloat16_hessian_products_are_only_automatic_for_large_designs():
    x, y = correlated_features(60, 12, seed=23)
    design = standardized_design(x, fit_standardizer(x))
    res = newton_cg(design, class_targets(y, np.unique(y)), 0.1)  # "auto": far below SHADOW_MIN_ELEMENTS
    assert res.bfloat16_passes == 0 and design.shadow is None
    with pytest.raises(ValueError, match="hessian_precision 'half'"):
        newton_cg(design, class_targets(y, np.unique(y)), 0.1, options=SolverOptions(hessian_precision="half"))


def test_the_plan_takes_a_bfloat16_copy_only_with_the_instructions_and_the_memory(monkeypatch):
    from gan_probe.probe import plan
    from gan_probe.probe.plan import Machine, plan_solve

    x, y = correlated_features(200, 30, seed=24)
    Y = class_targets(y, np.unique(y))
    monkeypatch.setattr(plan, "LARGE_ELEMENTS", 1000)            # make 200 x 30 count as large
    design = standardized_design(x, fit_standardizer(x))
    opts = SolverOptions(precondition="subspace")
    roomy = Machine(available_memory=10 ** 9, fast_bfloat16=True, packing=False)
    chosen = plan_solve(design, opts, roomy)
    assert (chosen.hessian_precision, chosen.hessian_layout, chosen.max_cg) == ("bfloat16", "plain", 30)
    assert plan_solve(design, opts, roomy, monitored=True).max_cg == 20          # a grid fit's monitor looks sooner
    assert plan_solve(design, SolverOptions(precondition="subspace", max_cg=7), roomy, monitored=True).max_cg == 7
    assert newton_cg(design, Y, 0.1, options=opts, plan=chosen).bfloat16_passes > 0
    need = (1 + plan.COMPACT_FRACTION) * 2 * 200 * 30
    tight = Machine(available_memory=int(1.9 * need), fast_bfloat16=True, packing=False)   # the copy would not fit
    assert plan_solve(design, opts, tight).hessian_precision == "bfloat16"     # ... but this design holds one
    assert plan_solve(standardized_design(x, fit_standardizer(x)), opts, tight).hessian_precision == "storage"
    emulated = Machine(available_memory=10 ** 9, fast_bfloat16=False, packing=False)        # no bfloat16 instructions
    # rank 31: 30 features + the bias column
    assert plan_solve(design, opts, emulated) == plan.SolvePlan("subspace", "storage", "", 250, 0.0, 31)
    assert plan_solve(design, opts, emulated, monitored=True).max_cg == 250        # (without a copy: no cap to lower)


def test_the_plan_takes_the_sketch_only_with_room_for_its_row_products(monkeypatch):
    from gan_probe.probe import plan
    from gan_probe.probe.plan import Machine, plan_solve

    x, y = correlated_features(200, 30, seed=25)
    monkeypatch.setattr(plan, "LARGE_ELEMENTS", 1000)
    design = standardized_design(x, fit_standardizer(x))
    opts = SolverOptions(hessian_precision="storage", sketch_rank=8)
    assert plan_solve(design, opts, Machine(10 ** 9, False, False)).preconditioner == "sketch"
    assert plan_solve(design, opts, Machine(2 * 16 * 200 * (8 + 16) - 1, False, False)).preconditioner == "subspace"
    res = newton_cg(design, class_targets(y, np.unique(y)), 0.1, options=opts,
                    plan=plan_solve(design, opts, Machine(10 ** 9, False, False)))
    assert res.preconditioner == "sketch" and res.plan.preconditioner == "sketch"


def test_solver_options_are_checked_when_built():
    for kwargs, message in (({"precondition": "jacobi"}, "precondition 'jacobi': expected one of auto, sketch, "
                                                         "subspace, none"),
                            ({"hessian_precision": "half"}, "hessian_precision 'half'"),
                            ({"tol": float("nan")}, "tol nan: expected a positive finite number"),
                            ({"tol": 0.0}, "tol 0.0"), ({"max_cg": 0}, "max_cg must be at least 1"),
                            ({"sketch_rank": 0}, "sketch_rank 0: expected at least 1")):
        with pytest.raises(ValueError, match=message):
            SolverOptions(**kwargs)


def test_available_memory_is_read_where_linux_reports_it():
    import os

    from gan_probe.devices import available_memory

    free = available_memory()
    if not os.path.exists("/proc/meminfo"):
        assert free is None
        return
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < free <= total


@pytest.mark.parametrize("precision", ["storage", "bfloat16"])
def test_a_newton_step_reads_the_data_once_for_the_gradient_and_once_more_for_exact_products_of_bfloat16_cg(
        precision):
    x, y = correlated_features(400, 60, seed=25)
    st, Y = fit_standardizer(x), class_targets(y, np.unique(y))
    opts = SolverOptions(precondition="subspace", hessian_precision=precision, hessian_layout="plain", tol=1e-10)
    design = standardized_design(x, st)
    res = newton_cg(design, Y, 0.05, options=opts)
    # besides CG (on the bfloat16 copy, or counted here), a step reads the data for X~P (bfloat16 CG only) and
    # for the gradient -- except the last one, after which no class is running
    own = [e["cg_steps"] if precision == "storage" else 0 for e in res.history]
    passes = np.diff([1] + [e["passes"] for e in res.history]) - own
    assert passes[:-1].tolist() == [2 if precision == "bfloat16" else 1] * (len(passes) - 1)
    assert res.newton_iterations >= 3
    values = [e["objective"] for e in res.history]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:]))
    # the margins carried from step to step (moved by t X~P) are the recomputed ones up to float32 rounding; so
    # are the objectives
    np.testing.assert_allclose(res.margins.numpy(), design.matmul(res.W).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.objective, objective(design, res.W, Y, 0.05), rtol=1e-7)
    ref_obj, _, _ = liblinear_objective(x, y, 0.05)
    assert res.total_objective <= ref_obj.sum() * (1 + 1e-7)


def test_conjugate_gradient_steps_per_newton_step_are_capped():
    from gan_probe.probe.plan import DEFAULT_MAX_CG, LARGE_MAX_CG

    x, y = correlated_features(400, 60, seed=25)
    st = fit_standardizer(x)
    Y = class_targets(y, np.unique(y))

    def solve(**kw):
        opts = SolverOptions(precondition="none", tol=1e-12, grad_tol=1e-10, max_newton=500, **kw)
        return newton_cg(standardized_design(x, st), Y, 1.0, options=opts)

    full = solve(hessian_precision="storage")
    capped = solve(hessian_precision="storage", max_cg=12)
    assert (full.max_cg, capped.max_cg) == (DEFAULT_MAX_CG, 12)
    assert max(e["cg_steps"] for e in capped.history) == 12 < max(e["cg_steps"] for e in full.history)  # 38
    assert capped.newton_iterations > full.newton_iterations and capped.converged                        # 25, 11
    # shorter Newton steps, the same optimum (to the float32 rounding of the products)
    np.testing.assert_allclose(capped.objective, full.objective, rtol=1e-6)
    np.testing.assert_allclose(capped.W.numpy(), full.W.numpy(), rtol=1e-3, atol=1e-4)
    # the bfloat16 path (large designs on a CPU) caps at LARGE_MAX_CG unless told otherwise
    assert solve(hessian_precision="bfloat16", hessian_layout="plain").max_cg == LARGE_MAX_CG
    assert solve(hessian_precision="bfloat16", hessian_layout="plain", max_cg=250).max_cg == 250
    with pytest.raises(ValueError, match="max_cg must be at least 1"):
        solve(max_cg=0)


def test_the_auto_sketch_rank_grows_with_the_design_and_an_explicit_sketch_keeps_its_rank():
    from types import SimpleNamespace

    from gan_probe.probe.plan import sketch_rank

    def rank(n, d, **options):
        return sketch_rank(SimpleNamespace(n_total=n, n_features=d), SolverOptions(**options))

    # one column per 2^17 entries, a power of two between 128 and SolverOptions.sketch_rank (1,024)
    assert [rank(3000, 3584), rank(5000, 14336), rank(40000, 28672), rank(10, 10)] == [128, 512, 1024, 128]
    assert rank(5000, 14336, sketch_rank=256) == 256
    assert rank(3000, 3584, precondition="sketch") == 1024 and rank(3000, 3584, precondition="sketch",
                                                                      sketch_rank=8) == 8
