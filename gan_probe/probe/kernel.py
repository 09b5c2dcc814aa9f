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

from .. import linalg
from .design import Design
from .loss import line_search


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
            prod = linalg.mm(bi, bj.T).to(torch.float64)
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


class InverseFactorColumns:
    """Columns ``L^{-1} e_j`` of the inverse Cholesky factor of ``M = L L^T``, computed on demand and kept.

    For any set ``B`` of rows, ``(M^{-1})_BB = (L^{-1} E_B)^T (L^{-1} E_B)``: the block of the inverse that the
    Schur-complement form of a Newton point needs, at ``n^2 |B|`` operations instead of the ``2 n^3`` of the whole
    inverse. Active sets change little between Newton steps, so most columns are reused.
    """

    def __init__(self, L: torch.Tensor):
        self.L = L
        self.slot = torch.full((L.shape[0],), -1, dtype=torch.long, device=L.device)  # row -> column, -1: none
        self.columns = L.new_empty(L.shape[0], 0)
        self.count = 0

    def prepare(self, rows: torch.Tensor) -> None:
        """Compute the columns of ``rows`` not computed yet, in one triangular solve."""
        missing = rows[self.slot[rows] < 0].unique()
        m = len(missing)
        if m == 0:
            return
        n = self.L.shape[0]
        if self.count + m > self.columns.shape[1]:  # grow geometrically: few copies
            grown = self.L.new_empty(n, min(n, max(self.count + m, 2 * self.columns.shape[1])))
            grown[:, :self.count] = self.columns[:, :self.count]
            self.columns = grown
        E = self.L.new_zeros(n, m)
        E[missing, torch.arange(m, device=self.L.device)] = 1
        self.columns[:, self.count:self.count + m] = linalg.solve_lower(self.L, E)
        self.slot[missing] = torch.arange(self.count, self.count + m, device=self.L.device)
        self.count += m

    def get(self, rows: torch.Tensor) -> torch.Tensor:
        """``L^{-1} E_rows`` as an ``(n, len(rows))`` tensor."""
        self.prepare(rows)
        return self.columns.index_select(1, self.slot[rows])


class InverseBlocks:
    """Principal blocks ``(M^{-1})_BB`` of the inverse of ``M = L L^T``, the cheaper of two ways.

    With few inactive rows per class, from the columns of ``L^{-1}`` (:class:`InverseFactorColumns`,
    ``|B|^2 n`` per block); once the blocks get large (``sum |B_k|^2 > 0.4 n^2``: five Newton steps of them would
    cost more than the whole inverse), ``M^{-1}`` is formed once (``2 n^3 / 3`` with LAPACK's potri on a CPU) and
    blocks are read from it.
    """

    def __init__(self, L: torch.Tensor):
        self.L = L
        self.n = L.shape[0]
        self.columns = InverseFactorColumns(L)
        self.inverse: torch.Tensor | None = None

    def plan(self, blocks: list[torch.Tensor]) -> None:
        """Prepare for the blocks of one Newton step (one triangular solve, or the whole inverse)."""
        if self.inverse is None and sum(len(b) ** 2 for b in blocks) > 0.4 * self.n ** 2:
            self.inverse = linalg.cholesky_inverse(self.L)
            self.columns = None
        if self.inverse is None and blocks:
            self.columns.prepare(torch.cat(blocks).unique())

    def solve(self, R: torch.Tensor) -> torch.Tensor:
        """``M^{-1} R`` (a product with the inverse once it exists, else two triangular solves)."""
        return linalg.mm(self.inverse, R) if self.inverse is not None else linalg.cholesky_solve(R, self.L)

    def block(self, rows: torch.Tensor) -> torch.Tensor:
        if self.inverse is not None:
            return self.inverse[rows[:, None], rows[None, :]]
        W = self.columns.get(rows)
        return linalg.mm(W.T, W)


