"""Dense linear algebra for the probe, routed to the faster library for the tensors' device.

On a CPU, the BLAS and LAPACK behind NumPy and SciPy (OpenBLAS) are markedly faster than torch's CPU build (MKL)
on some processors -- on a 2-core AMD EPYC, one thread each: a float32 1,170 x 14,336 Gram block at 103 vs 74
GFLOPS, a 5,000 x 5,000 Cholesky factorisation in 0.65 vs 1.13 s, its inverse in 1.15 vs 2.97 s; the kernel route
of ``benchmarks/bench_svm.py`` went from 14.2 to 11.1 s -- so CPU tensors go through them, sharing memory where
they can. CUDA tensors use torch. Results are torch tensors either way. The primal route's fused passes over the
data stay with torch: interleaving the two libraries' thread pools chunk by chunk made them slower, not faster; a
pass that only computes ``X~^T R`` (:meth:`gan_probe.probe.design.Design.rmatmul`) uses NumPy's BLAS throughout.
Thread counts on the CPU follow the BLAS library's own settings (``OPENBLAS_NUM_THREADS`` or
``threadpoolctl``).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from scipy.linalg import lapack


#: below this many multiply-adds (or a matrix side of ``SMALL_SIDE``) torch itself is used: switching between
#: torch's and OpenBLAS's thread pools costs more than small operations gain (a 500-row problem ran 10x slower)
SMALL_WORK = 1 << 27
SMALL_SIDE = 1024


def _cpu(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and not t.requires_grad for t in tensors)


def _large(side: int) -> bool:
    return side >= SMALL_SIDE


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D tensors of one dtype."""
    if _cpu(a, b) and a.shape[0] * a.shape[1] * b.shape[1] >= SMALL_WORK:
        return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
    return a @ b


def cholesky(M: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a symmetric positive definite matrix (raises on failure, like torch)."""
    if _cpu(M) and _large(M.shape[0]):
        try:
            L = scipy.linalg.cholesky(M.numpy(), lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise torch.linalg.LinAlgError(str(exc)) from None
        return torch.from_numpy(L)
    return torch.linalg.cholesky(M)


def cholesky_solve(R: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^{-1} R``."""
    if _cpu(R, L) and _large(L.shape[0]):
        return torch.from_numpy(scipy.linalg.cho_solve((L.numpy(), True), R.numpy(), check_finite=False))
    return torch.cholesky_solve(R, L)


def cholesky_inverse(L: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^{-1}`` as a symmetric, row-major tensor."""
    if _cpu(L) and _large(L.shape[0]):
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
    if _cpu(L, R) and _large(L.shape[0]):
        return torch.from_numpy(scipy.linalg.solve_triangular(L.numpy(), R.numpy(), lower=True,
                                                              check_finite=False))
    return torch.linalg.solve_triangular(L, R, upper=False)
