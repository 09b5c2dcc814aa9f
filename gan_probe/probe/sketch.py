"""A randomized low-rank preconditioner for the Newton systems of large primal problems.

The Newton systems of :mod:`gan_probe.probe.newton` are ``(I + 2C X~_A^T X~_A) p = -g``. Pooled conv features
have a slowly decaying spectrum (the paper model's 28,672 CIFAR-10 features at C = 0.01: ``2C`` times the top
eigenvalue of ``X~^T X~`` is 2.3 x 10^6, times the 256th about 10^4, times the 1,024th about 600), so conjugate
gradients need many steps unless the top of the spectrum is taken out.

:class:`SketchedSpectrum` approximates the top ``r`` eigenvectors ``V`` of ``X~^T X~`` once per design with a
randomized range finder: one read of the data per power iteration (two by default) and half a read more, each
with ``r`` + oversampling columns, then Rayleigh-Ritz. Products with that many columns run near the processor's
peak, so a rank-1,024 sketch of 40,000 x 28,672 features costs about 50 s on 2 cores, as much as ~100 CG steps.
:class:`SketchPreconditioner` then inverts each class's Hessian exactly on ``span(V)``, ``M_k = I + 2C (X~V)^T
A_k (X~V)``, and by a scalar on the complement (the mean of the Hessian's eigenvalues there, from traces).
``M_k`` is updated from the rows whose active status changed since the last Newton step, which late in a solve
are few.
"""
from __future__ import annotations

import torch

from . import linalg
from .design import Design


class SketchedSpectrum:
    """An orthonormal ``V`` (``(dim, r)``) spanning the approximate top eigenvectors of ``X~^T X~``, with
    ``XV = X~ V`` (``(n, r)``) and the Ritz values ``theta`` (descending); float32 (a preconditioner's basis)."""

    def __init__(self, V: torch.Tensor, XV: torch.Tensor, theta: torch.Tensor):
        self.V, self.XV, self.theta = V.contiguous(), XV, theta
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
        rank = min(rank, design.dim, design.n)
        width = min(rank + oversample, design.dim, design.n)
        gen = torch.Generator().manual_seed(seed)
        Y = torch.randn(design.dim, width, generator=gen, dtype=torch.float64).to(design.device)
        for i in range(max(1, power_iterations)):
            if i:
                Y = torch.linalg.qr(Y)[0]
            _, Y = design.fused(Y, lambda start, end, Z: Z)     # X~^T X~ Y
        Q = torch.linalg.qr(Y)[0]
        del Y
        Z = design.matmul(Q).to(torch.float32)                   # X~ Q
        T = linalg.mm(Z.T.contiguous(), Z).to(torch.float64)
        theta, S = torch.linalg.eigh(0.5 * (T + T.T))
        order = torch.argsort(theta, descending=True)[:rank]
        S = S[:, order]
        V = (Q @ S).to(torch.float32)
        XV = linalg.mm(Z, S.to(torch.float32))
        return SketchedSpectrum(V, XV, theta[order].clamp_min(0))


class SketchPreconditioner:
    """Per-class inverse preconditioners from a :class:`SketchedSpectrum`; keeps each class's ``(X~V)^T A_k
    (X~V)`` between calls and updates it from the rows that changed."""

    def __init__(self, spectrum: SketchedSpectrum):
        self.spectrum = spectrum
        self._state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}   # class -> (active mask, (X~V)^T A X~V)
        self._gram: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return self.spectrum.rank

    def _full_gram(self) -> torch.Tensor:
        if self._gram is None:
            XV = self.spectrum.XV
            self._gram = linalg.mm(XV.T.contiguous(), XV).to(torch.float64)
        return self._gram

    def _weighted_gram(self, k: int, mask: torch.Tensor) -> torch.Tensor:
        XV = self.spectrum.XV
        n = mask.shape[0]

        def gram(rows: torch.Tensor) -> torch.Tensor:
            if not bool(rows.any()):
                return torch.zeros(XV.shape[1], XV.shape[1], dtype=torch.float64, device=XV.device)
            part = XV[rows]
            return linalg.mm(part.T.contiguous(), part).to(torch.float64)

        active = int(mask.sum())
        previous = self._state.get(k)
        if previous is not None and previous[0].shape == mask.shape:
            old_mask, old = previous
            added, removed = mask & ~old_mask, old_mask & ~mask
            if int(added.sum()) + int(removed.sum()) < min(active, n - active):
                return old + gram(added) - gram(removed)
        if active <= n - active:
            return gram(mask)
        return self._full_gram() - gram(~mask)

    def __call__(self, active: torch.Tensor, classes: torch.Tensor, C: float, row_sq: torch.Tensor):
        """``M_k^{-1}`` for the columns of ``active`` (0/1, ``(n, K)``), which belong to ``classes``."""
        V = self.spectrum.V
        dim, r = V.shape
        K = active.shape[1]
        M = torch.empty(K, r, r, dtype=torch.float64, device=V.device)
        for j in range(K):
            k = int(classes[j])
            mask = active[:, j] > 0
            weighted = self._weighted_gram(k, mask)
            self._state[k] = (mask, weighted)
            M[j] = weighted
        inside = torch.diagonal(M, dim1=1, dim2=2).sum(1)
        total = active.T @ row_sq
        c = 1 + (2 * C) * (total - inside).clamp_min(0) / max(1, dim - r)
        M *= 2 * C
        M += torch.eye(r, dtype=torch.float64, device=V.device)
        # explicit inverses: a matrix-vector product per class and CG step instead of two triangular solves
        # (float32 halves the memory traffic of what is a memory-bound product)
        Minv = torch.cholesky_inverse(torch.linalg.cholesky(M)).to(torch.float32)
        Vt = self.spectrum.Vt

        def apply(R: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            # V M^-1 V^T R + (R - V V^T R) / c, the products with V in float32 and in the (columns, dim)
            # orientation, which CPU BLAS runs several times faster than (dim, columns) for few columns
            VtR32 = R.T.to(torch.float32).contiguous() @ V                            # (k, r)
            VtR = VtR32.to(torch.float64)
            # one matrix-vector product per column: indexing Minv[idx] would copy every inverse per CG step
            inner = torch.stack([torch.mv(Minv[j], VtR32[i]) for i, j in enumerate(idx.tolist())])
            inner = inner.to(torch.float64)
            step = ((inner - VtR / c[idx, None]).to(torch.float32) @ Vt).to(torch.float64)
            return step.T + R / c[idx]

        return apply
