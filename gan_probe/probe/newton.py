"""Truncated Newton (Newton-CG) for the one-vs-rest L2-SVM, all classes at once, with an exact line search.

For each class ``k`` (column of ``W``, with the bias as the last row, see :mod:`gan_probe.probe.design`)::

    f_k(w) = 0.5 * ||w||^2 + C * sum_i max(0, 1 - y_ik * (x~_i . w))^2

is convex and once differentiable; its generalised Hessian is ``I + 2C X~_A^T X~_A`` with ``A`` the rows whose
margin is below 1 (Mangasarian 2002; liblinear's TRON uses the same). Each Newton iteration

1. runs conjugate gradients on ``H p = -g``; each CG step is one read of the data computing ``X~ p`` and
   ``X~^T (A * X~ p)`` chunk by chunk, and the products ``X~ p_j`` are combined into ``X~ P`` for free,
2. minimises ``f`` along ``P`` exactly: with the margins and ``X~ P`` in memory, ``f(W + t P)`` is a
   one-dimensional piecewise quadratic, whose minimiser a safeguarded semismooth Newton iteration finds in a few
   vector operations -- no extra read of the data,
3. moves the margins by ``t X~ P`` and reads the data once for the new gradient ``W + X~^T r``
   (:meth:`Design.rmatmul`; the first iteration's margins, loss and gradient come from one :meth:`Design.fused`).

A class stops when a Newton step lowers its objective by less than ``tol`` times the objective, or when its
gradient norm falls below ``grad_tol`` times the first one. Converged classes drop out of later passes.

Large designs on a CPU (``SolverOptions`` "auto" settings, at least ``LARGE_ELEMENTS`` entries) change a few things
and keep the answer: CG is preconditioned by a randomized sketch of the data's top eigenvectors
(:mod:`gan_probe.probe.sketch`), and on processors with bfloat16 instructions its Hessian-vector products run on
a standardised bfloat16 copy of the rows (in oneDNN's packed layouts where torch can pack them, see
:mod:`gan_probe.probe.packed`), while the margins, objective and gradient are computed from the data in its own
precision: after CG, one more pass computes the exact ``X~ P`` for the line search and the margins, so every
step lowers the true objective. Each Newton step there runs at most ``LARGE_MAX_CG`` CG steps: at large C the
Newton systems are ill-conditioned and the long CG runs of a tight tolerance cost many passes for directions whose
steps the line search then cuts short; more, cheaper Newton steps reach the optimum with fewer passes. On the
paper's 28,672-dim CIFAR-10 features (2 CPU cores, 50,000 rows) C = 0.01 converges in 270 s from a cold start,
C = 0.1 in 266 s warm-started from it and C = 1 in 168 s warm-started from C = 0.1 (float32 products with the
Krylov-subspace preconditioner had come only within 4% of the C = 0.01 optimum in 938 s at 40,000 rows).

>>> import torch
>>> from gan_probe.probe.design import dense_design
>>> X = torch.tensor([[1.0], [2.0], [-1.0], [-2.0]], dtype=torch.float64)
>>> Y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]], dtype=torch.float64)
>>> res = newton_cg(dense_design(X, intercept_scaling=1.0), Y, C=1.0)
>>> [round(v, 6) for v in res.W.flatten().tolist()]   # w = 0.8, b = 0 minimise 0.5 w^2 + 2 (1 - w)^2
[0.8, 0.0]
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import linalg
from .design import Design
from .packed import packing_available
from .sketch import SketchedSpectrum, SketchPreconditioner


@dataclass(frozen=True)
class SolverOptions:
    """Stopping rules, limits and preconditioning of :func:`newton_cg`."""

    tol: float = 1e-6          # stop a class when a Newton step lowers f_k by less than tol * f_k
    grad_tol: float = 1e-6     # ... or when ||g_k|| <= grad_tol * ||g_k|| at the starting point
    cg_tol: float = 0.03       # CG stops at ||r|| <= min(cg_tol, (||g|| / ||g_0||)^cg_power) * ||g||
    #                            (0.03: 458 passes to within 1e-4 of the optimum on 16,600 x 9,558 real conv
    #                            features at C = 0.01, against 692 with 0.1, 1,443 with 0.3)
    cg_power: float = 0.25     # (measured on conv features: 0.25 needs fewer passes than 0.5 or 1)
    max_newton: int = 100
    # conjugate-gradient steps per Newton step at most; None: LARGE_MAX_CG when CG runs on a bfloat16 copy (large
    # designs on a CPU, see hessian_precision), DEFAULT_MAX_CG otherwise
    max_cg: int | None = None
    # "sketch" (randomized top eigenvectors of the data, see gan_probe.probe.sketch), "subspace" (recycled
    # Krylov subspace), "jacobi" (diagonal), "none"; "auto": sketch for designs of at least LARGE_ELEMENTS
    # entries on a CPU when its row products fit in half the available memory, subspace otherwise
    precondition: str = "auto"
    subspace_rank: int = 256
    sketch_rank: int = 1024
    sketch_power: int = 2           # power iterations of the sketch (each one more read of the data; 2: 21% fewer
    #                                 CG steps than 1 on 16,600 x 9,558 real conv features, 3: 24%)
    # precision of the Hessian-vector products inside CG: "storage" (the data's own, float32 for feature
    # stores), "bfloat16" (a standardised bfloat16 copy of the rows, taken during the first pass) or "auto"
    # (bfloat16 for designs of at least LARGE_ELEMENTS entries on a CPU with bfloat16 instructions, when the
    # copy fits in half the available memory). The objective and the gradient always use the data's own
    # precision, so the solution is the same; the Newton directions (and the line searches of large steps, each
    # confirmed by the exact objective) are computed more cheaply.
    hessian_precision: str = "auto"
    # layout of a bfloat16 copy on a CPU: "packed" (oneDNN's blocked layouts, see gan_probe.probe.packed: about
    # twice as fast for CG's products, twice the memory), "plain", or "auto" (packed where this torch build
    # can pack and the copies fit in half the available memory)
    hessian_layout: str = "auto"


#: the smallest design (rows x features) for which the "auto" options use a bfloat16 copy and a sketch
LARGE_ELEMENTS = 1 << 27
#: CG steps per Newton step at most, unless the options say otherwise
DEFAULT_MAX_CG = 250
#: the same on the bfloat16 path. Capping each Newton step's CG lowers the passes needed at large C: on 16,600 x
#: 9,558 real conv features (2 CPU cores), warm-started from the solution for C = 0.01, C = 0.1 took 14 Newton
#: steps and 420 CG passes instead of 14 and 935, ending 4e-6 (relative) above the optimum, and C = 1 took 71
#: steps and 2,130 passes instead of 57 and 6,757; from a cold start at C = 0.01 the cap hardly binds (285
#: passes against 318, the same objective). On 40,000 x 28,672 real features, C = 0.1 warm-started from C = 0.01:
#: 26 steps, 780 passes, 245 s instead of 26 steps, 3,406 passes, 782 s, to a lower objective
LARGE_MAX_CG = 30
#: with a bfloat16 copy, CG runs on a copy of the rows active for some class when they are at most this share
#: (the copy costs about a third of a pass; each CG step then saves the inactive rows' share of one)
COMPACT_FRACTION = 0.85
#: the same for a packed copy, whose re-packing costs about 60 of its (faster) passes per row: 6.5 s for 23,000 of
#: 50,000 x 28,672 rows on 2 CPU cores, where a pass over all of them takes 0.24 s. With at most LARGE_MAX_CG = 30
#: CG steps a Newton step, a copy of a share f of the rows saves 30 (1 - f) passes and costs 60 f: worth it below
#: a third (at 0.46, with the earlier bound of 0.5, a Newton step took 17 s instead of 11)
PACKED_COMPACT_FRACTION = 0.25


@dataclass
class SolveResult:
    """Weights ``W`` ``(dim, K)`` (bias last when the design has one), per-class objectives and counters."""

    W: torch.Tensor
    objective: np.ndarray
    margins: torch.Tensor          # X~ W on the training rows, float64 (n, K)
    newton_iterations: int
    cg_iterations: int
    passes: int
    converged: bool
    seconds: float
    history: list[dict] = field(default_factory=list)
    subspace: "Subspace | SketchPreconditioner | None" = None   # reusable by the next solve on the design
    bfloat16_passes: int = 0       # Hessian-vector products on the bfloat16 copy (``passes`` counts the others)
    preconditioner: str = ""       # what "auto" resolved to: sketch, subspace, jacobi or none
    hessian_precision: str = ""    # storage or bfloat16
    hessian_layout: str = ""       # packed or plain (of a bfloat16 copy)
    max_cg: int = 0                # CG steps per Newton step at most (what ``SolverOptions.max_cg`` resolved to)

    @property
    def total_objective(self) -> float:
        return float(np.sum(self.objective))


class Subspace:
    """An orthonormal basis ``V`` of weight space (``(dim, r)``) with the products ``XV = X~ V`` (``(n, r)``).

    Built by Rayleigh-Ritz for ``X~^T X~`` from the conjugate-gradient directions already computed (their
    products with ``X~`` come for free with each Hessian-vector product), it approximates the top eigenvectors of
    the data's second-moment matrix -- the directions that make the Newton systems ill-conditioned -- without any
    extra read of the data. :meth:`preconditioner` inverts each class's Hessian exactly on this subspace and by a
    scalar on its complement.
    """

    def __init__(self, V: torch.Tensor, XV: torch.Tensor, theta: torch.Tensor):
        self.V, self.XV, self.theta = V, XV, theta

    @property
    def rank(self) -> int:
        return int(self.V.shape[1])

    @staticmethod
    def build(directions: torch.Tensor, products: torch.Tensor, previous: "Subspace | None",
              rank: int) -> "Subspace | None":
        """Rayleigh-Ritz on ``span(previous.V, directions)``; keeps the ``rank`` largest Ritz values."""
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
        theta, G = torch.linalg.eigh(products.T @ products)
        order = torch.argsort(theta, descending=True)[:rank]
        G = G[:, order]
        return Subspace(directions @ G, products @ G, theta[order])

    def preconditioner(self, active: torch.Tensor, C: float, row_sq: torch.Tensor):
        """``M_k^{-1}`` for every column of ``active``: exact on ``span(V)``, ``1 / c_k`` on the complement,
        with ``c_k`` the mean of the Hessian's eigenvalues there (from traces; no data pass)."""
        dim, r = self.V.shape
        K = active.shape[1]
        M = torch.empty(K, r, r, dtype=torch.float64, device=self.V.device)
        for k in range(K):
            M[k] = (self.XV * active[:, k:k + 1]).T @ self.XV
        inside = torch.diagonal(M, dim1=1, dim2=2).sum(1)
        total = active.T @ row_sq
        c = 1 + (2 * C) * (total - inside).clamp_min(0) / max(1, dim - r)
        M *= 2 * C
        M += torch.eye(r, dtype=torch.float64, device=self.V.device)
        L = torch.linalg.cholesky(M)
        V = self.V

        def apply(R: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            VtR = V.T @ R                                              # (r, k)
            inner = torch.cholesky_solve(VtR.T[:, :, None], L[idx])[:, :, 0].T
            return V @ inner + (R - V @ VtR) / c[idx]

        return apply


def class_targets(labels: np.ndarray, classes: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``+1 / -1`` targets, one column per one-vs-rest problem (a single column for two classes, as liblinear).

    >>> class_targets(np.array([0, 2, 1]), np.array([0, 1, 2])).tolist()
    [[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]]
    >>> class_targets(np.array([3, 5]), np.array([3, 5])).tolist()
    [[-1.0], [1.0]]
    """
    labels = np.asarray(labels)
    classes = np.asarray(classes)
    if len(classes) == 2:
        y = np.where(labels == classes[1], 1.0, -1.0)[:, None]
    else:
        y = np.where(labels[:, None] == classes[None, :], 1.0, -1.0)
    return torch.as_tensor(y, dtype=torch.float64, device=device)


def objective(design: Design, W: torch.Tensor, Y: torch.Tensor, C: float) -> np.ndarray:
    """Per-class objective ``0.5 ||w_k||^2 + C sum_i max(0, 1 - y_ik x~_i . w_k)^2`` (one pass)."""
    W = W.to(design.device, torch.float64)
    Z = design.matmul(W)
    xi = (1 - Y * Z).clamp_min_(0)
    return (0.5 * (W * W).sum(0) + C * (xi * xi).sum(0)).cpu().numpy()


def _loss_grad(design: Design, W: torch.Tensor, Y: torch.Tensor, C: float, want_diag: bool = False):
    loss = torch.zeros(W.shape[1], dtype=torch.float64, device=design.device)

    def coef(start: int, end: int, Zc: torch.Tensor) -> torch.Tensor:
        y = Y[start:end]
        xi = (1 - y * Zc).clamp_min_(0)
        loss.add_((xi * xi).sum(0))
        return (-2 * C) * y * xi

    def active(start: int, end: int, Zc: torch.Tensor) -> torch.Tensor:
        return (Y[start:end] * Zc < 1).to(torch.float64)

    out = design.fused(W, coef, active if want_diag else None)
    Z, G = out[0], out[1]
    f = 0.5 * (W * W).sum(0) + C * loss
    diag = 1 + (2 * C) * out[2] if want_diag else None
    return f, W + G, Z, diag


def _gradient(design: Design, W: torch.Tensor, Y: torch.Tensor, Z: torch.Tensor, C: float) -> torch.Tensor:
    """``W + X~^T r`` with ``r = -2C y max(0, 1 - y z)`` from the margins ``Z = X~ W`` (one backward pass)."""
    return W + design.rmatmul((-2 * C) * Y * (1 - Y * Z).clamp_min_(0))


def _cg(design: Design, active: torch.Tensor, g: torch.Tensor, C: float, eta: torch.Tensor, max_cg: int,
        precond=None, collect: list | None = None, max_collect: int = 0):
    """Approximately solve ``(I + 2C X~^T diag(active) X~) P = -g`` column-wise by preconditioned CG.

    ``precond(R, idx)`` applies the inverse preconditioner to the columns ``idx``. Returns ``P``, ``X~ P`` and
    the number of steps; the directions and their products are appended to ``collect`` (up to ``max_collect``
    columns) for the next subspace.
    """
    K = g.shape[1]
    all_idx = torch.arange(K, device=g.device)
    r = -g
    z = precond(r, all_idx) if precond is not None else r.clone()
    p = z.clone()
    rz = (r * z).sum(0)
    target = eta * (r * r).sum(0).sqrt()
    P = torch.zeros_like(g)
    XP = torch.zeros(design.n, K, dtype=torch.float64, device=design.device)
    live = torch.ones(K, dtype=torch.bool, device=design.device)
    steps = collected = 0
    for _ in range(max_cg):
        idx = live.nonzero().flatten()
        act = active[:, idx]
        pl = p[:, idx]
        Xp, XtAXp = design.fused(pl, lambda s, e, Zc: act[s:e] * Zc)
        steps += 1
        if collect is not None and collected < max_collect:
            collect.append((pl.clone(), Xp))
            collected += len(idx)
        Hp = pl + (2 * C) * XtAXp
        alpha = rz[idx] / (pl * Hp).sum(0)
        P[:, idx] += alpha * pl
        XP[:, idx] += alpha * Xp
        r[:, idx] -= alpha * Hp
        rl = r[:, idx]
        zl = precond(rl, idx) if precond is not None else rl
        rz_new = (rl * zl).sum(0)
        beta = rz_new / rz[idx]
        rz[idx] = rz_new
        p[:, idx] = zl + beta * pl
        live[idx] = (rl * rl).sum(0).sqrt() > target[idx]
        if not bool(live.any()):
            break
    return P, XP, steps


def line_search(a: torch.Tensor, b: torch.Tensor, ww: torch.Tensor, m: torch.Tensor, d: torch.Tensor, C: float,
                max_iter: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact minimiser ``t >= 0`` of ``phi(t) = 0.5 (ww + 2 t a + t^2 b) + C sum_i max(0, 1 - m_i - t d_i)^2``
    for every column, and ``phi`` there.

    ``phi`` is the objective along a direction ``P`` from ``W`` (``a = W.P``, ``b = P.P``, ``ww = W.W``, margins
    ``m = y * X~W`` and ``d = y * X~P``): a convex piecewise quadratic, whose derivative is piecewise linear.
    A semismooth Newton iteration on ``phi'`` kept inside a bracket (bisection when it leaves it) lands on the
    root once the active pieces stop changing -- usually after two or three vector operations.

    >>> t, f = line_search(*(torch.tensor([v], dtype=torch.float64) for v in (0.0, 1.0, 0.0)),
    ...                    torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), C=1.0)
    >>> round(float(t), 6), round(float(f), 6)     # min 0.5 t^2 + (1 - t)^2 at t = 2/3
    (0.666667, 0.333333)
    """
    t = torch.ones_like(a)
    lo = torch.zeros_like(t)
    hi = torch.full_like(t, math.inf)
    done = torch.zeros_like(t, dtype=torch.bool)
    previous = None
    for _ in range(max_iter):
        xi = (1 - m - t * d).clamp_min_(0)
        pieces = xi > 0
        if previous is not None and bool(torch.equal(pieces, previous)):
            break  # every t came from a Newton step on its current piece of phi': exact minimisers
        d1 = a + t * b - (2 * C) * (d * xi).sum(0)
        d2 = b + (2 * C) * (d * d * pieces).sum(0)
        hi = torch.where(d1 > 0, t, hi)
        lo = torch.where(d1 <= 0, t, lo)
        t_new = t - d1 / d2
        scale = a.abs() + (t * b).abs() + (2 * C) * (d * xi).abs().sum(0)
        done |= (d1.abs() <= 1e-13 * scale) | ((t_new - t).abs() <= 1e-12 * t.abs())
        bisect = ~done & ((t_new <= lo) | (t_new >= hi) | ~torch.isfinite(t_new))
        fallback = torch.where(torch.isinf(hi), 2 * t, 0.5 * (lo + hi))
        t_new = torch.where(done, t, torch.where(bisect, fallback, t_new))
        if bool(done.all()):
            break
        # only a Newton step (not a bisection) lands on the root of the piece it was computed on
        previous = None if bool(bisect.any()) else pieces
        t = t_new
    xi = (1 - m - t * d).clamp_min_(0)
    f = 0.5 * (ww + 2 * t * a + t * t * b) + C * (xi * xi).sum(0)
    return t, f


def _line_search(W: torch.Tensor, P: torch.Tensor, m: torch.Tensor, d: torch.Tensor, C: float):
    return line_search((W * P).sum(0), (P * P).sum(0), (W * W).sum(0), m, d, C)


def _fits_in_half_the_free_memory(nbytes: float) -> bool:
    free = linalg.available_memory()
    return free is None or nbytes <= 0.5 * free


def _large_on_cpu(design: Design) -> bool:
    return design.device.type == "cpu" and design.n * design.n_features >= LARGE_ELEMENTS


def _preconditioner(design: Design, opts: SolverOptions) -> str:
    """The preconditioner this solve uses (see ``precondition``). "auto" picks the sketch on CPUs only (the GPU
    figures in the README were measured with the subspace preconditioner), when the sketch's row products
    (``X~ Q`` in float64 while it is formed, then ``X~ V`` in float32: about 16 bytes per row and column) fit."""
    if opts.precondition not in ("auto", "sketch", "subspace", "jacobi", "none"):
        raise ValueError(f"precondition {opts.precondition!r}: expected auto, sketch, subspace, jacobi or none")
    if opts.precondition != "auto":
        return opts.precondition
    sketch_bytes = 16 * design.n * (opts.sketch_rank + 16)
    return "sketch" if _large_on_cpu(design) and _fits_in_half_the_free_memory(sketch_bytes) else "subspace"


def _hessian_design(design: Design, opts: SolverOptions) -> bool:
    """Whether this solve computes its Hessian-vector products on a bfloat16 copy (see ``hessian_precision``)."""
    if opts.hessian_precision not in ("auto", "storage", "bfloat16"):
        raise ValueError(f"hessian_precision {opts.hessian_precision!r}: expected auto, storage or bfloat16")
    if opts.hessian_precision != "auto":
        return opts.hessian_precision == "bfloat16"
    # the copy (2 bytes an entry) and, at most, CG's copy of the active rows
    copies_bytes = (1 + COMPACT_FRACTION) * 2 * design.n * design.n_features
    return (_large_on_cpu(design) and linalg.fast_bfloat16(design.device)
            and _fits_in_half_the_free_memory(copies_bytes))


def _packed_layout(design: Design, opts: SolverOptions) -> bool:
    """Whether a bfloat16 copy for this solve is kept in oneDNN's packed layouts (see ``hessian_layout``)."""
    if opts.hessian_layout not in ("auto", "packed", "plain"):
        raise ValueError(f"hessian_layout {opts.hessian_layout!r}: expected auto, packed or plain")
    if opts.hessian_layout == "plain" or design.device.type != "cpu":
        return False
    if opts.hessian_layout == "packed":
        if not packing_available():
            raise ValueError("hessian_layout 'packed': this torch build cannot pack bfloat16 blocks (no oneDNN)")
        return True
    # two layouts of 2 bytes an entry, and at most CG's packed copy of the active rows
    copies_bytes = (1 + PACKED_COMPACT_FRACTION) * 4 * design.n * design.n_features
    return packing_available() and _fits_in_half_the_free_memory(copies_bytes)


def newton_cg(design: Design, Y: torch.Tensor, C: float, W0: torch.Tensor | None = None,
              options: SolverOptions | None = None, subspace: Subspace | None = None,
              callback: Callable[[dict], None] | None = None) -> SolveResult:
    """Minimise the one-vs-rest L2-SVM objective over ``design`` for targets ``Y`` (``(n, K)``, +-1).

    ``W0`` warm-starts (e.g. the solution for the previous C of a grid) and ``subspace`` passes on the
    preconditioning subspace of an earlier solve on the same design (the result carries the updated one).
    ``callback`` receives one dict per Newton iteration (objective, CG steps, passes so far).
    """
    opts = options or SolverOptions()
    if not C > 0:
        raise ValueError(f"C must be positive, got {C}")
    kind = _preconditioner(design, opts)
    start_time = time.perf_counter()
    start_passes = design.passes
    dev = design.device
    Y = Y.to(dev, torch.float64)
    K = Y.shape[1]
    W = (torch.zeros(design.dim, K, dtype=torch.float64, device=dev) if W0 is None
         else W0.to(dev, torch.float64).clone())
    jacobi = kind == "jacobi"
    rank = min(opts.subspace_rank, design.dim, design.n)
    use_subspace = kind == "subspace" and rank > 0
    low_precision = _hessian_design(design, opts)
    packed = low_precision and _packed_layout(design, opts)
    compact_fraction = PACKED_COMPACT_FRACTION if packed else COMPACT_FRACTION
    max_cg = opts.max_cg if opts.max_cg is not None else (LARGE_MAX_CG if low_precision else DEFAULT_MAX_CG)
    if max_cg < 1:
        raise ValueError(f"max_cg must be at least 1, got {max_cg}")
    if low_precision:
        design.request_shadow(torch.bfloat16, packed=packed)
    f, g, Z, diag = _loss_grad(design, W, Y, C, jacobi)
    hessian = design.ensure_shadow() if low_precision else design
    start_shadow = hessian.passes if low_precision else 0
    gnorm0 = g.norm(dim=0)
    done = gnorm0 <= 0
    sketch, sketch_seconds = None, 0.0
    if kind == "sketch":
        sketch = subspace if isinstance(subspace, SketchPreconditioner) else None
        if sketch is None and not bool(done.all()):
            started = time.perf_counter()
            sketch = SketchPreconditioner(SketchedSpectrum.compute(hessian, opts.sketch_rank,
                                                                     power_iterations=opts.sketch_power))
            sketch_seconds = time.perf_counter() - started
        subspace = sketch
    elif isinstance(subspace, SketchPreconditioner):
        subspace = None
    history: list[dict] = []
    newton_steps = cg_steps = 0
    for it in range(opts.max_newton):
        cols = (~done).nonzero().flatten()
        if len(cols) == 0:
            break
        gc, Yc, Zc = g[:, cols], Y[:, cols], Z[:, cols]
        gnorm = gc.norm(dim=0)
        eta = torch.minimum(torch.full_like(gnorm, opts.cg_tol), (gnorm / gnorm0[cols]).pow(opts.cg_power))
        active = (Yc * Zc < 1).to(torch.float64)
        any_active = active.sum(1) > 0          # rows active for some running class
        precond = None
        if jacobi:
            dc = diag[:, cols]
            precond = lambda R, idx: R / dc[:, idx]  # noqa: E731
        elif sketch is not None:
            precond = sketch(active, cols, C, design.row_sq)
        elif use_subspace and subspace is not None:
            precond = subspace.preconditioner(active, C, design.row_sq)
        collect: list | None = [] if use_subspace else None
        if low_precision:
            # CG only needs the rows active for some running class
            cg_design, cg_active = hessian, active
            rows = any_active.nonzero().flatten()
            if collect is None and len(rows) <= compact_fraction * design.n:  # (a subspace needs all rows)
                cg_design, cg_active = hessian.subset(rows), active[rows]
            P, _, steps = _cg(cg_design, cg_active, gc, C, eta, max_cg, precond, collect, 2 * rank)
            if cg_design is not hessian:
                hessian.passes += cg_design.passes
            del cg_design
            XP = design.matmul(P)  # the exact X~ P: the line search below then lowers the true objective
        else:
            P, XP, steps = _cg(design, active, gc, C, eta, max_cg, precond, collect, 2 * rank)
        cg_steps += steps
        if collect:
            subspace = Subspace.build(torch.cat([d for d, _ in collect], 1), torch.cat([x for _, x in collect], 1),
                                      subspace, rank)
        t, f_new = _line_search(W[:, cols], P, Yc * Zc, Yc * XP, C)
        W[:, cols] += t * P
        Z[:, cols] = Zc + t * XP
        # a step that lowers f_k by less than tol * f_k ends class k
        done[cols[f[cols] - f_new <= opts.tol * f_new.abs()]] = True
        f[cols] = f_new
        newton_steps += 1
        entry = {"iteration": it + 1, "cg_steps": steps,
                 "active_rows": float(any_active.to(torch.float64).mean()), "seconds":
                 time.perf_counter() - start_time, "sketch_seconds": sketch_seconds,
                 "classes": int(len(cols)), "step_min": float(t.min()), "step_max": float(t.max())}
        # the gradient (one pass) for the classes still running, from their margins (the Jacobi preconditioner's
        # diagonal needs a pass that also recomputes them)
        cols = (~done).nonzero().flatten()
        if len(cols):
            if jacobi:
                f[cols], g[:, cols], Z[:, cols], diag[:, cols] = _loss_grad(design, W[:, cols], Y[:, cols], C, True)
            else:
                g[:, cols] = _gradient(design, W[:, cols], Y[:, cols], Z[:, cols], C)
            gn = g[:, cols].norm(dim=0)
            done[cols[gn <= opts.grad_tol * gnorm0[cols]]] = True
            entry["grad_norm_max"] = float(gn.max())
        entry["objective"] = float(f.sum())
        entry["passes"] = design.passes - start_passes
        if low_precision:
            entry["bfloat16_passes"] = hessian.passes - start_shadow
        history.append(entry)
        if callback:
            callback(entry)
    converged = bool(done.all())
    return SolveResult(W=W, objective=f.cpu().numpy(), margins=Z, newton_iterations=newton_steps,
                       cg_iterations=cg_steps, passes=design.passes - start_passes, converged=converged,
                       seconds=time.perf_counter() - start_time, history=history, subspace=subspace,
                       bfloat16_passes=hessian.passes - start_shadow if low_precision else 0,
                       preconditioner=kind, hessian_precision="bfloat16" if low_precision else "storage",
                       hessian_layout=("packed" if packed else "plain") if low_precision else "", max_cg=max_cg)
