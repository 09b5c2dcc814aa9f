"""Preconditioners for the Newton systems ``(I + 2C X~_A^T X~_A) p = -g`` of :mod:`gan_probe.probe.newton`.

Both invert each class's Hessian exactly on the span of an orthonormal basis ``V`` of weight space and by a scalar
on its complement (the mean of the Hessian's eigenvalues there, from traces; no data pass); they differ in where
``V`` comes from:

- :class:`Subspace`: Rayleigh-Ritz on the conjugate-gradient directions already computed (recycled from one
  Newton step to the next, no extra read of the data); the default off the large-CPU path.
- :class:`SketchPreconditioner`: the top eigenvectors of ``X~^T X~`` from a randomized sketch
  (:class:`gan_probe.probe.sketch.SketchedSpectrum`), updated from the rows whose active status changed.

One interface (:class:`Preconditioner`): ``operator(active, classes, C, row_sq)`` returns ``apply(R, idx)``, the
inverse preconditioner applied to the columns ``R`` of the classes at positions ``idx``. Which one a solve uses
is decided by its plan (:mod:`gan_probe.probe.plan`).
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from .. import linalg
from .rows import LOCAL, RowReducer
from .sketch import SketchedSpectrum

Apply = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Preconditioner(Protocol):
    rank: int

    def operator(self, active: torch.Tensor, classes: torch.Tensor, C: float, row_sq: torch.Tensor) -> Apply:
        """``M_k^{-1}`` for every column of ``active`` (0/1 ``(n, K)``, the rows active for class ``classes[j]``
        in column ``j``); ``row_sq`` holds the squared norms of the standardised rows."""


def _projected_hessians(gram: torch.Tensor, active: torch.Tensor, row_sq: torch.Tensor, C: float,
                        dim: int, reducer: RowReducer = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
    """From each class's ``(X~V)^T A_k (X~V)`` (``gram``, ``(K, r, r)``, overwritten): ``M_k = I + 2C gram_k``
    and the scalar ``c_k`` of the Hessian on the complement of ``span(V)``. With rows shared among ranks,
    ``gram`` (this rank's rows' part) is summed over the ranks here, in place, with the traces."""
    r = gram.shape[1]
    total = active.T @ row_sq
    reducer.sum(gram, total)
    inside = torch.diagonal(gram, dim1=1, dim2=2).sum(1)
    c = 1 + (2 * C) * (total - inside).clamp_min(0) / max(1, dim - r)
    M = gram.mul_(2 * C)                                  # (in place: the callers' gram is their own scratch)
    torch.diagonal(M, dim1=1, dim2=2).add_(1)
    return M, c


class Subspace:
    """An orthonormal basis ``V`` of weight space (``(dim, r)``) with the products ``XV = X~ V`` (``(n, r)``).

    Built by Rayleigh-Ritz for ``X~^T X~`` from the conjugate-gradient directions already computed (their
    products with ``X~`` come for free with each Hessian-vector product), it approximates the top eigenvectors of
    the data's second-moment matrix -- the directions that make the Newton systems ill-conditioned -- without any
    extra read of the data. :meth:`preconditioner` inverts each class's Hessian exactly on this subspace and by a
    scalar on its complement.
    """

    def __init__(self, V: torch.Tensor, XV: torch.Tensor, reducer: RowReducer = LOCAL):
        self.V, self.XV, self.reducer = V, XV, reducer    # XV: this rank's rows

    @property
    def rank(self) -> int:
        return int(self.V.shape[1])

    @staticmethod
    def build(directions: torch.Tensor, products: torch.Tensor, previous: "Subspace | None",
              rank: int, reducer: RowReducer = LOCAL) -> "Subspace | None":
        """Rayleigh-Ritz on ``span(previous.V, directions)``; keeps the ``rank`` largest Ritz values
        (``products``: this rank's rows of ``X~ directions``)."""
        if previous is not None:
            directions = torch.cat([previous.V, directions], 1)
            products = torch.cat([previous.XV, products], 1)
        if directions.shape[1] == 0:
            return previous
        # orthonormalise through the small Gram matrix (twice, for stability), dropping nearly dependent
        # directions: their products with X~ carry float32 rounding, which 1/sqrt(eigenvalue) would amplify
        for _ in range(2):
            gram = directions.T @ directions
            evals, evecs = torch.linalg.eigh(gram)
            keep = evals > 1e-6 * float(evals.max().clamp_min(1e-300))
            T = evecs[:, keep] / evals[keep].sqrt()
            directions, products = directions @ T, products @ T
        ritz = products.T @ products
        reducer.sum(ritz)
        theta, G = torch.linalg.eigh(ritz)
        order = torch.argsort(theta, descending=True)[:rank]
        G = G[:, order]
        return Subspace(directions @ G, products @ G, reducer)

    def operator(self, active: torch.Tensor, classes: torch.Tensor, C: float, row_sq: torch.Tensor) -> Apply:
        """``M_k^{-1}`` for every column of ``active`` (see :class:`Preconditioner`)."""
        K = active.shape[1]
        gram = torch.empty(K, self.rank, self.rank, dtype=torch.float64, device=self.V.device)
        for k in range(K):
            gram[k] = (self.XV * active[:, k:k + 1]).T @ self.XV
        M, c = _projected_hessians(gram, active, row_sq, C, self.V.shape[0], self.reducer)
        L = torch.linalg.cholesky(M)
        V = self.V

        def apply(R: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            VtR = V.T @ R                                              # (r, k)
            inner = torch.cholesky_solve(VtR.T[:, :, None], L[idx])[:, :, 0].T
            return V @ inner + (R - V @ VtR) / c[idx]

        return apply


def _inverses(M: torch.Tensor) -> torch.Tensor:
    """``M^-1`` in float32 for a batch of symmetric positive definite float64 matrices (of which only the lower
    triangles are read, as by any Cholesky factorisation): scaled to unit diagonal,
    factored and inverted in float32 (about half the time of float64: 0.25 s against 0.45 s for ten 1,024 x 1,024
    matrices on 2 CPU cores), or in float64 where float32's factorisation fails. On the paper's CIFAR-10 features
    (45,000 rows, rank 1,024, C = 1e-4 .. 1: condition 2,300-3,100) ``M^-1 M`` maps every eigenvector of ``M`` to
    itself within 2.4e-6, against 4.3e-7 for a float64 inverse rounded to float32."""
    d = torch.diagonal(M, dim1=1, dim2=2).clamp_min(1e-300).rsqrt()        # (K, r)
    scaled = M * d[:, :, None]
    L, info = torch.linalg.cholesky_ex(scaled.mul_(d[:, None, :]).to(torch.float32))
    del scaled
    if bool((info == 0).all()):
        d32 = d.to(torch.float32)
        return torch.cholesky_inverse(L).mul_(d32[:, :, None]).mul_(d32[:, None, :])
    return torch.cholesky_inverse(torch.linalg.cholesky(M)).to(torch.float32)


class SketchPreconditioner:
    """Per-class inverse preconditioners from a :class:`SketchedSpectrum`; keeps each class's ``(X~V)^T A_k
    (X~V)`` between calls (its lower triangle: all that :func:`_inverses` reads; the upper one is not kept up to
    date) and updates it from the rows that changed."""

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
            self._gram = linalg.gram(XV, lower_only=True).to(torch.float64)
        return self._gram

    def _weighted_gram(self, k: int, mask: torch.Tensor) -> torch.Tensor:
        XV = self.spectrum.XV
        n = mask.shape[0]

        def gram(rows: torch.Tensor) -> torch.Tensor:
            if not bool(rows.any()):
                return torch.zeros(XV.shape[1], XV.shape[1], dtype=torch.float64, device=XV.device)
            part = XV[rows]
            return linalg.gram(part, lower_only=True).to(torch.float64)

        active = int(mask.sum())
        previous = self._state.get(k)
        if previous is not None and previous[0].shape == mask.shape:
            old_mask, old = previous
            added, removed = mask & ~old_mask, old_mask & ~mask
            if int(added.sum()) + int(removed.sum()) < min(active, n - active):
                # old + A^T A - B^T B for the added rows A and the removed rows B, in one product [A; B]^T [A; -B]
                # added into the kept matrix (its own): for the few hundred rows that change per Newton step late
                # in a solve a product beats two rank-k updates (on 2 cores of an Intel Xeon, 900 rows x 1,024:
                # 7 ms against 19 ms each), and adding in place spares two fresh 8 MB matrices (13 ms)
                A, B = XV[added], XV[removed]
                return old.add_(linalg.mm(torch.cat([A, B]).T, torch.cat([A, -B])))
        if active <= n - active:
            return gram(mask)
        return self._full_gram() - gram(~mask)

    def operator(self, active: torch.Tensor, classes: torch.Tensor, C: float, row_sq: torch.Tensor) -> Apply:
        """``M_k^{-1}`` for the columns of ``active`` (see :class:`Preconditioner`); keeps each class's weighted
        Gram matrix for the next call's update."""
        V = self.spectrum.V
        K = active.shape[1]
        gram = torch.empty(K, self.rank, self.rank, dtype=torch.float64, device=V.device)
        for j in range(K):
            k = int(classes[j])
            mask = active[:, j] > 0
            weighted = self._weighted_gram(k, mask)
            self._state[k] = (mask, weighted)
            gram[j] = weighted
        M, c = _projected_hessians(gram, active, row_sq, C, V.shape[0], self.spectrum.reducer)
        # explicit inverses: a matrix-vector product per class and CG step instead of two triangular solves
        # (float32 halves the memory traffic of what is a memory-bound product)
        Minv = _inverses(M)
        Vt = self.spectrum.Vt

        def apply(R: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            # V M^-1 V^T R + (R - V V^T R) / c, the products with V in float32 and in the (columns, dim)
            # orientation, which CPU BLAS runs several times faster than (dim, columns) for few columns (in
            # bfloat16 the two terms' cancellation on the top of the spectrum, where M^-1 is far below 1/c, would
            # leave errors larger than M^-1 V^T R itself: a packed bfloat16 basis made C = 1e-4 take 17 Newton
            # steps instead of 5 on the paper's CIFAR-10 features)
            VtR32 = R.T.to(torch.float32).contiguous() @ V                            # (k, r)
            VtR = VtR32.to(torch.float64)
            # one matrix-vector product per column: indexing Minv[idx] would copy every inverse per CG step
            inner = torch.stack([torch.mv(Minv[j], VtR32[i]) for i, j in enumerate(idx.tolist())])
            inner = inner.to(torch.float64)
            step = ((inner - VtR / c[idx, None]).to(torch.float32) @ Vt).to(torch.float64)
            return step.T + R / c[idx]

        return apply
