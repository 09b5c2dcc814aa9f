"""Read result files and run directories into normalised records.

Inputs (:func:`load_results`):

* ``*.json`` written by ``gan-probe svm --json`` -> :class:`ProbeResult` (recognised by ``protocol`` plus
  ``accuracy`` or ``error``; the feature store's meta.json is taken from ``features_meta``, or read from the
  store named by ``features`` when it is not embedded);
* ``*.json`` written by ``gan-probe inception-score --json`` / ``gan-probe fid --json`` ->
  :class:`SampleQualityResult` (recognised by ``metric``, ``inception_score_mean`` or ``fid``);
* a training run directory (``config.json`` plus ``log.csv``, ``samples/`` or ``checkpoint.pt``) -> :class:`RunDir`;
* ``*.png`` figures (e.g. from ``gan-probe viz``) -> :class:`ImageInput`;
* any other directory: searched recursively for the above. Feature stores and report directories inside it
  are skipped, and JSON files that are none of the result kinds are skipped with a note.

A file named explicitly is read strictly: an unreadable file, invalid JSON, or an object that is none of these
kinds raises :class:`ResultError` (a :class:`~gan_probe.errors.GanProbeError`) naming the file. Optional keys
may be missing (they show as "-" in the report).

Row labels (documented in :func:`probe_label`): an explicit ``label`` or ``model`` string in the result, else
one in its ``features_meta``, else one built from ``features_meta["source"]`` ("dcgan", "random-d", "kmeans",
"pixels") and the preset / number of centroids. Labels that would collide are made unique by
:func:`make_labels_unique`.

>>> results = load_results(["results/"])                 # doctest: +SKIP
>>> [r.label for r in results.probes]                    # doctest: +SKIP
['DCGAN (paper32) + L2-SVM', 'k-means (1600 centroids) + L2-SVM']
"""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import GanProbeError
from ..protocol_names import PROTOCOLS, protocol_name  # result files of earlier versions use older names too

SAMPLE_METRICS = ("inception_score", "fid")
FAMILIES = ("dcgan", "random-d", "vae", "network", "kmeans", "pixels", "other")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# classes per dataset, used only when neither the result nor its features meta says
DEFAULT_CLASSES = {"cifar10": 10, "svhn": 10, "digits": 10}

_FAMILY_ALIASES = {
    "dcgan": "dcgan", "gan": "dcgan", "discriminator": "dcgan", "d": "dcgan", "trained-d": "dcgan",
    "random-d": "random-d", "randomd": "random-d", "random": "random-d", "random-init": "random-d",
    "random-weights": "random-d", "random-discriminator": "random-d",
    "kmeans": "kmeans", "k-means": "kmeans", "coates-ng": "kmeans",
    "pixels": "pixels", "pixel": "pixels", "raw-pixels": "pixels", "raw": "pixels",
    "vae": "vae", "torchvision": "network", "network": "network",
}


class ResultError(GanProbeError):
    """A result file or run directory cannot be read or is not a gan-probe result."""


@dataclass
class ProbeResult:
    """One linear-probe result (``gan-probe svm --json``); accuracies are fractions in [0, 1]."""

    path: str
    label: str
    family: str
    dataset: str | None
    protocol: str
    labels_per_class: int | None
    n_classes: int | None
    accuracy: float
    accuracy_std: float | None
    error: float
    C: float | None
    n_train: int | None
    n_test: int | None
    n_features: int | None
    draws: int | None
    solver: str | None
    seconds: float | None
    c_grid: list[float] = field(default_factory=list)
    c_curve: list[tuple[float, float]] = field(default_factory=list)
    c_chosen: float | None = None
    per_draw: list[float] = field(default_factory=list)
    max_feature_units: int | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    preset: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # split -> {dataset, n, sha256, ...}
    features_meta: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    layers: list[int] | None = None  # the conv layers probed, when a subset of the model's (see layer_subset)
    model_label: str | None = None  # the label without the layer subset: one model's rows of a layer profile
    evaluated_on: str | None = None  # "test split" or "held out of train" (see evaluation_images)
    selection_labels: int | None = None  # labelled validation rows that chose C (k, T for kNN); None: unknown
    hyperparameters_fixed: bool = False  # C (k, T) given by the user, not chosen on a validation split
    classifier: str = "svm"  # "svm" (gan-probe svm) or "knn" (gan-probe knn)
    vote: str | None = None  # kNN: "majority" or "weighted"
    kind: str = "probe"

    @property
    def labels_per_class_or_total(self) -> float | None:
        """Labelled training images per class (``n_train / n_classes`` for the full protocol)."""
        if self.labels_per_class is not None:
            return float(self.labels_per_class)
        if self.n_train is not None and self.n_classes:
            return self.n_train / self.n_classes
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SampleQualityResult:
    """One Inception Score and/or FID result (``gan-probe inception-score/fid --json``)."""

    path: str
    label: str
    inception_score: float | None
    inception_score_std: float | None
    fid: float | None
    reference: str | None  # what FID compares against
    n_samples: int | None
    splits: int | None
    seconds: float | None
    conventions: dict[str, Any] = field(default_factory=dict)
    extractor: str | None = None  # the feature network, as the result describes it
    warnings: list[str] = field(default_factory=list)
    source: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None  # the real images' dataset (FID's reference), when the result names it
    kind: str = "sample_quality"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunDir:
    """A training run directory (``gan-probe train --out RUN_DIR``)."""

    path: str
    label: str
    config: dict[str, Any]
    log: list[dict[str, float]]
    samples: list[str]
    checkpoint: str | None
    kind: str = "run"

    @property
    def last_sample(self) -> str | None:
        return self.samples[-1] if self.samples else None

    @property
    def seconds(self) -> float | None:
        return self.log[-1].get("seconds") if self.log else None

    @property
    def seed(self) -> int | None:
        return (self.config.get("train") or {}).get("seed")

    def to_dict(self) -> dict[str, Any]:
        last = self.log[-1] if self.log else {}
        return {"kind": self.kind, "path": self.path, "label": self.label, "config": self.config,
                "log_rows": len(self.log), "last_step": last.get("step"), "last_loss_d": last.get("loss_d"),
                "last_loss_g": last.get("loss_g"), "seconds": self.seconds, "samples": self.samples,
                "checkpoint": self.checkpoint}


