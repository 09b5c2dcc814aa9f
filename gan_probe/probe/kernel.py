"""The kernel (Gram) route for problems with fewer training rows than features: exact finite Newton.

With ``n`` rows and ``D > n`` features the optimal weights lie in the span of the rows, ``w~ = X~^T beta``,
and the L2-SVM becomes a problem in ``beta`` over the ``n x n`` Gram matrix ``K = X~ X~^T`` (the constant
column included, so the bias is penalised exactly as in liblinear):

    f(beta) = 0.5 beta^T K beta + C sum_i max(0, 1 - y_i (K beta)_i)^2

:class:`KernelNewton` minimises it with exact Newton steps (no conjugate gradients), so the ill-conditioning
of real features -- their covariance spectra decay like a power law -- does not matter; a handful of steps
reach the optimum to machine precision. The Gram matrix costs one ``n x n x D`` product, paid once per set of
training rows and shared by every C of a grid; the weights over the features come back with one read of the
rows (``w~ = X~^T beta``).

>>> import torch
>>> from gan_probe.probe.design import dense_design
>>> X = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
>>> torch.allclose(gram(dense_design(X, intercept_scaling=1.0)), X @ X.T + 1)
True
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .design import Design
from .newton import line_search


def gram(design: Design) -> torch.Tensor:
    """``X~ X~^T`` (constant column included) as a float64 ``(n, n)`` tensor, built block by block.

    Products run in the storage precision (float32 for feature stores), each block is accumulated by BLAS over
    the feature dimension and stored in float64.
    """
    blocks = list(design.chunks())
    n = design.n
    K = torch.empty(n, n, dtype=torch.float64, device=design.device)
    for i, (si, ei, bi) in enumerate(blocks):
        for sj, ej, bj in blocks[: i + 1]:
            prod = (bi @ bj.T).to(torch.float64)
            K[si:ei, sj:ej] = prod
            if sj != si:
                K[sj:ej, si:ei] = prod.T
    if design.intercept_scaling is not None:
        K += design.intercept_scaling ** 2
    design.passes += 1
    return K


@dataclass
class KernelSolve:
    """Representer coefficients ``beta`` (``w~ = X~^T beta``), margins ``K beta`` and per-class objectives."""

    beta: torch.Tensor
    margins: torch.Tensor
    objective: np.ndarray
    iterations: int
    converged: bool
    seconds: float
    history: list[dict] = field(default_factory=list)


class KernelNewton:
    """Exact (finite) Newton on the Gram matrix: the L2-SVM of Chapelle (2007) / Keerthi & DeCoste (2005).

    With the active rows ``A`` of class ``k`` (margin below 1), the Newton point has ``beta_A = (K_AA +
    I / 2C)^{-1} y_A`` and ``beta = 0`` elsewhere; an exact line search towards it gives a method that stops
    after finitely many steps (the active sets settle), typically 5-15. Each C factors ``M = K + I / 2C`` once
    (shared by every class); a class's system then costs a solve with the inactive block ``(M^{-1})_BB``
    (Schur complement) or, when fewer rows are active than inactive, with ``M_AA`` directly -- at most
    ``(n/2)^3 / 3`` operations, usually far less since most rows are active.
    """

    def __init__(self, design: Design):
        K = gram(design)
        self.K = 0.5 * (K + K.T)
        self.n = K.shape[0]

    def solve(self, Y: torch.Tensor, C: float, beta0: torch.Tensor | None = None, tol: float = 1e-12,
              max_iter: int = 100) -> KernelSolve:
        start = time.perf_counter()
        K = self.K
        Y = Y.to(K.device, torch.float64)
        eye = torch.eye(self.n, dtype=torch.float64, device=K.device)
        # M^{-1} by two triangular solves (much faster than LAPACK's potri behind cholesky_inverse)
        G = torch.cholesky_solve(eye, torch.linalg.cholesky(K + eye / (2 * C)))
        beta = torch.zeros_like(Y) if beta0 is None else beta0.to(K.device, torch.float64).clone()
        z = K @ beta
        xi = (1 - Y * z).clamp_min(0)
        f = 0.5 * (beta * z).sum(0) + C * (xi * xi).sum(0)
        done = torch.zeros(Y.shape[1], dtype=torch.bool, device=K.device)
        history: list[dict] = []
        it = 0
        for it in range(1, max_iter + 1):
            cols = (~done).nonzero().flatten()
            if len(cols) == 0:
                it -= 1
                break
            bc, zc, yc = beta[:, cols], z[:, cols], Y[:, cols]
            active = yc * zc < 1
            U = G @ torch.where(active, yc, torch.zeros_like(yc))  # M^{-1} [y_A; 0] for every class at once
            target = torch.stack([self._newton_point(G, yc[:, j], active[:, j], C, U[:, j])
                                  for j in range(len(cols))], 1)
            d = target - bc
            Kd = K @ d
            t, f_new = line_search((bc * Kd).sum(0), (d * Kd).sum(0), (bc * zc).sum(0), yc * zc, yc * Kd, C)
            beta[:, cols] = bc + t * d
            z[:, cols] = zc + t * Kd
            decrease = f[cols] - f_new
            f[cols] = f_new
            # a full step that keeps the active set lands on the optimum of the piece: the exact minimiser
            settled = ((t - 1).abs() <= 1e-9) & ((yc * z[:, cols] < 1) == active).all(0)
            done[cols[settled | (decrease <= tol * f_new.abs())]] = True
            history.append({"iteration": it, "objective": float(f.sum()), "classes": int(len(cols)),
                            "step_min": float(t.min())})
            if bool(done.all()):
                break
        return KernelSolve(beta=beta, margins=z, objective=f.cpu().numpy(), iterations=it,
                           converged=bool(done.all()), seconds=time.perf_counter() - start, history=history)

    def _newton_point(self, G: torch.Tensor, y: torch.Tensor, active: torch.Tensor, C: float,
                      u: torch.Tensor) -> torch.Tensor:
        """``beta`` with ``beta_A = (K_AA + I/2C)^{-1} y_A`` and zero elsewhere (``A``: the active rows)."""
        n_active = int(active.sum())
        x = torch.zeros_like(y)
        if n_active == 0:
            return x
        if n_active >= self.n - n_active:
            # u = M^{-1} [y_A; 0]; M^{-1} [y_A; v_B] has a zero B-block when v_B = -(G_BB)^{-1} u_B
            B = (~active).nonzero().flatten()
            if len(B) == 0:
                return u
            GB = G.index_select(0, B)  # rows (contiguous) = columns, G being symmetric
            L, info = torch.linalg.cholesky_ex(GB[:, B])
            if int(info) == 0:
                v = torch.cholesky_solve(-u[B, None], L)[:, 0]
                x = u + GB.T @ v
                x[B] = 0
                return x
        A = active.nonzero().flatten()
        MA = self.K.index_select(0, A)[:, A]
        MA.diagonal().add_(1 / (2 * C))
        x[A] = torch.cholesky_solve(y[A, None], torch.linalg.cholesky(MA))[:, 0]
        return x
