"""Stopping a run: on request (Ctrl-C, SIGTERM) at a whole step with a checkpoint, or on a non-finite loss."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

import torch

from ..distributed import DistContext, all_reduce
from ..errors import GanProbeError


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on request (Ctrl-C or SIGTERM) after writing a checkpoint at a whole step."""


class StopRequest:
    """While training: the first SIGINT (Ctrl-C) or SIGTERM (a batch scheduler's pre-emption) asks the loop to
    finish the step it is in, write a checkpoint and stop; a second one stops at once (the checkpoint on disk is
    then the last one written). Handlers are installed only in the main thread and restored on exit."""

    def __init__(self, ckpt_path: Path):
        self.ckpt_path = ckpt_path
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            self.restore()
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\ngan-probe train: stopping after this step and writing {self.ckpt_path} (again to stop at once)",
              file=sys.stderr, flush=True)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            # None: the previous handler was not installed from Python (the default is the closest match)
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}


def check_finite(losses: torch.Tensor, step: int, ctx: DistContext, ckpt_path: Path, saved_step: int | None,
                 names: Sequence[str] = ("loss_d", "loss_g")) -> None:
    """Stop every rank with one clear error if any rank saw a NaN/inf loss since the last check.

    ``losses``: one row per step since the last check, one column per name in ``names``.
    Called before anything is written at a check point, so the checkpoint on disk stays the last good one.
    """
    first = step - len(losses) + 1
    bad = (~torch.isfinite(losses).all(dim=1)).nonzero()
    bad_step = first + int(bad[0]) if len(bad) else 0
    if ctx.enabled:  # the earliest bad step over all ranks (0: none)
        flag = torch.tensor([step + 1 - bad_step if bad_step else 0], dtype=torch.int64, device=losses.device)
        flag = int(all_reduce(flag, "max", ctx))
        bad_step = step + 1 - flag if flag else 0
    if not bad_step:
        return
    row = losses[bad_step - first].tolist() if len(bad) and first + int(bad[0]) == bad_step else None
    values = f" ({', '.join(f'{name}={value}' for name, value in zip(names, row))})" if row is not None else ""
    kept = (f"the last good checkpoint is {ckpt_path} (step {saved_step})" if saved_step is not None
            else "no checkpoint had been written yet")
    raise GanProbeError(f"non-finite loss at step {bad_step}{values}; training stopped, {kept}")