@dataclass
class ImageInput:
    """A PNG figure given on the command line (e.g. a latent interpolation from ``gan-probe viz``)."""

    path: str
    label: str
    kind: str = "image"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Results:
    """Everything read from the inputs, in input order; ``notes`` lists what was skipped and why."""

    probes: list[ProbeResult] = field(default_factory=list)
    samples: list[SampleQualityResult] = field(default_factory=list)
    runs: list[RunDir] = field(default_factory=list)
    images: list[ImageInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[Any]:
        return [*self.probes, *self.samples, *self.runs, *self.images]

    def __len__(self) -> int:
        return len(self.records)


# ----------------------------------------------------------------------------------------------- helpers


def _number(obj: dict, key: str, where: str, required: bool = False) -> float | None:
    """``obj[key]`` as a finite float; None when missing/null (unless required); a wrong type raises."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ResultError(f"{where}: missing the required key {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ResultError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _integer(obj: dict, key: str, where: str) -> int | None:
    value = _number(obj, key, where)
    if value is None:
        return None
    if value != int(value):
        raise ResultError(f"{where}: {key!r} must be an integer, got {obj[key]!r}")
    return int(value)


def _fraction(obj: dict, key: str, where: str) -> float | None:
    value = _number(obj, key, where)
    if value is not None and not 0.0 <= value <= 1.0:
        raise ResultError(f"{where}: {key!r} = {value:g} is outside [0, 1] (fractions are expected, not percent)")
    return value


def _string(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _mapping(obj: dict, key: str) -> dict:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def normalise_family(value: Any) -> str | None:
    """Map a features-meta ``source`` such as "k-means" or "random_d" to one of :data:`FAMILIES`."""
    if not isinstance(value, str) or not value.strip():
        return None
    key = value.strip().lower().replace("_", "-").replace(" ", "-")
    return _FAMILY_ALIASES.get(key, "other")


_DATASET_ALIASES = {"cifar-10": "cifar10", "cifar_10": "cifar10", "svhn-cropped": "svhn"}


def normalise_dataset(name: str | None) -> str | None:
    """Lower-case dataset names, with common spellings mapped to the readers' names ("CIFAR-10" -> "cifar10")."""
    if not name:
        return None
    key = name.strip().lower()
    return _DATASET_ALIASES.get(key, key)


def _centroids(meta: dict) -> int | None:
    for where in (meta, _mapping(meta, "kmeans"), _mapping(meta, "config"), _mapping(meta, "options")):
        for key in ("n_centroids", "centroids", "k", "n_clusters", "num_centroids"):
            value = where.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def max_feature_units(meta: dict, family: str) -> int | None:
    """The paper's "max # of feature units": the widest layer's channel count (k-means: the centroids)."""
    explicit = meta.get("max_feature_units")
    if isinstance(explicit, int) and not isinstance(explicit, bool):
        return explicit
    if family == "kmeans":
        return _centroids(meta)
    if family in ("dcgan", "random-d"):
        channels = meta.get("channels")
        if isinstance(channels, list) and channels and all(isinstance(c, int) for c in channels):
            return max(channels)
        dims, grid = meta.get("dims_per_layer"), meta.get("grid")
        values = list(dims.values()) if isinstance(dims, dict) else dims
        if isinstance(values, list) and values and isinstance(grid, int) and grid > 0:
            if all(isinstance(d, int) and d % (grid * grid) == 0 for d in values):
                return max(values) // (grid * grid)
    return None


def probe_label(obj: dict, meta: dict, family: str, fallback: str) -> str:
    """The row label of a probe result.

    1. ``label`` or ``model`` (a string) at the top level of the result, used verbatim;
    2. ``label`` or ``model`` (a string) in ``features_meta``;
    3. built from the family: "DCGAN (<preset>) + L2-SVM", "Random-weight D (<preset>) + L2-SVM",
       "k-means (<k> centroids) + L2-SVM", "Raw pixels + L2-SVM", "<source> + L2-SVM";
    4. the result file's name without extension.
    """
    for where in (obj, meta):
        for key in ("label", "model"):
            if where is meta and key == "model" and family == "network":
                continue  # a torchvision store's "model" is the architecture's name, labelled below
            text = _string(where, key)
            if text:
                return text
    if family == "network":
        return network_label(meta)
    preset = _string(meta, "preset")
    details = [preset] if preset else []
    if family in ("dcgan", "random-d"):
        details += variant_details(meta)
    elif family == "vae":  # its prior is always N(0, I): only the widths set one apart
        details += variant_details({**meta, "loss": None, "model": {**_mapping(meta, "model"), "latent": None}})
    trained_on = _string(meta, "trained_on") if family in ("dcgan", "vae") else None
    converted = meta.get("converted") if isinstance(meta.get("converted"), dict) else {}
    if family == "dcgan" and converted:
        release = f"the DCGAN authors' {converted.get('model')} release"
        trained_on = release + (f", epoch {converted['epoch']}" if converted.get("epoch") is not None else "")
        if converted.get("channel_order") == "bgr":
            details.append("BGR input")
    suffix = ", ".join(details) + (f"; trained on {trained_on}" if trained_on else "")
    suffix = f" ({suffix.lstrip('; ')})" if suffix else ""
    if family == "dcgan":
        return f"DCGAN{suffix} + L2-SVM"
    if family == "random-d":
        return f"Random-weight D{suffix} + L2-SVM"
    if family == "vae":
        return f"VAE{suffix} + L2-SVM"
    if family == "kmeans":
        k = _centroids(meta)
        return f"k-means ({k} centroids) + L2-SVM" if k else "k-means + L2-SVM"
    if family == "pixels":
        return "Raw pixels + L2-SVM"
    source = _string(meta, "source")
    return f"{source} + L2-SVM" if source else fallback


def network_label(meta: dict) -> str:
    """A torchvision model's row label: its name, its weights and the layers read.

    >>> network_label({"model": "resnet18", "weights": None, "layer_names": ["layer1", "layer2"]})
    'resnet18 (torchvision, random weights; layer1, layer2) + L2-SVM'
    """
    name = _string(meta, "model") or "network"
    weights = meta.get("weights")
    which = "random weights" if not weights else f"weights {Path(str(weights)).name}"
    names = meta.get("layer_names")
    layers = f"; {', '.join(map(str, names))}" if isinstance(names, list) and names else ""
    return f"{name} (torchvision, {which}{layers}) + L2-SVM"


def layer_subset(meta: dict) -> list[int] | None:
    """The 0-based conv layers a store holds when they are a strict subset of its model's layers, else None.

    >>> layer_subset({"layers": [0, 1, 2, 3], "model": {"image_size": 32, "d_stride1_pairs": True}})
    [0, 1, 2, 3]
    >>> layer_subset({"layers": [0, 1, 2], "model": {"image_size": 32, "d_stride1_pairs": False}}) is None
    True
    """
    layers, model = meta.get("layers"), meta.get("model")
    if not isinstance(layers, list) or not isinstance(model, dict) or not all(isinstance(i, int) for i in layers):
        return None
    size = model.get("image_size")
    if not isinstance(size, int) or size < 8:
        return None
    n = (size // 4).bit_length() - 1  # stride-2 stages: log2(size / 4)
    n *= 2 if model.get("d_stride1_pairs") else 1
    n += meta.get("source") == "vae"  # a VAE encoder's last layer is mu
    return sorted(layers) if sorted(set(layers)) != list(range(n)) else None


def describe_layers(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 3]`` -> "conv1-4"; ``[2]`` -> "conv3"; ``[0, 2]`` -> "conv1,3".

    >>> describe_layers([0, 1, 2, 3]), describe_layers([2]), describe_layers([0, 2])
    ('conv1-4', 'conv3', 'conv1,3')
    """
    layers = sorted(layers)
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"conv{layers[0] + 1}-{layers[-1] + 1}"
    return "conv" + ",".join(str(i + 1) for i in layers)


def describe_store_layers(meta: dict, layers: Sequence[int]) -> str:
    """The layers of a store subset, by name where they are not all conv layers: a VAE's ``mu`` is "mu (M1)".

    >>> describe_store_layers({"source": "vae", "layers": [6], "layer_names": ["mu"]}, [6])
    'mu (M1)'
    >>> describe_store_layers({"source": "vae", "layers": [0, 1, 2], "layer_names": ["conv1", "conv2", "conv3"]},
    ...                       [0, 1, 2])
    'conv1-3'
    """
    names = meta.get("layer_names")
    have = meta.get("layers")
    if not isinstance(names, list) or not isinstance(have, list) or len(names) != len(have) or "mu" not in names:
        return describe_layers(layers)
    by_index = dict(zip(have, names))
    conv = [i for i in layers if by_index.get(i) != "mu"]
    parts = [describe_layers(conv)] if conv else []
    if any(by_index.get(i) == "mu" for i in layers):
        parts.append("mu (M1)")
    return " + ".join(parts)


LOSS_NAMES = {"ls": "least-squares loss", "hinge": "hinge loss", "bce": "BCE loss"}


def variant_details(meta: dict) -> list[str]:
    """What sets a GAN variant apart from its preset, for row labels: other widths, a non-default loss or prior.

    >>> variant_details({"preset": "small32", "loss": "ls", "model": {"latent": "mog", "mog_components": 50}})
    ['least-squares loss', 'mog latent (50 components)']
    >>> variant_details({"preset": "small32", "loss": "bce", "model": {"latent": "normal"}})
    []
    >>> variant_details({"preset": "paper32", "model": {"ndf": 32, "ngf": 32, "latent": "uniform"}})
    ['ndf 32, ngf 32']
    """
    from ..models.config import PRESETS

    out = []
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    preset = PRESETS.get(str(meta.get("preset")))
    if preset is not None:
        widths = [f"{k} {model[k]}" for k in ("ndf", "ngf") if k in model and model[k] != getattr(preset, k, None)]
        if widths:
            out.append(", ".join(widths))
    loss = meta.get("loss")
    if isinstance(loss, str) and loss != "bce":
        out.append(LOSS_NAMES.get(loss, f"{loss} loss"))
    latent = model.get("latent")
    if isinstance(latent, str) and (preset is None or latent != preset.latent):
        if preset is not None or latent != "normal":
            extra = f" ({model.get('mog_components')} components)" if latent == "mog" else ""
            out.append(f"{latent} latent{extra}")
    return out


def _family(obj: dict, meta: dict) -> str:
    fam = normalise_family(obj.get("family")) or normalise_family(meta.get("source")) \
        or normalise_family(meta.get("kind")) or normalise_family(meta.get("method"))
    if fam == "dcgan" and (meta.get("random_weights") is True or meta.get("weights") == "random"):
        fam = "random-d"
    return fam or "other"


def _data_checksums(obj: dict, meta: dict) -> dict[str, Any]:
    """``features_meta["data"]`` ({split: description}) or a top-level ``data`` mapping."""
    data = _mapping(meta, "data") or _mapping(obj, "data")
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out[str(name)] = {k: v for k, v in value.items() if isinstance(v, (str, int, float)) or v is None}
        elif isinstance(value, str):
            out[str(name)] = {"sha256": value}
    return out


def _store_meta(obj: dict, base: Path) -> dict:
    """When a result names its feature store (``features``/``feature_store``) but does not embed its meta.json,
    read FEATS/meta.json if that directory exists (relative paths: from the working directory, then from the
    result file's directory)."""
    for key in ("features", "feature_store", "store"):
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            continue
        for root in (Path(value), base / value):
            meta_file = root / "meta.json"
            if meta_file.is_file():
                try:
                    meta = json.loads(meta_file.read_text())
                except (OSError, ValueError):
                    return {}
                return meta if isinstance(meta, dict) else {}
    return {}


HELD_OUT = "held out of train"
TEST_SPLIT = "test split"


def evaluation_images(meta: dict) -> str | None:
    """On which images a probe's accuracy was measured: :data:`HELD_OUT` when the feature store's test rows were
    held out of the dataset's training images (``meta["holdout"]``, as ``extract --holdout`` and ``kmeans
    --holdout`` record it), :data:`TEST_SPLIT` when they are the dataset's own test split, None when the store
    does not say.

    >>> evaluation_images({"holdout": 10000}), evaluation_images({"holdout": None, "data": {"test": {"split": "test"}}})
    ('held out of train', 'test split')
    """
    holdout = meta.get("holdout")
    if isinstance(holdout, dict) or (isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and holdout):
        return HELD_OUT
    test = _mapping(_mapping(meta, "data"), "test")
    if "holdout" in meta or test.get("split") == "test":
        return TEST_SPLIT
    return None


def model_selection(obj: dict) -> tuple[int | None, bool]:
    """``(labelled validation rows that chose the hyperparameters, whether they were fixed by the user)`` from
    the result's ``C_selection`` (``knn_selection`` for kNN results).

    >>> model_selection({"C_selection": {"mode": "auto", "val_size": 4000}}), model_selection({"C": 0.1})
    ((4000, False), (None, True))
    """
    selection = _mapping(obj, "C_selection") or _mapping(obj, "knn_selection")
    if selection.get("mode") == "fixed" or (not selection and obj.get("C") is not None):
        return None, True
    size = selection.get("val_size", obj.get("n_val"))
    valid = isinstance(size, int) and not isinstance(size, bool) and size > 0
    return (size if valid else None), False


def _curve(selection: dict, where: str) -> list[tuple[float, float]]:
    curve = selection.get("curve")
    if curve is None:
        return []
    points = []
    if isinstance(curve, list):
        for item in curve:
            if isinstance(item, dict):
                item = [item.get("C"), item.get("val_accuracy", item.get("accuracy"))]
            if (isinstance(item, (list, tuple)) and len(item) >= 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item[:2])):
                points.append((float(item[0]), float(item[1])))
            else:
                raise ResultError(f"{where}: C_selection.curve must be a list of [C, val_accuracy] pairs, "
                                  f"found {item!r}")
    else:
        raise ResultError(f"{where}: C_selection.curve must be a list of [C, val_accuracy] pairs")
    return points


def _floats(value: Any, where: str, key: str) -> list[float]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise ResultError(f"{where}: {key!r} must be a list of numbers")
    return [float(v) for v in value]


# ----------------------------------------------------------------------------------------------- parsers


def is_probe(obj: dict) -> bool:
    return "protocol" in obj and ("accuracy" in obj or "error" in obj)


def is_sample_quality(obj: dict) -> bool:
    return (obj.get("metric") in SAMPLE_METRICS or "inception_score_mean" in obj
            or ("fid" in obj and not isinstance(obj.get("fid"), dict)))


def _draw_accuracies(value: Any) -> Any:
    """``per_draw`` is a list of numbers, or (as `gan-probe svm` writes it) of objects with an ``accuracy``."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "accuracy" in v for v in value):
        return [v["accuracy"] for v in value]
    return value


def parse_probe(obj: dict, path: str) -> ProbeResult:
    """Normalise a ``gan-probe svm --json`` object (see the module docstring for the keys used)."""
    where = path
    protocol = protocol_name(obj.get("protocol"))
    if protocol not in PROTOCOLS:
        raise ResultError(f"{where}: 'protocol' must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    accuracy, error = _fraction(obj, "accuracy", where), _fraction(obj, "error", where)
    if accuracy is None and error is None:
        raise ResultError(f"{where}: needs 'accuracy' or 'error' (a fraction in [0, 1])")
    if accuracy is not None and error is not None and abs(accuracy + error - 1.0) > 1e-4:
        raise ResultError(f"{where}: 'accuracy' {accuracy:g} and 'error' {error:g} do not add up to 1")
    accuracy = 1.0 - error if accuracy is None else accuracy
    error = 1.0 - accuracy if error is None else error
    std = _fraction(obj, "accuracy_std", where)
    if std is None:
        std = _fraction(obj, "error_std", where)
    meta = _mapping(obj, "features_meta") or _store_meta(obj, Path(path).parent)
    family = _family(obj, meta)
    dataset = normalise_dataset(_string(obj, "dataset") or _string(meta, "dataset"))
    n_classes = _integer(obj, "n_classes", where)
    if n_classes is None:
        classes = meta.get("classes", meta.get("n_classes"))
        if isinstance(classes, list):
            n_classes = len(classes)
        elif isinstance(classes, int) and not isinstance(classes, bool):
            n_classes = classes
        else:
            split = _mapping(_mapping(meta, "data"), "train")
            n_classes = split.get("classes") if isinstance(split.get("classes"), int) else None
    if n_classes is None and dataset is not None:
        n_classes = DEFAULT_CLASSES.get(dataset)
    selection = _mapping(obj, "C_selection")
    c_chosen = _number(selection, "chosen", f"{where} C_selection")
    C = _number(obj, "C", where)
    labels_per_class = _integer(obj, "labels_per_class", where)
    n_train = _integer(obj, "n_train", where)
    if labels_per_class is None and protocol == "svhn" and n_train and n_classes:
        labels_per_class = n_train // n_classes if n_train % n_classes == 0 else None
    selection_labels, fixed = model_selection(obj)
    fallback = Path(path).stem
    label = probe_label(obj, meta, family, fallback)
    layers = layer_subset(meta)
    model_label = label
    if layers is not None:
        suffix = " + L2-SVM"
        stem = label[:-len(suffix)] if label.endswith(suffix) else label
        label = f"{stem}, {describe_store_layers(meta, layers)}" + (suffix if label.endswith(suffix) else "")
    vote = obj.get("vote") if isinstance(obj.get("vote"), str) else None
    if obj.get("classifier") == "knn":  # the same rows, another classifier on the features
        suffix = " + kNN" + (f" ({vote} vote)" if vote else "")
        label, model_label = (text.replace(" + L2-SVM", suffix) for text in (label, model_label))
    return ProbeResult(
        path=path, label=label, layers=layers, model_label=model_label, family=family, dataset=dataset,
        protocol=protocol, labels_per_class=labels_per_class, n_classes=n_classes, accuracy=accuracy,
        accuracy_std=std, error=error, C=C if C is not None else c_chosen, n_train=n_train,
        n_test=_integer(obj, "n_test", where), n_features=_integer(obj, "n_features", where)
        or (meta.get("n_features") if isinstance(meta.get("n_features"), int) else None),
        draws=_integer(obj, "draws", where), solver=_string(obj, "solver"), seconds=_number(obj, "seconds", where),
        c_grid=_floats(selection.get("grid"), where, "C_selection.grid"), c_curve=_curve(selection, where),
        c_chosen=c_chosen if c_chosen is not None else C,
        per_draw=_floats(_draw_accuracies(obj.get("per_draw")), where, "per_draw"),
        max_feature_units=max_feature_units(meta, family), checkpoint=_string(meta, "checkpoint"),
        checkpoint_sha256=_string(meta, "checkpoint_sha256"), preset=_string(meta, "preset"),
        data=_data_checksums(obj, meta), features_meta=meta, provenance=_mapping(obj, "provenance"),
        evaluated_on=evaluation_images(meta), selection_labels=selection_labels, hyperparameters_fixed=fixed,
        classifier="knn" if obj.get("classifier") == "knn" else "svm", vote=vote)


def describe_source(value: Any) -> str | None:
    """A short human description of a sample source (a string, or a dict from the metric commands)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in ("label", "description", "name"):
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key].strip()
        ckpt = value.get("checkpoint")
        if not (isinstance(ckpt, str) and ckpt) and value.get("kind") == "checkpoint":
            ckpt = value.get("path")
        if isinstance(ckpt, str) and ckpt:
            p = Path(ckpt)
            where = f"{p.parent.name}/{p.name}" if p.parent.name else p.name
            step = value.get("step")
            return f"G samples ({where}{f', step {step}' if isinstance(step, int) else ''})"
        parts = [str(value[k]) for k in ("dataset", "split") if isinstance(value.get(k), str)]
        if parts:
            return " ".join(parts) + " images"
        if isinstance(value.get("path"), str):
            return Path(value["path"]).name
        if isinstance(value.get("kind"), str):
            n = value.get("n")
            return f"{value['kind']}" + (f" ({n} images)" if isinstance(n, int) else "")
    return None


def parse_sample_quality(obj: dict, path: str) -> SampleQualityResult:
    """Normalise a ``gan-probe inception-score --json`` / ``gan-probe fid --json`` object."""
    where = path
    metric = obj.get("metric")
    if metric is not None and metric not in SAMPLE_METRICS:
        raise ResultError(f"{where}: 'metric' must be one of {', '.join(SAMPLE_METRICS)}, got {metric!r}")
    is_mean = _number(obj, "inception_score_mean", where)
    if is_mean is None and metric == "inception_score":
        is_mean = _number(obj, "inception_score", where)
        if is_mean is None:
            is_mean = _number(obj, "value", where)
    fid = _number(obj, "fid", where)
    if fid is None and metric == "fid":
        fid = _number(obj, "value", where)
    if is_mean is None and fid is None:
        raise ResultError(f"{where}: a {metric or 'sample-quality'} result needs a numeric "
                          f"{'value' if metric else 'inception_score_mean or fid'}")
    is_std = _number(obj, "inception_score_std", where)
    sources = obj.get("sources") if isinstance(obj.get("sources"), list) else []
    generated = _first(obj.get("samples"), obj.get("source"), obj.get("source1"), obj.get("generated"),
                       obj.get("a"), sources[0] if sources else None)
    reference = _first(obj.get("reference"), obj.get("source2"), obj.get("real"), obj.get("b"),
                       sources[1] if len(sources) > 1 else None)
    label = _string(obj, "label") or _string(obj, "model") or describe_source(generated) or Path(path).stem
    conventions = _mapping(obj, "conventions")
    n_samples = _first(*(_integer(obj, k, where) for k in ("n_samples", "num_samples", "n", "n_a")))
    splits = _first(*(_integer(obj, k, where) for k in ("splits", "n_splits")),
                    _integer(conventions, "splits", f"{where} conventions"))
    extractor = obj.get("extractor") or obj.get("extractor_a")
    if isinstance(extractor, dict):
        name = extractor.get("extractor") or extractor.get("name") or extractor.get("network")
        sha = extractor.get("sha256")
        extractor = (f"{name}" if name else "network") + (f" (sha256 {str(sha)[:12]})" if sha else "")
    warnings = obj.get("warnings") if isinstance(obj.get("warnings"), list) else []
    return SampleQualityResult(
        path=path, label=label, inception_score=is_mean, inception_score_std=is_std, fid=fid,
        reference=describe_source(reference), n_samples=n_samples, splits=splits,
        seconds=_number(obj, "seconds", where), conventions=conventions,
        extractor=extractor if isinstance(extractor, str) else None, warnings=[str(w) for w in warnings],
        source=generated, provenance=_mapping(obj, "provenance"),
        dataset=normalise_dataset(reference.get("dataset")) if isinstance(reference, dict)
        and isinstance(reference.get("dataset"), str) else None)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def read_json_object(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: cannot read the file ({type(exc).__name__}: {exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise ResultError(f"{path}: expected a JSON object, got a {type(obj).__name__}")
    return obj


def load_result_file(path: str | os.PathLike) -> ProbeResult | SampleQualityResult:
    """Read one result JSON; raises :class:`ResultError` naming the file if it is not a result."""
    path = Path(path)
    obj = read_json_object(path)
    if is_probe(obj):
        return parse_probe(obj, str(path))
    if is_sample_quality(obj):
        return parse_sample_quality(obj, str(path))
    keys = ", ".join(sorted(obj)[:8]) or "none"
    raise ResultError(f"{path}: not a gan-probe result (expected an svm result with 'protocol' and 'accuracy', "
                      f"or an inception-score/fid result with 'metric'); its keys: {keys}")


# ----------------------------------------------------------------------------------------------- directories


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        (path / name).exists() for name in ("log.csv", "checkpoint.pt", "samples"))


def is_feature_store(path: Path) -> bool:
    """A feature store directory, plain or sharded (``shards.json``): skipped when searching for results."""
    return (path / "meta.json").is_file() and ((path / "train_features.npy").exists()
                                               or (path / "shards.json").is_file())


def read_log_csv(log_path: Path) -> tuple[list[dict[str, float]], str | None]:
    """log.csv rows as floats. A bad last line (a run still writing it) is dropped with a note; a bad line
    elsewhere raises :class:`ResultError`."""
    import csv

    try:
        with open(log_path, newline="") as fh:
            lines = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ResultError(f"{log_path}: cannot read the file ({exc})") from None
    rows: list[dict[str, float]] = []
    for i, row in enumerate(lines, start=2):
        problem = None
        if None in row or any(v is None for v in row.values()):
            problem = "has a different number of fields than the header"
        else:
            try:
                rows.append({k: float(v) for k, v in row.items() if v != ""})
            except ValueError:
                problem = "holds a non-numeric value"
        if problem is not None:
            if i == len(lines) + 1:
                return rows, f"{log_path}: line {i} is incomplete (a run still writing?); left out"
            raise ResultError(f"{log_path}: line {i} {problem}")
    return rows, None


def load_run_dir(path: str | os.PathLike, notes: list[str] | None = None) -> RunDir:
    """Read a training run directory: config.json, log.csv (optional), samples/*.png, checkpoint.pt."""
    path = Path(path)
    config = read_json_object(path / "config.json")
    log: list[dict[str, float]] = []
    log_path = path / "log.csv"
    if log_path.is_file():
        log, note = read_log_csv(log_path)
        if note and notes is not None:
            notes.append(note)
    samples = sorted(str(p) for p in (path / "samples").glob("*.png")) if (path / "samples").is_dir() else []
    checkpoint = path / "checkpoint.pt"
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    parts = [str(train[k]) for k in ("dataset", "preset") if isinstance(train.get(k), str)]
    label = path.resolve().name + (f" ({', '.join(parts)})" if parts else "")
    return RunDir(path=str(path), label=label, config=config, log=log, samples=samples,
                  checkpoint=str(checkpoint) if checkpoint.is_file() else None)


def load_image(path: str | os.PathLike) -> ImageInput:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ResultError(f"{path}: cannot read the file ({exc})") from None
    if head != PNG_MAGIC:
        raise ResultError(f"{path}: not a PNG image")
    return ImageInput(path=str(path), label=path.stem.replace("_", " "))


def _add(results: Results, record: Any) -> None:
    {"probe": results.probes, "sample_quality": results.samples, "run": results.runs,
     "image": results.images}[record.kind].append(record)


def _scan(root: Path, results: Results, seen: set[Path]) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        keep = []
        for name in dirnames:
            sub = here / name
            if name.startswith("."):
                continue
            if is_run_dir(sub):
                if sub.resolve() not in seen:
                    seen.add(sub.resolve())
                    _add(results, load_run_dir(sub, results.notes))
            elif is_feature_store(sub):
                continue
            elif (sub / "report.json").is_file():
                results.notes.append(f"{sub}: skipped (a gan-probe report directory)")
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if not name.endswith(".json") or name.startswith("."):
                continue
            file = here / name
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            obj = read_json_object(file)
            if is_probe(obj):
                _add(results, parse_probe(obj, str(file)))
            elif is_sample_quality(obj):
                _add(results, parse_sample_quality(obj, str(file)))
            else:
                results.notes.append(f"{file}: skipped (not a result file)")


def load_results(paths: Iterable[str | os.PathLike], unique_labels: bool = True) -> Results:
    """Read result JSONs, run directories, PNGs and directories holding them (see the module docstring)."""
    results = Results()
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        results.inputs.append(str(path))
        if not path.exists():
            raise ResultError(f"{path}: no such file or directory")
        if path.is_dir():
            if is_run_dir(path):
                if path.resolve() not in seen:
                    seen.add(path.resolve())
                    _add(results, load_run_dir(path, results.notes))
            elif (path / "report.json").is_file():
                raise ResultError(f"{path}: is a gan-probe report directory, not results; pass the result files "
                                  f"or run directories it was built from")
            elif is_feature_store(path):
                raise ResultError(f"{path}: is a feature store; run `gan-probe svm --features {path} --json ...` "
                                  f"and pass the result JSON")
            else:
                before = len(results)
                _scan(path, results, seen)
                if len(results) == before:
                    raise ResultError(f"{path}: no result JSONs or run directories found in this directory")
            continue
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        suffix = path.suffix.lower()
        if suffix == ".json":
            _add(results, load_result_file(path))
        elif suffix == ".png":
            _add(results, load_image(path))
        else:
            raise ResultError(f"{path}: unsupported input (expected a result .json, a run directory, a directory "
                              f"of results or a .png figure)")
    if unique_labels:
        results.notes.extend(make_labels_unique(results))
    return results


# ----------------------------------------------------------------------------------------------- labels


def _probe_slot(r: ProbeResult) -> tuple:
    return (r.dataset, r.protocol, r.labels_per_class if r.protocol != "full" else None)


def _short_checkpoint(r: ProbeResult) -> str:
    if r.checkpoint:
        p = Path(r.checkpoint)
        return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    return (r.checkpoint_sha256 or "")[:8]


def make_labels_unique(results: Results) -> list[str]:
    """Make row labels unambiguous, in place; returns notes describing what was renamed.

    Probe results with the same label but different checkpoints get the checkpoint appended
    ("DCGAN (paper32) + L2-SVM [run_a/checkpoint.pt]"); two results that would fill the same table cell
    (same label, dataset, protocol and labels per class) get their file name appended. Sample-quality results
    with the same label and the same metric get their file name appended.
    """
    notes: list[str] = []
    by_label: dict[str, list[ProbeResult]] = defaultdict(list)
    for r in results.probes:
        by_label[r.label].append(r)
    for label, group in by_label.items():
        idents = {(r.checkpoint_sha256 or r.checkpoint or "") for r in group}
        if len(idents) > 1:
            for r in group:
                tag = _short_checkpoint(r)
                if tag:
                    r.label = f"{label} [{tag}]"
            notes.append(f"label {label!r} is shared by results from different checkpoints; the checkpoint was "
                         f"appended to tell them apart")
    slots: dict[tuple, list[ProbeResult]] = defaultdict(list)
    for r in results.probes:
        slots[(r.label, *_probe_slot(r))].append(r)
    for key, group in slots.items():
        if len(group) > 1:
            for r in group:
                r.label = f"{key[0]} [{Path(r.path).stem}]"
            notes.append(f"{len(group)} results for {key[0]!r} on the same dataset and protocol; shown as separate "
                         f"rows named after their files")
    sq: dict[tuple, list[SampleQualityResult]] = defaultdict(list)
    for s in results.samples:
        for metric in ("inception_score", "fid"):
            if getattr(s, metric) is not None:
                sq[(s.label, metric)].append(s)
    renamed: set[int] = set()
    for (label, _), group in sq.items():
        if len(group) > 1:
            for s in group:
                if id(s) not in renamed:
                    s.label = f"{label} [{Path(s.path).stem}]"
                    renamed.add(id(s))
            notes.append(f"{len(group)} sample-quality results for {label!r}; shown as separate rows named after "
                         f"their files")
    return notes


def by_kind(records: Sequence[Any], kind: str) -> list[Any]:
    return [r for r in records if getattr(r, "kind", None) == kind]
