"""The online linear probe of ``gan-probe train --probe-every N``: D's pooled features scored during training.

At step 0 (the untrained D), every N steps and at the last step a copy of the discriminator is probed on a
fixed, labelled image set: batch norm re-estimated on the probe's training images, every selected conv layer
max-pooled to 4x4 (the paper's features), a linear L2-SVM with a fixed C fitted on the probe's training images
and its accuracy measured on the probe's validation images. The training discriminator is never touched (the
probe works on a fresh module loaded from its state), so probing does not change the training trajectory.

The probe set is drawn once from the TRAIN split of ``--probe-dataset`` (never a test split): ``--probe-images``
images, stratified by class and seeded (``--probe-seed``); a quarter of them, again stratified and seeded, are
the validation images, the rest train the SVM. The score is a deterministic function of D's weights and these
settings, so a resumed run logs exactly the numbers of an uninterrupted one (on the CPU).

>>> probe = OnlineProbe(ProbeSettings("digits", images=400), preset_config("small32", ndf=8))   # doctest: +SKIP
>>> probe(discriminator).accuracy                                                               # doctest: +SKIP
0.71
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data import load_split
from ..data.holdout import holdout_indices
from ..errors import ConfigError
from ..features.batchnorm import recompute_batchnorm
from ..features.pooling import pooled_features
from ..models import Discriminator, ModelConfig, to_model_range
from ..probe import fit_svm, stratified_holdout
from ..provenance import sha256_array
from .log import read_log

#: the SVM's fixed C (features standardised; measured in reports/probe-curve)
DEFAULT_C = 3e-4
#: the share of the probe images held out to score the SVM (the rest train it)
VAL_FRACTION = 0.25
#: D's conv layers are max-pooled to GRID x GRID, as in the paper
GRID = 4
BATCH = 256
#: the run directory's best checkpoint by probe accuracy, and its description
BEST_PROBE = "best_probe.pt"
BEST_PROBE_JSON = "best_probe.json"


@dataclass(frozen=True)
class ProbeSettings:
    """What defines a probe score (two runs with equal settings give comparable accuracies)."""

    dataset: str
    images: int = 2000
    layers: tuple[int, ...] | None = None  # 0-based conv layers; None: all of them
    C: float = DEFAULT_C
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = None if self.layers is None else list(self.layers)
        return {**out, "grid": GRID, "val_fraction": VAL_FRACTION, "split": "train"}


@dataclass(frozen=True)
class ProbeScore:
    accuracy: float  # on the probe's validation images, a fraction in [0, 1]
    seconds: float


class OnlineProbe:
    """A fixed labelled probe set, loaded once; calling it with a discriminator returns its :class:`ProbeScore`."""

    def __init__(self, settings: ProbeSettings, model: ModelConfig, data_root: str | None = None,
                 device: torch.device | str = "cpu", progress: bool = False):
        self.settings = settings
        self.model = model
        self.device = torch.device(device)
        self.layers = None if settings.layers is None else sorted(set(settings.layers))
        n_layers = len(Discriminator(model).features)
        if self.layers is not None and (not self.layers or not 0 <= self.layers[0] <= self.layers[-1] < n_layers):
            raise ConfigError(f"--probe-layers {','.join(map(str, settings.layers or ()))}: the discriminator has "
                              f"conv layers 0..{n_layers - 1}")
        split = load_split(settings.dataset, data_root, "train", image_size=model.image_size, progress=progress)
        if split.labels is None:
            raise ConfigError(f"--probe-dataset {settings.dataset}: the probe needs class labels, and this dataset "
                              f"has none")
        labels = np.asarray(split.labels)
        n_classes = len(np.unique(labels))
        if settings.images < 2 * n_classes:
            raise ConfigError(f"--probe-images {settings.images}: the probe needs at least 2 images for each of the "
                              f"{n_classes} classes of {settings.dataset} (use at least {2 * n_classes})")
        if settings.images < len(split):  # a stratified, seeded sample of the training split
            _, rows = holdout_indices(labels, len(split), settings.images, settings.seed)
        else:
            rows = np.arange(len(split))
        self.images = np.ascontiguousarray(split.images[rows])
        self.labels = labels[rows]
        val_size = max(1, round(VAL_FRACTION * len(rows)))
        self.fit_rows, self.val_rows = stratified_holdout(self.labels, val_size, settings.seed)
        self.n_classes = n_classes

    def describe(self) -> dict[str, Any]:
        """The settings plus what was drawn: image counts and a checksum of the probe's images."""
        return {**self.settings.to_dict(), "n_images": int(len(self.labels)), "n_fit": int(len(self.fit_rows)),
                "n_val": int(len(self.val_rows)), "n_classes": int(self.n_classes),
                "images_sha256": sha256_array(self.images)}

    def features(self, disc: Discriminator, rows: np.ndarray | None = None) -> np.ndarray:
        """Pooled features (float32, one row per probe image, or per ``rows``) of an eval-mode ``disc``."""
        images = self.images if rows is None else self.images[rows]
        blocks = []
        for start in range(0, len(images), BATCH):
            x = to_model_range(torch.from_numpy(images[start:start + BATCH])).to(self.device)
            blocks.append(pooled_features(disc, x, GRID, self.layers).cpu())
        return torch.cat(blocks).numpy()

    @torch.no_grad()
    def __call__(self, disc: torch.nn.Module) -> ProbeScore:
        """Score the discriminator ``disc`` (any module with D's state-dict keys); ``disc`` is left untouched."""
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # D's weight initialisation must not draw from the global stream
            copy = Discriminator(self.model).to(self.device)
        copy.load_state_dict(disc.state_dict())  # copies the values: nothing is shared with ``disc``
        recompute_batchnorm(copy, self.images[self.fit_rows], BATCH, self.device)
        x = self.features(copy)
        svm = fit_svm(x[self.fit_rows], self.labels[self.fit_rows], C=self.settings.C, device=str(self.device))
        accuracy = svm.score(x[self.val_rows], self.labels[self.val_rows])
        return ProbeScore(accuracy, time.perf_counter() - start)

