"""The fits of a C grid kept on disk as each one ends, so that an interrupted probe resumes at the next C.

At the paper's scale on a CPU a whole grid takes about an hour; losing it to a crash, a pre-empted job or Ctrl-C
at its last C would cost all of it. :class:`GridFits` keeps, in one directory, a file per fitted C
(``C=<value>.pt``: the weights over the standardised features, the fit's description and its validation
accuracy) and ``key.json``, the digest of everything those fits depend on: the training and validation rows and
their labels, the standardisation statistics (per-column mean and scale over every training row: a fingerprint
of the features' content), the number of features, the solver and its settings, and the device. A directory
written for other inputs is emptied, never reused.

A resumed grid warm-starts its next C from the last saved weights, as the uninterrupted run starts it from the
previous solution, so both converge to the same optimum to the solver's tolerance (the solver's preconditioner
is rebuilt rather than carried over, so the iterates, not the optimum, can differ in the last digits).

With the rows shared among the ranks of a torchrun launch (:mod:`gan_probe.probe.rows`) only rank 0 touches the
directory: it reads each saved fit and hands it to the other ranks, and it alone writes.

>>> import tempfile, torch
>>> fits = GridFits(tempfile.mkdtemp(), {"rows": "digest"})
>>> fits.save(0.01, torch.ones(3, 2, dtype=torch.float64), {"C": 0.01, "objective": 1.5}, 0.75)
>>> saved = fits.load(0.01)
>>> saved["val_accuracy"], saved["fit"]["objective"], saved["W"].shape
(0.75, 1.5, torch.Size([3, 2]))
>>> fits.load(0.1) is None
True
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write, remove_stale_temporaries, write_json
from .rows import active

KEY_FILE = "key.json"
FORMAT = "gan-probe-grid-fits"


def fits_dir(result_path: str | Path) -> Path:
    """Where a run writing ``result_path`` keeps its grid's fits until the result is written: ``RESULT.fits/``."""
    result_path = Path(result_path)
    return result_path.with_name(result_path.name + ".fits")


class GridFits:
    """Saved fits of one grid, keyed by ``key`` (a JSON-serialisable description of the inputs)."""

    def __init__(self, directory: str | Path, key: dict[str, Any]):
        self.directory = Path(directory)
        self.key = {"format": FORMAT, **key}
        self.replaced = 0   # files of other inputs removed on opening
        self.reducer = active()
        self.reducer.agree(self._open if self.reducer.rank == 0 else lambda: None)

    def _open(self) -> None:
        key_path = self.directory / KEY_FILE
        if self.directory.is_dir():
            remove_stale_temporaries(self.directory)
        try:
            previous = json.loads(key_path.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != json.loads(json.dumps(self.key)):
            # fits of other inputs go, and the key is this grid's before any fit is saved under it
            stale = list(self.directory.glob("C=*.pt"))
            for path in stale:
                path.unlink()
            self.replaced = len(stale)
            write_json(key_path, self.key)

    def _path(self, C: float) -> Path:
        return self.directory / f"C={float(C)!r}.pt"

    def load(self, C: float) -> dict[str, Any] | None:
        """``{"W", "fit", "val_accuracy"}`` saved for ``C``, or None (rank 0's answer on every rank)."""
        if self.reducer.enabled:
            return self.reducer.from_main(self._load(C) if self.reducer.rank == 0 else None)
        return self._load(C)

    def _load(self, C: float) -> dict[str, Any] | None:
        path = self._path(C)
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged file is refitted, not trusted
            path.unlink(missing_ok=True)
            return None
        return saved if {"W", "fit", "val_accuracy"} <= set(saved) else None

    def save(self, C: float, W: torch.Tensor, fit: dict[str, Any], val_accuracy: float) -> None:
        record = {"W": W.detach().to("cpu", torch.float64).contiguous(), "fit": fit,
                  "val_accuracy": float(val_accuracy)}
        # rank 0 writes; a failure there stops every rank
        self.reducer.agree(lambda: atomic_write(self._path(C), lambda tmp: torch.save(record, tmp))
                           if self.reducer.rank == 0 else None)
