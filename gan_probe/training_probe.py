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

import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .data import load_split
from .data.holdout import holdout_indices
from .errors import ConfigError
from .features.batchnorm import recompute_batchnorm
from .features.pooling import pooled_features
from .models import Discriminator, ModelConfig
from .probe import fit_svm, stratified_holdout
from .provenance import sha256_array

#: the SVM's fixed C (features standardised; measured in reports/probe-curve)
DEFAULT_C = 3e-4
#: the share of the probe images held out to score the SVM (the rest train it)
VAL_FRACTION = 0.25
#: D's conv layers are max-pooled to GRID x GRID, as in the paper
GRID = 4
BATCH = 256


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
        from .train import to_model_range

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
