"""Dense linear algebra routed to the faster library for the tensors: one policy for the probe and the baselines.

The policy. An operation goes through NumPy and SciPy (the OpenBLAS and LAPACK of their wheels) when its tensors
are float32 or float64 on the CPU, need no gradient, and it is large: a product of at least :data:`SMALL_WORK`
multiply-adds, a factorisation or triangular solve of a matrix side of at least :data:`SMALL_SIDE`. Everything else
-- CUDA tensors, bfloat16 ones (NumPy has no bfloat16), small operations -- stays with torch. Inside a
:func:`prefer_numpy` block the size rule is off and CPU operations of any size go to NumPy: the k-means baseline
opens one (its :class:`~gan_probe.baselines.parallel.WorkerPool` and its patch encoder), since its worker threads
run one-thread kernels (no thread pool to switch), its products were measured faster in OpenBLAS at every size,
and its results must not depend on the number of workers.
``backend="numpy"`` or ``"torch"`` forces one library for an operation (``"numpy"`` only on the CPU), e.g. to
compare the two (``benchmarks/bench_kmeans.py``). Results are torch tensors either way, sharing memory with NumPy's
where they can.

Why. On a CPU, OpenBLAS is markedly faster than torch's CPU build (MKL) on some processors -- on a 2-core AMD EPYC,
one thread each: a float32 1,170 x 14,336 Gram block at 103 vs 74 GFLOPS, a 5,000 x 5,000 Cholesky factorisation
in 0.65 vs 1.13 s, its inverse in 1.15 vs 2.97 s (the kernel route of ``benchmarks/bench_svm.py`` went from 14.2
to 11.1 s); the k-means baseline's tall-and-thin float32 products (thousands x 110 @ 110 x K) ran 1.4-2x faster.
Below the thresholds, switching between torch's and OpenBLAS's thread pools costs more than the operation gains (a
500-row probe problem ran 10x slower); with one thread each there is nothing to switch, and OpenBLAS stays ahead
(single-threaded, 4,096 x 110 @ 110 x 100 in float32: 1.44 ms against torch's 2.01 ms). Thread counts follow each
library's own settings (``OPENBLAS_NUM_THREADS`` or ``threadpoolctl``). The probe's fused passes over the data
stay with torch (interleaving the two libraries' thread pools chunk by chunk made them slower, not faster); a pass
that only computes ``X~^T R`` (:meth:`gan_probe.probe.design.Design.rmatmul`) asks :func:`use_numpy_flat` once
for all its chunks. Those flat products (ten rows of coefficients times thousands of rows of features) are where
the libraries' order depends on the processor: OpenBLAS ran them twice as fast as torch on the AMD EPYC, torch
(MKL) twice as fast as OpenBLAS on an Intel Xeon (2 cores, 40,000 x 28,672 memory-mapped float32 rows, 10 columns:
0.45 s in torch against 0.67 s in NumPy), so on processors of the vendors in :data:`TORCH_FLAT_PRODUCT_VENDORS`
they stay with torch. (On that Intel Xeon torch also factorised faster -- a 5,000 x 5,000 Cholesky in 0.40 against
0.68 s -- while OpenBLAS kept its lead for the k-means products and, from a few thousand rows, the symmetric
rank-k update of :func:`gram`; the rest of the policy is unchanged there.)

>>> a, b = torch.ones(2, 3), torch.ones(3, 4)
>>> mm(a, b).tolist()[0], mm(a, b, out=torch.empty(2, 4), backend="numpy").tolist()[1]
([3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0])
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import torch
from scipy.linalg import lapack

from .devices import cpu_vendor

#: products of fewer multiply-adds than this stay with torch
SMALL_WORK = 1 << 27
#: factorisations and triangular solves of a smaller matrix side stay with torch
SMALL_SIDE = 1024
BACKENDS = ("auto", "numpy", "torch")
#: the tensor dtypes the NumPy route takes
NUMPY_DTYPES = (torch.float32, torch.float64)
#: processor vendors (``vendor_id`` of ``/proc/cpuinfo``) whose flat products ``X~^T R`` stay with torch
#: (:func:`use_numpy_flat`)
TORCH_FLAT_PRODUCT_VENDORS = frozenset({"GenuineIntel"})
_prefer_numpy = 0  # depth of prefer_numpy() blocks


@contextlib.contextmanager
def prefer_numpy() -> Iterator[None]:
    """For the block (in every thread): CPU operations of any size go to NumPy, not only large ones."""
    global _prefer_numpy
    _prefer_numpy += 1
    try:
        yield
    finally:
        _prefer_numpy -= 1


def check_backend(backend: str, device: torch.device | str = "cpu") -> str:
    """``backend`` if it is one of :data:`BACKENDS` and usable on ``device`` (``"numpy"`` needs the CPU)."""
    if backend not in BACKENDS:
        raise ValueError(f"gemm backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "numpy" and torch.device(device).type != "cpu":
        raise ValueError("the numpy gemm backend needs CPU tensors")
    return backend


def use_numpy(*tensors: torch.Tensor, work: int = 0, side: int = 0, backend: str = "auto") -> bool:
    """The policy: whether an operation on ``tensors`` of ``work`` multiply-adds (a product) or of matrix side
    ``side`` (a factorisation) goes through NumPy/SciPy."""
    if backend != "auto":
        return backend == "numpy"
    on_cpu = all(t.device.type == "cpu" and not t.requires_grad and t.dtype in NUMPY_DTYPES for t in tensors)
    return on_cpu and (_prefer_numpy > 0 or (work >= SMALL_WORK if work else side >= SMALL_SIDE))


def use_numpy_flat(*tensors: torch.Tensor, work: int) -> bool:
    """:func:`use_numpy` for a flat product ``R^T X`` (few rows of coefficients, many rows of data), except on
    processors of :data:`TORCH_FLAT_PRODUCT_VENDORS`, where torch runs them faster (see the module docstring)."""
    return use_numpy(*tensors, work=work) and cpu_vendor() not in TORCH_FLAT_PRODUCT_VENDORS


def mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """``a @ b`` for 2-D tensors of one dtype, into ``out`` (contiguous, without allocating) when given."""
    if use_numpy(a, b, work=a.shape[0] * a.shape[1] * b.shape[1], backend=backend):
        if out is None:
            return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    return a @ b if out is None else torch.mm(a, b, out=out)


def gram(a: torch.Tensor, lower_only: bool = False) -> torch.Tensor:
    """``a^T a`` for a 2-D float tensor, symmetric. Through NumPy it is BLAS's symmetric rank-k update (syrk),
    which computes one triangle: half the multiply-adds of a product, and no transposed copy of ``a`` -- for
    8,000 x 1,024 float32 rows on 2 CPU cores 41 ms instead of 81 ms. ``lower_only``: the lower triangle (and
    diagonal) only, zeros above -- all a Cholesky factorisation reads, without the copy into the other triangle
    (8 ms of a 1,024 x 1,024 float32 update's 24 ms on 2 cores of an Intel Xeon).

    >>> gram(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [[10.0, 14.0], [14.0, 20.0]]
    >>> gram(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), lower_only=True).tolist()
    [[10.0, 0.0], [14.0, 20.0]]
    """
    r = a.shape[1]
    if use_numpy(a, work=a.shape[0] * r * (r + 1) // 2):
        syrk = scipy.linalg.blas.ssyrk if a.dtype == torch.float32 else scipy.linalg.blas.dsyrk
        # a^T in Fortran order is a's own memory (C order): syrk with trans=0 forms a^T (a^T)^T, upper triangle
        upper = syrk(1.0, np.ascontiguousarray(a.numpy()).T, trans=0, lower=0)
        if not lower_only:
            upper += np.triu(upper, 1).T
        return torch.from_numpy(upper.T)   # (the transpose of the Fortran-ordered result is C-ordered: lower)
    g = a.T @ a
    g = (g + g.T) * 0.5
    return torch.tril(g) if lower_only else g


def cholesky(M: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a symmetric positive definite matrix (raises on failure, like torch)."""
    if use_numpy(M, side=M.shape[0]):
        try:
            L = scipy.linalg.cholesky(M.numpy(), lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise torch.linalg.LinAlgError(str(exc)) from None
        return torch.from_numpy(L)
    return torch.linalg.cholesky(M)


def cholesky_solve(R: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^{-1} R``."""
    if use_numpy(R, L, side=L.shape[0]):
        return torch.from_numpy(scipy.linalg.cho_solve((L.numpy(), True), R.numpy(), check_finite=False))
    return torch.cholesky_solve(R, L)


def cholesky_inverse(L: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^{-1}`` as a symmetric, row-major tensor."""
    if use_numpy(L, side=L.shape[0]):
        inv, info = lapack.dpotri(L.numpy(), lower=1) if L.dtype == torch.float64 else \
            lapack.spotri(L.numpy(), lower=1)
        if info != 0:
            raise torch.linalg.LinAlgError(f"potri failed (info {info})")
        inv = np.tril(inv)
        inv += np.tril(inv, -1).T
        return torch.from_numpy(np.ascontiguousarray(inv))
    if L.device.type == "cpu":
        return torch.cholesky_inverse(L).contiguous()
    eye = torch.eye(L.shape[0], dtype=L.dtype, device=L.device)
    return torch.cholesky_solve(eye, L)


def solve_lower(L: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``L^{-1} R`` for a lower-triangular ``L``."""
    if use_numpy(L, R, side=L.shape[0]):
        return torch.from_numpy(scipy.linalg.solve_triangular(L.numpy(), R.numpy(), lower=True,
                                                              check_finite=False))
    return torch.linalg.solve_triangular(L, R, upper=False)
