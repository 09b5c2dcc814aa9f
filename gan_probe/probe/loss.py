"""What the three solver routes share: the one-vs-rest targets, the objective, the exact line search along a
direction, and the result every route returns (:class:`SolveResult`).

The objective, for every class ``k`` (column of ``W``, with the bias as the last row, see
:mod:`gan_probe.probe.design`)::

    f_k(w) = 0.5 * ||w||^2 + C * sum_i max(0, 1 - y_ik * (x~_i . w))^2

Routes: :mod:`gan_probe.probe.newton` (primal Newton-CG), :mod:`gan_probe.probe.kernel` (exact Newton on the
rows' Gram matrix) and :mod:`gan_probe.probe.liblinear` (scikit-learn, the reference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .design import Design
from .rows import LOCAL, RowReducer

if TYPE_CHECKING:
    from .plan import SolvePlan


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
    loss = (xi * xi).sum(0)
    design.reducer.sum(loss)
    return (0.5 * (W * W).sum(0) + C * loss).cpu().numpy()


def line_search(a: torch.Tensor, b: torch.Tensor, ww: torch.Tensor, m: torch.Tensor, d: torch.Tensor, C: float,
                max_iter: int = 60, reducer: RowReducer = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact minimiser ``t >= 0`` of ``phi(t) = 0.5 (ww + 2 t a + t^2 b) + C sum_i max(0, 1 - m_i - t d_i)^2``
    for every column, and ``phi`` there.

    ``phi`` is the objective along a direction ``P`` from ``W`` (``a = W.P``, ``b = P.P``, ``ww = W.W``, margins
    ``m = y * X~W`` and ``d = y * X~P``): a convex piecewise quadratic, whose derivative is piecewise linear.
    A semismooth Newton iteration on ``phi'`` kept inside a bracket (bisection when it leaves it) lands on the
    root once the active pieces stop changing -- usually after two or three vector operations.

    With rows shared among ranks (``m`` and ``d`` hold this rank's rows, ``reducer`` sums over the ranks), each
    iteration sums its three row sums and whether this rank's pieces changed in one all-reduce.

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
        if reducer.enabled:
            dxi = d * xi
            sums = [dxi.sum(0), (d * d * pieces).sum(0), dxi.abs().sum(0),
                    torch.tensor([float(previous is None or not torch.equal(pieces, previous))], device=t.device,
                                 dtype=torch.float64)]
            reducer.sum(*sums)
            if previous is not None and not bool(sums[3][0] > 0):
                break  # (every rank's pieces are unchanged)
            s_dxi, s_ddp, s_abs = sums[:3]
        else:
            if previous is not None and bool(torch.equal(pieces, previous)):
                break  # every t came from a Newton step on its current piece of phi': exact minimisers
            s_dxi, s_ddp, s_abs = (d * xi).sum(0), (d * d * pieces).sum(0), None
        d1 = a + t * b - (2 * C) * s_dxi
        d2 = b + (2 * C) * s_ddp
        hi = torch.where(d1 > 0, t, hi)
        lo = torch.where(d1 <= 0, t, lo)
        t_new = t - d1 / d2
        scale = a.abs() + (t * b).abs() + (2 * C) * (s_abs if s_abs is not None else (d * xi).abs().sum(0))
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
    loss = (xi * xi).sum(0)
    reducer.sum(loss)
    f = 0.5 * (ww + 2 * t * a + t * t * b) + C * loss
    return t, f


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
    subspace: Any = None           # the preconditioner, reusable by the next solve on the design
    bfloat16_passes: int = 0       # Hessian-vector products on the bfloat16 copy (``passes`` counts the others)
    plan: "SolvePlan | None" = None  # what the primal route's options resolved to (None: the other routes)
    stopped: str = ""              # why a monitor ended the solve before convergence ("" when it did not)

    @property
    def preconditioner(self) -> str:
        return self.plan.preconditioner if self.plan is not None else ""

    @property
    def hessian_precision(self) -> str:
        return self.plan.hessian_precision if self.plan is not None else ""

    @property
    def hessian_layout(self) -> str:
        return self.plan.hessian_layout if self.plan is not None else ""

    @property
    def max_cg(self) -> int:
        return self.plan.max_cg if self.plan is not None else 0

    @property
    def total_objective(self) -> float:
        return float(np.sum(self.objective))
