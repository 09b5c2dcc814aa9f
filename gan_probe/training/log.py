"""A run's log.csv: one row per logged step, the columns its model family names, appended as training goes.

Columns: ``step``, ``epoch``, the family's losses and statistics (DCGAN: ``loss_d``, ``loss_g``, ``d_real``,
``d_fake``; VAE: ``loss``, ``recon``, ``kl``, ``elbo``), ``images_per_s``, ``seconds`` (training time of the whole
run, resumes included) and, for the DCGAN's online probe, ``probe_acc`` / ``probe_seconds`` on the probed rows
only (empty elsewhere).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_path

LOG = "log.csv"


def log_fields(family_fields: Sequence[str], probe: bool = True) -> tuple[str, ...]:
    """The columns of log.csv for a family whose rows carry ``family_fields``."""
    return ("step", "epoch", *family_fields, "images_per_s", "seconds") + (
        ("probe_acc", "probe_seconds") if probe else ())


class TrainLog:
    """log.csv: appended row by row; on resume the rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int, fields: Sequence[str]):
        self.path = path
        rows: list[dict[str, str]] = []
        if resume_step > 0 and path.is_file():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("step") and int(r["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, fields)

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def read_log(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The training log as a list of rows with float values; empty cells (``probe_acc`` on the rows without a
    probe) are left out of their row."""
    with open(Path(run_dir) / LOG, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
