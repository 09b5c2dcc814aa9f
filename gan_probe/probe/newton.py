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

Every automatic choice (preconditioner, the precision and layout of CG's products, the CG cap) is resolved once,
before the loop, into a :class:`~gan_probe.probe.plan.SolvePlan` (:func:`~gan_probe.probe.plan.plan_solve`) that
the result records. Large designs on a CPU (at least ``LARGE_ELEMENTS`` entries) change a few things and keep the
answer: CG is preconditioned by a randomized sketch of the data's top eigenvectors
(:mod:`gan_probe.probe.sketch`), and on processors with bfloat16 instructions its Hessian-vector products run on
a standardised bfloat16 copy of the rows (in oneDNN's packed layouts where torch can pack them, see
:mod:`gan_probe.probe.packed`), while the margins, objective and gradient are computed from the data in its own
precision: after CG, one more pass computes the exact ``X~ P`` for the line search and the margins, so every
step lowers the true objective. Each Newton step there runs at most ``LARGE_MAX_CG`` CG steps (``MONITORED_MAX_CG``
where a monitor may end the solve, e.g. a fit on the C grid): at large C the
Newton systems are ill-conditioned and the long CG runs of a tight tolerance cost many passes for directions whose
steps the line search then cuts short; more, cheaper Newton steps reach the optimum with fewer passes. On the
paper's 28,672-dim CIFAR-10 features (2 CPU cores, 50,000 rows) C = 0.01 converges in 270 s from a cold start,
C = 0.1 in 266 s warm-started from it and C = 1 in 168 s warm-started from C = 0.1 (float32 products with the
Krylov-subspace preconditioner had come only within 4% of the C = 0.01 optimum in 938 s at 40,000 rows).

Rows shared among ranks (``svm`` under torchrun, :mod:`gan_probe.probe.rows`): every rank runs this loop on the
same weights with its own rows' margins; the passes, the line search and the preconditioners sum their row
reductions over the ranks, the plan is rank 0's, so every decision (CG's stopping, a class's convergence) is taken
on identical numbers everywhere. The result's ``margins`` are this rank's rows.

>>> import torch
>>> from gan_probe.probe.design import dense_design
>>> X = torch.tensor([[1.0], [2.0], [-1.0], [-2.0]], dtype=torch.float64)
>>> Y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]], dtype=torch.float64)
>>> res = newton_cg(dense_design(X, intercept_scaling=1.0), Y, C=1.0)
>>> [round(v, 6) for v in res.W.flatten().tolist()]   # w = 0.8, b = 0 minimise 0.5 w^2 + 2 (1 - w)^2
[0.8, 0.0]
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from .design import Design
from .loss import SolveResult, line_search
from .plan import SolvePlan, SolverOptions, plan_solve
from .preconditioners import SketchPreconditioner, Subspace
from .sketch import SketchedSpectrum


def _loss_grad(design: Design, W: torch.Tensor, Y: torch.Tensor, C: float):
    """Per-class objective, gradient ``W + X~^T r`` and margins ``X~ W`` in one read of the data."""
    loss = torch.zeros(W.shape[1], dtype=torch.float64, device=design.device)

    def coef(start: int, end: int, Zc: torch.Tensor) -> torch.Tensor:
        y = Y[start:end]
        xi = (1 - y * Zc).clamp_min_(0)
        loss.add_((xi * xi).sum(0))
        return (-2 * C) * y * xi

    Z, G = design.fused(W, coef, reduce_with=(loss,))
    f = 0.5 * (W * W).sum(0) + C * loss
    return f, W + G, Z


def _gradient(design: Design, W: torch.Tensor, Y: torch.Tensor, Z: torch.Tensor, C: float) -> torch.Tensor:
    """``W + X~^T r`` with ``r = -2C y max(0, 1 - y z)`` from the margins ``Z = X~ W`` (one backward pass)."""
    return W + design.rmatmul((-2 * C) * Y * (1 - Y * Z).clamp_min_(0))


