"""The probe's training rows shared out across the ranks of a torchrun launch, and the sums that join them.

Under ``torchrun -m gan_probe svm`` every rank holds a contiguous share of the training rows (:meth:`RowReducer.share`)
and the solver's weights, directions and every other quantity over weight space are the same on all ranks. What
differs is only what is summed over rows: the standardisation statistics, the loss, the gradient and the
Hessian-vector products ``X~^T R`` (:mod:`gan_probe.probe.design`), the line search's sums over margins
(:func:`gan_probe.probe.loss.line_search`), the preconditioners' Gram matrices over ``X~V``
(:mod:`gan_probe.probe.preconditioners`, :mod:`gan_probe.probe.sketch`), the counts that decide a plan. Each of
those goes through :meth:`RowReducer.sum`, one ``all_reduce`` per reduction (several tensors of one reduction
travel together). Decision values of validation and test rows are computed on each rank's share and gathered
(:meth:`RowReducer.gather_rows`), so every rank scores, selects C and stops the grid exactly as rank 0 does.

In one process the reducer is the identity and nothing changes. The reducer in force is the one of the innermost
:func:`sharded_rows` block (the ``svm`` command opens one under torchrun); :func:`active` returns it, and the
probe's functions (:class:`~gan_probe.probe.svm.TrainingProblem`, :func:`~gan_probe.probe.svm.scores`,
:func:`~gan_probe.probe.standardize.fit_standardizer`, :class:`~gan_probe.probe.resume.GridFits`) consult it.

>>> r = RowReducer()                       # one process
>>> r.enabled, r.share(10), r.count(10)
(False, (0, 10), 10)
>>> RowReducer.share_of(10, rank=1, world_size=3)   # shares [0:3] [3:6] [6:10]
(3, 6)
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch

from ..distributed import DistContext, agree, broadcast_object

T = TypeVar("T")


class RowReducer:
    """Sums over rows held by several ranks (the identity in one process); see the module docstring."""

    def __init__(self, ctx: DistContext | None = None):
        self.ctx = ctx or DistContext()
        self.reductions = 0        # collective calls made (for benchmarks)
        self.reduced_bytes = 0     # bytes sent into the all-reduces
        self.seconds = 0.0         # wall time inside the collectives (waiting for slower ranks included)

    @property
    def enabled(self) -> bool:
        return self.ctx.enabled

    @property
    def rank(self) -> int:
        return self.ctx.rank

    @property
    def world_size(self) -> int:
        return self.ctx.world_size

    @staticmethod
    def share_of(n: int, rank: int, world_size: int) -> tuple[int, int]:
        """``(start, end)`` of rank ``rank``'s contiguous share of ``n`` rows (sizes differ by at most one)."""
        return n * rank // world_size, n * (rank + 1) // world_size

    def share(self, n: int) -> tuple[int, int]:
        """This rank's share of ``n`` rows."""
        return self.share_of(n, self.rank, self.world_size)

    def my_rows(self, rows: np.ndarray | None, n: int) -> np.ndarray | None:
        """This rank's contiguous share of the row indices ``rows`` (of ``range(n)`` when None); in one process,
        ``rows`` as given."""
        if not self.enabled:
            return rows
        start, end = self.share(n)
        return (np.arange(n) if rows is None else np.asarray(rows))[start:end]

    def sum(self, *tensors: torch.Tensor) -> None:
        """Sum each tensor over the ranks, in place, with one all-reduce for all of them (float64 on the wire)."""
        if not self.enabled or not tensors:
            return
        import torch.distributed as dist

        device = self.ctx.device
        flat = torch.cat([t.reshape(-1).to(device, torch.float64) for t in tensors])
        started = time.perf_counter()
        dist.all_reduce(flat)
        self.seconds += time.perf_counter() - started
        self.reductions += 1
        self.reduced_bytes += flat.numel() * 8
        offset = 0
        for t in tensors:
            size = t.numel()
            t.copy_(flat[offset:offset + size].view(t.shape).to(t.device, t.dtype))
            offset += size

    def count(self, n: int) -> int:
        """``n`` summed over the ranks (an exact integer)."""
        if not self.enabled:
            return int(n)
        box = torch.tensor([float(n)], dtype=torch.float64)
        self.sum(box)
        return int(box.item())

    def gather_rows(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The ``(n, ...)`` rows whose shares (:meth:`share`) the ranks hold, in order, on every rank."""
        if not self.enabled:
            return local
        import torch.distributed as dist

        sizes = [self.share_of(n, r, self.world_size) for r in range(self.world_size)]
        longest = max(e - s for s, e in sizes)
        device = self.ctx.device
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
        padded[:local.shape[0]] = local.to(device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        self.reductions += 1
        return torch.cat([p[:e - s] for p, (s, e) in zip(parts, sizes)]).to(local.device)

    def stack(self, local: torch.Tensor) -> torch.Tensor:
        """``(world_size, ...)``: every rank's ``local`` (same shape and dtype on all ranks), in rank order."""
        if not self.enabled:
            return local[None]
        import torch.distributed as dist

        sent = local.to(self.ctx.device).contiguous()
        parts = [torch.empty_like(sent) for _ in range(self.world_size)]
        started = time.perf_counter()
        dist.all_gather(parts, sent)
        self.seconds += time.perf_counter() - started
        self.reductions += 1
        return torch.stack(parts).to(local.device)

    def agree(self, fn: Callable[[], T]) -> T:
        """``fn()`` on every rank; an error on any rank is raised on all of them (one line)."""
        return agree(fn, self.ctx) if self.enabled else fn()

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a small picklable object, e.g. a solve plan)."""
        return broadcast_object(value, self.ctx) if self.enabled else value


#: the reducer of one process
LOCAL = RowReducer()
_active: list[RowReducer] = [LOCAL]


def active() -> RowReducer:
    """The reducer of the innermost :func:`sharded_rows` block (:data:`LOCAL` outside one)."""
    return _active[-1]


@contextmanager
def sharded_rows(ctx: DistContext) -> Iterator[RowReducer]:
    """Within the block the probe shares its training, validation and test rows among ``ctx``'s ranks."""
    reducer = RowReducer(ctx) if ctx.enabled else LOCAL
    _active.append(reducer)
    try:
        yield reducer
    finally:
        _active.pop()
