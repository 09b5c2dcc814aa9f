"""oneDNN-packed bfloat16 row blocks: the same products as plain bfloat16 blocks, and the solver's choice of them."""
import numpy as np
import pytest
import torch

from gan_probe.probe import SolverOptions, fit_standardizer
from gan_probe.probe.design import dense_design, packed_design, standardized_design
from gan_probe.probe.packed import PackedBlock, PackedRowsBuilder, packing_available

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not packing_available(), reason="this torch build cannot pack (no oneDNN)")]


def bf16(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(torch.bfloat16)


def test_packed_products_equal_plain_bfloat16_products():
    block, W, R = bf16(70, 45), bf16(5, 45, seed=1), bf16(5, 70, seed=2)
    packed = PackedBlock(block)
    exact_forward = W.double() @ block.double().T
    exact_backward = R.double() @ block.double()
    for got, exact in ((packed.forward(W), exact_forward), (packed.backward(R), exact_backward)):
        assert got.dtype == torch.bfloat16 and got.shape == exact.shape
        # float32 accumulation, one bfloat16 rounding of the result
        np.testing.assert_allclose(got.double().numpy(), exact.numpy(), rtol=2 ** -7, atol=1e-2)
    np.testing.assert_allclose(packed.forward(W).double().numpy(), (W @ block.T).double().numpy(), rtol=1e-2,
                               atol=1e-2)
    assert torch.equal(packed.dense(), block)


def test_a_packed_block_is_a_copy():
    block = bf16(20, 16)
    kept = block.clone()
    packed = PackedBlock(block)
    block.zero_()
    assert torch.equal(packed.dense(), kept)


def test_packed_blocks_reject_other_tensors():
    with pytest.raises(ValueError, match="bfloat16"):
        PackedBlock(torch.zeros(4, 4))


@pytest.mark.parametrize("pieces", [[200], [1, 63, 64, 65, 7], [130, 70]])
def test_builder_cuts_rows_added_in_any_pieces_into_full_blocks(pieces):
    rows = bf16(sum(pieces), 9)
    builder = PackedRowsBuilder(9, 64)
    start = 0
    for count in pieces:
        builder.add(rows[start:start + count].float())
        start += count
    blocks = builder.finish()
    assert [(s, e) for s, e, _ in blocks] == [(s, min(s + 64, len(rows))) for s in range(0, len(rows), 64)]
    assert torch.equal(torch.cat([b.dense() for _, _, b in blocks]), rows)


def test_packed_design_passes_and_subsets_equal_plain_ones():
    X = bf16(500, 37, seed=3)
    packed, plain = packed_design(X, 1.0, block_rows=96), dense_design(X, 1.0, 96)
    W = torch.randn(38, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    A = (torch.rand(500, 3, generator=torch.Generator().manual_seed(5)) < 0.5).double()
    Zp, Gp = packed.fused(W, lambda s, e, Z: A[s:e] * Z)
    Zd, Gd = plain.fused(W, lambda s, e, Z: A[s:e] * Z)
    np.testing.assert_allclose(Zp.numpy(), Zd.numpy(), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(Gp.numpy(), Gd.numpy(), rtol=1e-2, atol=0.1)
    assert packed.passes == 1
    np.testing.assert_allclose(packed.row_sq.numpy(), (X.double() ** 2).sum(1).numpy() + 1.0, rtol=1e-6)
    rows = torch.tensor(sorted(np.random.default_rng(6).choice(500, 170, replace=False).tolist()))
    sub = packed.subset(rows)
    assert sub.n == 170 and torch.equal(sub.dense(), X[rows])
    assert torch.equal(sub.row_sq, packed.row_sq[rows])


def test_a_packed_copy_is_taken_in_the_first_pass():
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(150, 12)) * 3 + 40).astype(np.float32)
    st = fit_standardizer(x)
    design = standardized_design(x, st, cache_bytes=0, chunk_rows=33)   # raw chunks, standardisation folded in
    design.request_shadow(torch.bfloat16, packed=True)
    design.fused(torch.zeros(13, 1, dtype=torch.float64), None)
    shadow = design.ensure_shadow()
    assert design.passes == 1 and type(shadow).__name__ == "PackedDesign"
    exact = (x.astype(np.float64) - st.mean) / st.scale
    np.testing.assert_allclose(shadow.dense().double().numpy(), exact, rtol=2 ** -8, atol=1e-6)
    with pytest.raises(ValueError, match="bfloat16 copies on a CPU"):
        design.request_shadow(torch.float16, packed=True)


def test_the_plan_chooses_the_layout_of_a_bfloat16_copy():
    from gan_probe.probe import plan
    from gan_probe.probe.plan import Machine, plan_solve

    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 200)
    x = (rng.normal(size=(200, 30)) + y[:, None] * 0.5).astype(np.float32)
    design = standardized_design(x, fit_standardizer(x))
    need = (1 + plan.PACKED_COMPACT_FRACTION) * 4 * 200 * 30

    def layout(machine, **kw):
        opts = SolverOptions(precondition="none", hessian_precision="bfloat16", **kw)
        return plan_solve(design, opts, machine).hessian_layout

    roomy, tight, unpacked = Machine(10 ** 9, True, True), Machine(int(1.9 * need), True, True), Machine(10 ** 9,
                                                                                                        True, False)
    assert layout(roomy) == "packed" and layout(roomy, hessian_layout="plain") == "plain"
    assert layout(tight) == "plain"   # two layouts do not fit
    assert layout(unpacked) == "plain"
    with pytest.raises(ValueError, match="cannot pack"):
        layout(unpacked, hessian_layout="packed")
    with pytest.raises(ValueError, match="hessian_layout 'blocked'"):
        layout(roomy, hessian_layout="blocked")
    assert plan_solve(design, SolverOptions(hessian_precision="storage"), roomy).hessian_layout == ""


def test_packed_subsets_need_sorted_rows():
    packed = packed_design(bf16(50, 4), None, block_rows=16)
    with pytest.raises(ValueError, match="sorted"):
        packed.subset(torch.tensor([3, 2]))
