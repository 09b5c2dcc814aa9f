"""When a fit on the C grid may stop: once its validation predictions have settled.

Choosing C needs each grid value's validation accuracy, not its objective to the solver's tolerance. Late Newton
steps of a fit on a large C lower the objective by tiny amounts and flip no validation prediction, yet they are
most of that fit's time. :class:`SettledPredictions` watches the predicted classes of the validation rows after
every Newton step and ends the fit once, for ``steps`` steps in a row, each step changed at most a fraction
``fraction`` of them (:data:`SETTLE_FRACTION`: 2 of 4,000 rows, a 0.05-point move of the validation accuracy; none
below 2,000 rows). The fit at the chosen C on all the training rows (the one whose test accuracy is reported)
still runs to the solver's tolerance.

A fit whose validation accuracy trails the best of the grid so far may stop sooner: by ``G`` predictions behind,
a step also counts as settled when it changed at most ``G /`` :data:`SETTLE_CATCH_UP` of them -- at that pace,
even if every change were a correction, the fit would need more than that many further steps to draw level with
the best. The fit that is (or becomes) the best is held to the strict count, so the chosen C and its accuracy do
not depend on this.

Why these defaults, measured on the paper model's 28,672 features of 40,000 CIFAR-10 training images (4,000 of
them for validation, default grid 1e-6 .. 1, every fit run to the tolerance and its predictions recorded after
each Newton step, 2 CPU cores): at large C a few validation predictions flip back and forth for many steps (C = 0.1:
22 steps, changing 0-4 predictions each after the first), so waiting for no change at all saves little (the grid
took 365 s instead of 385); at most 2 changes in each of 2 steps in a row took 261 s, every validation accuracy
within 0.125 points of the converged fit's and the same chosen C. The catch-up rule, replayed on the same
records: 206 s, every accuracy within 0.175 points, the same C (with 5 catch-up steps, or 1 settled step instead of
2, accuracies moved by up to 0.225 and 0.875 points). Run on all 50,000 images (5,000 for validation), the trailing
fits at C = 1e-3, 1e-2, 0.1 and 1 stopped after 6, 8, 3 and 3 Newton steps where the fixed count alone took 7, 13,
5 and 3, at validation accuracies of 69.58, 67.12, 66.42 and 66.36% against 69.58, 67.12, 66.42 and 66.40%. With
at most 20 CG steps a Newton step in grid fits (:data:`~gan_probe.probe.plan.MONITORED_MAX_CG`; 2 cores of an
Intel Xeon) they stopped after 6, 9, 3 and 3 steps at 69.58, 67.00, 66.36 and 66.26%, where the same fits run to
the tolerance reached 69.58, 67.12, 66.52 and 66.44% (on the 40,000 rows, 4,000 for validation: 68.05, 64.92, 64.35
and 64.12% against 68.05, 65.18, 64.45 and 64.45%): a trailing fit's reported accuracy may be off by a third of a
point, the chosen C and its accuracy are not.

>>> import torch
>>> from gan_probe.probe.design import dense_design
>>> val = dense_design(torch.tensor([[1.0], [-1.0]], dtype=torch.float64), intercept_scaling=1.0)
>>> watch = SettledPredictions(val, steps=2)
>>> W = torch.tensor([[1.0, -1.0], [0.0, 0.0]], dtype=torch.float64)   # class 0 for x > 0, class 1 below
>>> [watch(W) for _ in range(3)]
[None, None, 'validation predictions settled: at most 0 of 2 changed in each of 2 Newton steps']
"""
from __future__ import annotations

import torch

from .design import Design

#: Newton steps in a row with (almost) no changed validation prediction that end a grid fit (0: every fit converges)
DEFAULT_SETTLE_STEPS = 2
#: the share of the validation predictions a step may change and still count as settled (rounded down)
SETTLE_FRACTION = 5e-4
#: a fit trailing the best so far by G validation predictions settles at up to G / SETTLE_CATCH_UP changes a step
SETTLE_CATCH_UP = 10


class SettledPredictions:
    """A Newton-step monitor (see :func:`gan_probe.probe.newton.newton_cg`) over the validation rows ``design``.

    ``labels``: the validation rows' classes as column indices of the weights (for one column, 1 for a positive
    decision value), which lets a fit trailing the best so far (:meth:`reset`) settle sooner; without them only the
    fixed count applies. With rows shared among ranks, ``design`` and ``labels`` hold this rank's share of the
    validation rows and the counts are summed over the ranks, so every rank stops at the same step.
    """

    def __init__(self, design: Design, steps: int = DEFAULT_SETTLE_STEPS, fraction: float = SETTLE_FRACTION,
                 labels: torch.Tensor | None = None, catch_up: int = SETTLE_CATCH_UP):
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if not 0 <= fraction < 1:
            raise ValueError(f"fraction must be in [0, 1), got {fraction}")
        if catch_up < 1:
            raise ValueError(f"catch_up must be at least 1, got {catch_up}")
        if labels is not None and len(labels) != design.n:
            raise ValueError(f"{len(labels)} labels for {design.n} validation rows")
        self.design, self.steps, self.catch_up = design, steps, catch_up
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64, device=design.device)
        self.allowed = int(fraction * design.n_total)   # changed predictions a settled step may have
        self.best_correct: int | None = None
        self._previous: torch.Tensor | None = None
        self._run: list[int] = []         # the allowances of the settled steps in a row so far
        self.changes: list[int] = []      # validation predictions changed by each Newton step (for the record)

    def predictions(self, W: torch.Tensor) -> torch.Tensor:
        """Each validation row's predicted column (one column: 1 where the decision value is positive)."""
        Z = self.design.matmul(W)
        return (Z[:, 0] > 0).to(torch.int64) if Z.shape[1] == 1 else Z.argmax(1)

    def _allowance(self, current: torch.Tensor) -> int:
        """Changed predictions this step may have and count as settled: more while behind the best so far."""
        if self.labels is None or self.best_correct is None:
            return self.allowed
        correct = self.design.reducer.count(int((current == self.labels).sum()))
        return max(self.allowed, (self.best_correct - correct) // self.catch_up)

    def __call__(self, W: torch.Tensor) -> str | None:
        current = self.predictions(W)
        if self._previous is None:
            changed = self.design.reducer.count(len(current))
        else:
            changed = self.design.reducer.count(int((current != self._previous).sum()))
        allowance = self._allowance(current)
        self._previous = current
        self.changes.append(changed)
        self._run = self._run + [allowance] if changed <= allowance else []   # (the first call: all rows)
        if len(self._run) >= self.steps:
            behind = (f", trailing the best C so far (at most 1/{self.catch_up} of the gap)"
                      if max(self._run) > self.allowed else "")
            return (f"validation predictions settled: at most {max(self._run)} of {self.design.n_total} changed "
                    f"in each of {self.steps} Newton steps{behind}")
        return None

    def reset(self, best_accuracy: float | None = None) -> None:
        """Forget the predictions seen (before the next fit); ``best_accuracy``: the best validation accuracy of
        the grid so far (a fraction), which a trailing fit is measured against."""
        self._previous, self._run, self.changes = None, [], []
        self.best_correct = None if best_accuracy is None else round(best_accuracy * self.design.n_total)