def _cg(design: Design, active: torch.Tensor, g: torch.Tensor, C: float, eta: torch.Tensor, max_cg: int,
        precond=None, collect: list | None = None, max_collect: int = 0, products: bool = True):
    """Approximately solve ``(I + 2C X~^T diag(active) X~) P = -g`` column-wise by preconditioned CG.

    ``precond(R, idx)`` applies the inverse preconditioner to the columns ``idx``. Returns ``P``, ``X~ P`` (None
    unless ``products``: on a low-precision copy the caller computes it exactly) and the number of steps; the
    directions and their products are appended to ``collect`` (up to ``max_collect`` columns) for the next
    subspace.
    """
    K = g.shape[1]
    all_idx = torch.arange(K, device=g.device)
    r = -g
    z = precond(r, all_idx) if precond is not None else r.clone()
    p = z.clone()
    rz = (r * z).sum(0)
    target = eta * (r * r).sum(0).sqrt()
    P = torch.zeros_like(g)
    XP = torch.zeros(design.n, K, dtype=torch.float64, device=design.device) if products else None
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
        if XP is not None:
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


def _line_search(W: torch.Tensor, P: torch.Tensor, m: torch.Tensor, d: torch.Tensor, C: float, reducer):
    return line_search((W * P).sum(0), (P * P).sum(0), (W * W).sum(0), m, d, C, reducer=reducer)


def _preconditioner(plan: SolvePlan, opts: SolverOptions, hessian: Design, previous, basis, done: bool):
    """The plan's preconditioner: the previous solve's (same design), else a sketch (of ``hessian``, or ``basis``
    moved onto it), else none yet (a subspace is built from CG's directions)."""
    if plan.preconditioner == "sketch":
        if isinstance(previous, SketchPreconditioner):
            return previous
        if done:
            return None
        return SketchPreconditioner(basis.on(hessian) if basis is not None else
                                    SketchedSpectrum.compute(hessian, plan.sketch_rank or opts.sketch_rank,
                                                             power_iterations=opts.sketch_power))
    if plan.preconditioner == "subspace" and plan.subspace_rank > 0 and isinstance(previous, Subspace):
        return previous
    return None