class BestProbe:
    """Rank 0 of a run with ``--probe-every``: scores the discriminator and keeps the best checkpoint.

    A new best (strictly higher accuracy: the earliest step wins ties) is saved as best_probe.pt and described in
    best_probe.json. The loop then writes checkpoint.pt at this step too, so a resumed run never repeats a step whose
    best checkpoint is already on disk.
    """

    def __init__(self, probe: OnlineProbe, out: Path, steps_per_epoch: int):
        self.probe, self.out, self.steps_per_epoch = probe, out, steps_per_epoch
        self.info = probe.describe()
        self.best: dict[str, Any] | None = None

    def resume_at(self, step: int) -> None:
        """The best probe accuracy so far, as an uninterrupted run would have it at ``step`` (log.csv written)."""
        self.best = best_probe_so_far(self.out, step, self.info)

    def __call__(self, step: int, disc: torch.nn.Module, payload) -> tuple[float, float, bool]:
        """Score ``disc`` at ``step``; ``payload()`` is the checkpoint to keep if it is a new best."""
        from ..atomic import write_json
        from ..models.checkpoint import save_checkpoint

        score = self.probe(disc)
        new_best = self.best is None or score.accuracy > self.best["probe_acc"]
        if new_best:
            self.best = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), "probe_acc": score.accuracy,
                         "probe_seconds": round(score.seconds, 3), "checkpoint": BEST_PROBE, "probe": self.info}
            save_checkpoint(self.out / BEST_PROBE, {**payload(), "probe": self.best})
            write_json(self.out / BEST_PROBE_JSON, self.best)
        return score.accuracy, score.seconds, new_best


def best_probe_so_far(out: Path, step: int, probe_info: dict[str, Any]) -> dict[str, Any] | None:
    """On resume at ``step``: the best probe result of the steps up to it (None: none yet).

    best_probe.json holds it when it was written at or before ``step`` with the same probe (settings and images);
    when it was written after ``step`` (the run stopped between a probe and the checkpoint written with it, or
    resumes from checkpoint.prev.pt), the best is the highest ``probe_acc`` in the log up to ``step``, and the
    files are rewritten at the next improvement, as the steps are repeated. A probe with other settings starts
    afresh.
    """
    path = out / BEST_PROBE_JSON
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("probe") != probe_info:
        return None
    if isinstance(saved.get("step"), int) and saved["step"] <= step and isinstance(saved.get("probe_acc"), float):
        return saved
    best = None
    for row in read_log(out):
        if "probe_acc" in row and row["step"] <= step and (best is None or row["probe_acc"] > best["probe_acc"]):
            best = {"step": int(row["step"]), "probe_acc": row["probe_acc"]}
    return best


def parse_layers(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"0,2"`` -> ``(0, 2)``; ``None``, ``""`` or ``"all"`` -> ``None`` (every conv layer)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "all")):
        return None
    if not isinstance(text, str):
        return tuple(int(i) for i in text)
    try:
        layers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--probe-layers {text!r}: expected comma-separated layer numbers, e.g. 0,1,2") from None
    return layers
