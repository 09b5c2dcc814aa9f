"""gan_probe.linalg: the one routing policy for the probe's and the k-means baseline's dense linear algebra."""
import numpy as np
import pytest
import torch

from gan_probe import linalg
from gan_probe.baselines.parallel import WorkerPool


def test_large_cpu_operations_go_to_numpy_small_ones_stay_with_torch():
    a = torch.ones(4, 3)
    assert not linalg.use_numpy(a, work=linalg.SMALL_WORK - 1) and linalg.use_numpy(a, work=linalg.SMALL_WORK)
    assert not linalg.use_numpy(a, side=linalg.SMALL_SIDE - 1) and linalg.use_numpy(a, side=linalg.SMALL_SIDE)
    assert not linalg.use_numpy(torch.ones(2, requires_grad=True), work=linalg.SMALL_WORK)
    assert linalg.use_numpy(a, backend="numpy") and not linalg.use_numpy(a, work=1 << 40, backend="torch")


@pytest.mark.parametrize("vendor, numpy_blas", [("AuthenticAMD", True), ("GenuineIntel", False), ("", True)])
def test_flat_products_stay_with_torch_on_the_listed_vendors_only(vendor, numpy_blas, monkeypatch):
    monkeypatch.setattr(linalg, "cpu_vendor", lambda: vendor)
    a = torch.ones(4, 3)
    assert linalg.use_numpy_flat(a, work=linalg.SMALL_WORK) == numpy_blas
    assert not linalg.use_numpy_flat(a, work=linalg.SMALL_WORK - 1)
    assert not linalg.use_numpy_flat(a.to(torch.bfloat16), work=linalg.SMALL_WORK)
    assert linalg.use_numpy(a, work=linalg.SMALL_WORK)          # the rest of the policy is the vendor's own


def test_the_kmeans_worker_pool_prefers_numpy_at_every_size_with_any_number_of_workers():
    a = torch.ones(4, 3)
    for workers in (1, 2):
        with WorkerPool(workers):
            assert linalg.use_numpy(a, work=1)
    assert not linalg.use_numpy(a, work=1)


def test_products_into_a_buffer_agree_between_the_libraries():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 7, generator=gen), torch.randn(7, 9, generator=gen)
    outs = [linalg.mm(a, b, out=torch.empty(50, 9), backend=backend) for backend in ("numpy", "torch", "auto")]
    for out in outs:
        np.testing.assert_allclose(out.numpy(), (a @ b).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected one of auto, numpy, torch"):
        linalg.check_backend("mkl")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_through_syrk_is_the_symmetric_product_of_torch(dtype):
    a = torch.as_tensor(np.random.default_rng(5).normal(size=(700, 40)), dtype=dtype)
    expected = (a.T.to(torch.float64) @ a.to(torch.float64))
    with linalg.prefer_numpy():                       # the syrk route at any size
        via_numpy = linalg.gram(a)
    via_torch = linalg.gram(a)                        # small: torch
    for g in (via_numpy, via_torch):
        assert g.dtype == dtype and g.shape == (40, 40) and g.is_contiguous()
        assert torch.equal(g, g.T)
        assert torch.allclose(g.to(torch.float64), expected, rtol=0, atol=1e-3 if dtype == torch.float32 else 1e-9)
    # a non-contiguous input (a column slice) is read as it is
    with linalg.prefer_numpy():
        assert torch.allclose(linalg.gram(a[:, ::2]).to(torch.float64), expected[::2, ::2], rtol=0, atol=1e-3)