def newton_cg(design: Design, Y: torch.Tensor, C: float, W0: torch.Tensor | None = None,
              options: SolverOptions | None = None, subspace: Subspace | SketchPreconditioner | None = None,
              callback: Callable[[dict], None] | None = None, plan: SolvePlan | None = None,
              basis: SketchedSpectrum | None = None,
              monitor: Callable[[torch.Tensor], str | None] | None = None) -> SolveResult:
    """Minimise the one-vs-rest L2-SVM objective over ``design`` for targets ``Y`` (``(n, K)``, +-1).

    ``W0`` warm-starts (e.g. the solution for the previous C of a grid) and ``subspace`` passes on the
    preconditioner of an earlier solve on the same design (the result carries the updated one). ``plan``: what
    to execute (default: :func:`~gan_probe.probe.plan.plan_solve` of ``design`` and ``options``). ``callback``
    receives one dict per Newton iteration (objective, CG steps, passes so far). ``basis``: a sketch of other rows
    of the same standardised features (e.g. the grid's rows when refitting on all of them), moved onto this design
    instead of sketching anew (:meth:`~gan_probe.probe.sketch.SketchedSpectrum.on`). ``monitor(W)`` is called after
    every Newton step; a text it returns ends the solve early, as the result's ``stopped`` (e.g. the validation
    predictions of a grid fit have settled, :mod:`gan_probe.probe.settle`).
    """
    opts = options or SolverOptions()
    if not C > 0:
        raise ValueError(f"C must be positive, got {C}")
    # every rank executes rank 0's plan (the machine facts a plan reads may differ between ranks)
    plan = plan or design.reducer.from_main(plan_solve(design, opts, monitored=monitor is not None))
    reducer = design.reducer
    start_time = time.perf_counter()
    start_passes = design.passes
    dev = design.device
    Y = Y.to(dev, torch.float64)
    K = Y.shape[1]
    W = (torch.zeros(design.dim, K, dtype=torch.float64, device=dev) if W0 is None
         else W0.to(dev, torch.float64).clone())
    rank = plan.subspace_rank
    low_precision = plan.low_precision
    if low_precision:
        design.request_shadow(torch.bfloat16, packed=plan.packed)
    f, g, Z = _loss_grad(design, W, Y, C)
    hessian = design.ensure_shadow() if low_precision else design
    start_shadow = hessian.passes if low_precision else 0
    gnorm0 = g.norm(dim=0)
    done = gnorm0 <= 0
    started = time.perf_counter()
    pre = _preconditioner(plan, opts, hessian, subspace, basis, bool(done.all()))
    sketch_seconds = time.perf_counter() - started if plan.preconditioner == "sketch" else 0.0
    recycle = plan.preconditioner == "subspace" and rank > 0   # CG's directions build the next subspace
    history: list[dict] = []
    newton_steps = cg_steps = 0
    stopped = ""
    for it in range(opts.max_newton):
        cols = (~done).nonzero().flatten()
        if len(cols) == 0:
            break
        gc, Yc, Zc = g[:, cols], Y[:, cols], Z[:, cols]
        gnorm = gc.norm(dim=0)
        eta = torch.minimum(torch.full_like(gnorm, opts.cg_tol), (gnorm / gnorm0[cols]).pow(opts.cg_power))
        active = (Yc * Zc < 1).to(torch.float64)
        any_active = active.sum(1) > 0          # rows active for some running class
        n_any_active = reducer.count(int(any_active.sum())) if reducer.enabled else None
        precond = pre.operator(active, cols, C, design.row_sq) if pre is not None else None
        collect: list | None = [] if recycle else None
        if low_precision:
            # CG only needs the rows active for some running class
            cg_design, cg_active = hessian, active
            rows = any_active.nonzero().flatten()
            count = len(rows) if n_any_active is None else n_any_active  # (over every rank)
            if not recycle and count <= plan.compact_fraction * design.n_total:  # (a subspace needs all rows)
                cg_design, cg_active = hessian.subset(rows), active[rows]
            P, _, steps = _cg(cg_design, cg_active, gc, C, eta, plan.max_cg, precond, collect, 2 * rank,
                              products=False)
            if cg_design is not hessian:
                hessian.passes += cg_design.passes
            del cg_design
            XP = design.matmul(P)  # the exact X~ P: the line search below then lowers the true objective
        else:
            P, XP, steps = _cg(design, active, gc, C, eta, plan.max_cg, precond, collect, 2 * rank)
        cg_steps += steps
        if collect:
            pre = Subspace.build(torch.cat([d for d, _ in collect], 1), torch.cat([x for _, x in collect], 1),
                                 pre, rank, reducer)
        t, f_new = _line_search(W[:, cols], P, Yc * Zc, Yc * XP, C, reducer)
        W[:, cols] += t * P
        Z[:, cols] = Zc + t * XP
        # a step that lowers f_k by less than tol * f_k ends class k
        done[cols[f[cols] - f_new <= opts.tol * f_new.abs()]] = True
        f[cols] = f_new
        newton_steps += 1
        entry = {"iteration": it + 1, "cg_steps": steps,
                 "active_rows": (float(any_active.to(torch.float64).mean()) if n_any_active is None
                                 else n_any_active / max(1, design.n_total)), "seconds":
                 time.perf_counter() - start_time, "sketch_seconds": sketch_seconds,
                 "classes": int(len(cols)), "step_min": float(t.min()), "step_max": float(t.max())}
        stop = monitor(W) if monitor is not None and not bool(done.all()) else None   # (none once converged)
        # the gradient (one pass) for the classes still running, from their margins
        cols = (~done).nonzero().flatten()
        if len(cols) and stop is None:
            g[:, cols] = _gradient(design, W[:, cols], Y[:, cols], Z[:, cols], C)
            gn = g[:, cols].norm(dim=0)
            done[cols[gn <= opts.grad_tol * gnorm0[cols]]] = True
            entry["grad_norm_max"] = float(gn.max())
        entry["objective"] = float(f.sum())
        entry["passes"] = design.passes - start_passes
        if low_precision:
            entry["bfloat16_passes"] = hessian.passes - start_shadow
        if stop is not None:
            entry["stopped"] = stopped = stop
        history.append(entry)
        if callback:
            callback(entry)
        if stopped:
            break
    converged = bool(done.all())
    return SolveResult(W=W, objective=f.cpu().numpy(), margins=Z, newton_iterations=newton_steps,
                       cg_iterations=cg_steps, passes=design.passes - start_passes, converged=converged,
                       seconds=time.perf_counter() - start_time, history=history, subspace=pre,
                       bfloat16_passes=hessian.passes - start_shadow if low_precision else 0, plan=plan,
                       stopped=stopped)