class KernelNewton:
    """Exact (finite) Newton on the Gram matrix: the L2-SVM of Chapelle (2007) / Keerthi & DeCoste (2005).

    With the active rows ``A`` of class ``k`` (margin below 1), the Newton point has ``beta_A = (K_AA +
    I / 2C)^{-1} y_A`` and ``beta = 0`` elsewhere; an exact line search towards it gives a method that stops
    after finitely many steps (the active sets settle), typically 5-15. Each C factors ``M = K + I / 2C`` once
    (shared by every class). Most rows are active, and the Newton point is ``M^{-1}`` applied to ``[y_A; v_B]``
    with ``v_B`` chosen to make ``beta_B = 0``: a Schur complement over the inactive rows ``B``, whose block of
    ``M^{-1}`` comes from :class:`InverseBlocks` (without forming the inverse while the blocks are small). A
    class with more inactive than active rows factors ``M_AA`` directly instead.
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
        M = K.clone()
        M.diagonal().add_(1 / (2 * C))
        L = linalg.cholesky(M)
        del M
        blocks = InverseBlocks(L)
        beta = torch.zeros_like(Y) if beta0 is None else beta0.to(K.device, torch.float64).clone()
        z = linalg.mm(K, beta)
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
            target = self._newton_points(L, blocks, yc, active, C)
            d = target - bc
            Kd = linalg.mm(K, d)
            t, f_new = line_search((bc * Kd).sum(0), (d * Kd).sum(0), (bc * zc).sum(0), yc * zc, yc * Kd, C)
            beta[:, cols] = bc + t * d
            z[:, cols] = zc + t * Kd
            decrease = f[cols] - f_new
            f[cols] = f_new
            # a full step that keeps the active set lands on the optimum of the piece: the exact minimiser
            settled = ((t - 1).abs() <= 1e-9) & ((yc * z[:, cols] < 1) == active).all(0)
            done[cols[settled | (decrease <= tol * f_new.abs())]] = True
            history.append({"iteration": it, "objective": float(f.sum()), "classes": int(len(cols)),
                            "step_min": float(t.min()), "inactive_max": int((~active).sum(0).max())})
            if bool(done.all()):
                break
        return KernelSolve(beta=beta, margins=z, objective=f.cpu().numpy(), iterations=it,
                           converged=bool(done.all()), seconds=time.perf_counter() - start, history=history)

    def _newton_points(self, L: torch.Tensor, blocks: InverseBlocks, Y: torch.Tensor, active: torch.Tensor,
                       C: float) -> torch.Tensor:
        """``beta`` with ``beta_A = (K_AA + I/2C)^{-1} y_A`` and zero elsewhere, for every column of ``Y``."""
        direct: list[int] = []
        schur: list[tuple[int, torch.Tensor]] = []
        for j in range(Y.shape[1]):
            B = (~active[:, j]).nonzero().flatten()
            if len(B) == 0:
                continue
            if len(B) > self.n - len(B):  # fewer active than inactive rows: factor M_AA itself
                direct.append(j)
            else:
                schur.append((j, B))
        blocks.plan([B for _, B in schur])  # first: it may form the inverse, which then serves the solves too
        rhs = torch.where(active, Y, torch.zeros_like(Y))
        U = blocks.solve(rhs)                                # M^{-1} [y_A; 0], every class at once
        correction = torch.zeros_like(Y)
        for j, B in schur:
            try:
                chol = linalg.cholesky(blocks.block(B))  # (M^{-1})_BB
            except torch.linalg.LinAlgError:
                direct.append(j)
                continue
            # M^{-1} [y_A; v_B] has a zero B-block when v_B = -((M^{-1})_BB)^{-1} u_B
            correction[B, j] = linalg.cholesky_solve(-U[B, j, None], chol)[:, 0]
        out = U + blocks.solve(correction) if bool(correction.any()) else U
        out[~active] = 0
        for j in direct:
            out[:, j] = self._direct_point(Y[:, j], active[:, j], C)
        return out

    def _direct_point(self, y: torch.Tensor, active: torch.Tensor, C: float) -> torch.Tensor:
        x = torch.zeros_like(y)
        A = active.nonzero().flatten()
        if len(A) == 0:
            return x
        MA = self.K.index_select(0, A)[:, A]
        MA.diagonal().add_(1 / (2 * C))
        x[A] = linalg.cholesky_solve(y[A, None], linalg.cholesky(MA))[:, 0]
        return x
