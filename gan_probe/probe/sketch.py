"""A randomized low-rank preconditioner for the Newton systems of large primal problems.

The Newton systems of :mod:`gan_probe.probe.newton` are ``(I + 2C X~_A^T X~_A) p = -g``. Pooled conv features
have a slowly decaying spectrum (the paper model's 28,672 CIFAR-10 features at C = 0.01: ``2C`` times the top
eigenvalue of ``X~^T X~`` is 2.3 x 10^6, times the 256th about 10^4, times the 1,024th about 600), so conjugate
gradients need many steps unless the top of the spectrum is taken out.

:class:`SketchedSpectrum` approximates the top ``r`` eigenvectors ``V`` of ``X~^T X~`` once per design with a
randomized range finder: one read of the data per power iteration (two by default) and half a read more, each
with ``r`` + oversampling columns, then Rayleigh-Ritz. Products with that many columns run near the processor's
peak, so a rank-1,024 sketch of 40,000 x 28,672 features costs about 50 s on 2 cores, as much as ~100 CG steps.
:class:`gan_probe.probe.preconditioners.SketchPreconditioner` then inverts each class's Hessian exactly on
``span(V)``, ``M_k = I + 2C (X~V)^T A_k (X~V)``, and by a scalar on the complement (the mean of the Hessian's
eigenvalues there, from traces). ``M_k`` is updated from the rows whose active status changed since the last
Newton step, which late in a solve are few.
"""
from __future__ import annotations

import torch

from .. import linalg
from .design import Design
from .rows import LOCAL, RowReducer


class SketchedSpectrum:
    """An orthonormal ``V`` (``(dim, r)``) spanning the approximate top eigenvectors of ``X~^T X~``, with
    ``XV = X~ V`` (``(n, r)``) and the Ritz values ``theta`` (descending); float32 (a preconditioner's basis)."""

    def __init__(self, V: torch.Tensor, XV: torch.Tensor, theta: torch.Tensor, reducer: RowReducer = LOCAL):
        self.V, self.XV, self.theta = V.contiguous(), XV, theta   # XV: this rank's rows
        self.reducer = reducer
        self.Vt = V.T.contiguous()

    @property
    def rank(self) -> int:
        return int(self.V.shape[1])

    @staticmethod
    def compute(design: Design, rank: int, oversample: int = 16, seed: int = 0,
                power_iterations: int = 1) -> "SketchedSpectrum":
        """Randomized range finder with ``power_iterations`` passes of ``X~^T X~``: ``Q = orth((X~^T X~)^q
        Omega)``, then ``X~ Q`` (a product without the transpose half) gives the Rayleigh-Ritz matrix
        ``Q^T X~^T X~ Q = (X~Q)^T (X~Q)`` and, rotated, ``X~ V`` -- ``q + 1/2`` passes in all."""
        rank = min(rank, design.dim, design.n_total)
        width = min(rank + oversample, design.dim, design.n_total)
        gen = torch.Generator().manual_seed(seed)
        Y = torch.randn(design.dim, width, generator=gen, dtype=torch.float64).to(design.device)
        for i in range(max(1, power_iterations)):
            if i:
                Y = torch.linalg.qr(Y)[0]
            _, Y = design.fused(Y, lambda start, end, Z: Z)     # X~^T X~ Y
        Q = torch.linalg.qr(Y)[0]
        del Y
        return SketchedSpectrum._rayleigh_ritz(design, Q, rank)

    def on(self, design: Design) -> "SketchedSpectrum":
        """This basis for the rows of another design over the same (standardised) features, e.g. all the training
        rows after a sketch of the rows minus a validation split: one product ``X~ V`` and Rayleigh-Ritz on the new
        rows instead of a new sketch (``q + 1/2`` reads with as many columns). The preconditioner only speeds CG
        up; the solution does not depend on it."""
        if design.dim != self.V.shape[0]:
            raise ValueError(f"a sketch over {self.V.shape[0]} weights cannot precondition a design with "
                             f"{design.dim}")
        return SketchedSpectrum._rayleigh_ritz(design, self.V.to(torch.float64), self.rank)

    def stacked(self, more: Design) -> "SketchedSpectrum":
        """This basis for its own rows followed by the rows of ``more`` (e.g. the grid's training rows, then the
        validation rows added for the refit): the product ``X~ V`` of the new rows only, then Rayleigh-Ritz from the
        small Gram matrix of all of them -- a fraction of :meth:`on`'s product with every row. One process only
        (with rows shared among ranks the ranks' shares of the two designs do not line up; use :meth:`on`)."""
        if self.reducer.enabled or more.reducer.enabled:
            raise ValueError("stacked() needs all rows in one process; use on()")
        if more.dim != self.V.shape[0]:
            raise ValueError(f"a sketch over {self.V.shape[0]} weights cannot take rows of {more.dim}")
        V = self.V.to(torch.float64)
        XV = torch.cat([self.XV, more.matmul(V).to(torch.float32)])
        return SketchedSpectrum._rotated(V, XV, self.rank, self.reducer)

    @staticmethod
    def _rayleigh_ritz(design: Design, Q: torch.Tensor, rank: int) -> "SketchedSpectrum":
        """Rotate the orthonormal ``Q`` to the eigenvectors of ``Q^T X~^T X~ Q`` (one read: ``X~ Q``)."""
        return SketchedSpectrum._rotated(Q, design.matmul(Q).to(torch.float32), rank, design.reducer)   # X~ Q

    @staticmethod
    def _rotated(Q: torch.Tensor, Z: torch.Tensor, rank: int, reducer: RowReducer) -> "SketchedSpectrum":
        """Rayleigh-Ritz from ``Z = X~ Q`` (float32, this rank's rows): ``Q`` rotated to the eigenvectors of
        ``Z^T Z`` summed over the ranks, the top ``rank`` of them, and ``Z`` with it."""
        T = linalg.gram(Z).to(torch.float64)
        reducer.sum(T)
        theta, S = torch.linalg.eigh(0.5 * (T + T.T))
        order = torch.argsort(theta, descending=True)[:rank]
        S = S[:, order]
        V = (Q @ S).to(torch.float32)
        XV = linalg.mm(Z, S.to(torch.float32))
        return SketchedSpectrum(V, XV, theta[order].clamp_min(0), reducer)
