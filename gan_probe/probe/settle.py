"""When a fit on the C grid may stop: once its validation predictions have settled.

Choosing C needs each grid value's validation accuracy, not its objective to the solver's tolerance. Late Newton
steps of a fit on a large C lower the objective by tiny amounts and flip no validation prediction, yet they are
most of that fit's time. :class:`SettledPredictions` watches the predicted classes of the validation rows after
every Newton step and ends the fit once, for ``steps`` steps in a row, each step changed at most a fraction
``fraction`` of them (:data:`SETTLE_FRACTION`: 2 of 4,000 rows, a 0.05-point move of the validation accuracy; none
below 2,000 rows). The fit at the chosen C on all the training rows (the one whose test accuracy is reported)
still runs to the solver's tolerance.

Why these defaults, measured on the paper model's 28,672 features of 40,000 CIFAR-10 training images (4,000 of
them for validation, default grid 1e-6 .. 1, every fit run to the tolerance and its predictions recorded after
each Newton step, 2 CPU cores): at large C a few validation predictions flip back and forth for many steps (C = 0.1:
22 steps, changing 0-4 predictions each after the first), so waiting for no change at all saves little (the grid
took 365 s instead of 385); at most 2 changes in each of 2 steps in a row took 261 s, every validation accuracy
within 0.125 points of the converged fit's and the same chosen C.

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


class SettledPredictions:
    """A Newton-step monitor (see :func:`gan_probe.probe.newton.newton_cg`) over the validation rows ``design``.

    With rows shared among ranks, ``design`` holds this rank's share of the validation rows and the count of
    changed predictions is summed over the ranks, so every rank stops at the same step.
    """

    def __init__(self, design: Design, steps: int = DEFAULT_SETTLE_STEPS, fraction: float = SETTLE_FRACTION):
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if not 0 <= fraction < 1:
            raise ValueError(f"fraction must be in [0, 1), got {fraction}")
        self.design, self.steps = design, steps
        self.allowed = int(fraction * design.n_total)   # changed predictions a settled step may have
        self._previous: torch.Tensor | None = None
        self._unchanged = 0
        self.changes: list[int] = []      # validation predictions changed by each Newton step (for the record)

    def predictions(self, W: torch.Tensor) -> torch.Tensor:
        Z = self.design.matmul(W)
        return (Z[:, 0] < 0).to(torch.int64) if Z.shape[1] == 1 else Z.argmax(1)

    def __call__(self, W: torch.Tensor) -> str | None:
        current = self.predictions(W)
        if self._previous is None:
            changed = self.design.reducer.count(len(current))
        else:
            changed = self.design.reducer.count(int((current != self._previous).sum()))
        self._previous = current
        self.changes.append(changed)
        self._unchanged = self._unchanged + 1 if changed <= self.allowed else 0   # (the first call: all rows)
        if self._unchanged >= self.steps:
            return (f"validation predictions settled: at most {self.allowed} of {self.design.n_total} changed in "
                    f"each of {self.steps} Newton steps")
        return None

    def reset(self) -> None:
        """Forget the predictions seen (before the next fit)."""
        self._previous, self._unchanged, self.changes = None, 0, []
