"""Synthetic result files for the report tests (plain data in the formats `gan-probe svm/inception-score/fid
--json` and `gan-probe train` write). Not collected by pytest."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

GRID = [1e-4, 1e-3, 1e-2]
DATA = {"train": {"dataset": "cifar10", "split": "train", "n": 50000, "sha256": "a" * 64},
        "test": {"dataset": "cifar10", "split": "test", "n": 10000, "sha256": "b" * 64}}
METAS = {
    "dcgan": {"source": "dcgan", "checkpoint": "runs/a/checkpoint.pt", "checkpoint_sha256": "c" * 64,
              "preset": "paper32", "channels": [128, 128, 256, 256, 512, 512], "grid": 4, "n_features": 28672,
              "dataset": "cifar10", "data": DATA, "seconds": 40.0,
              "provenance": {"command": "gan-probe extract --checkpoint runs/a/checkpoint.pt --out feats/d"}},
    "random-d": {"source": "random-d", "checkpoint": None, "init_seed": 0, "preset": "paper32", "grid": 4,
                 "dims_per_layer": {"conv1": 2048, "conv2": 8192}, "dataset": "cifar10", "data": DATA},
    "kmeans": {"source": "k-means", "n_centroids": 1600, "dataset": "cifar10", "data": DATA},
    "pixels": {"source": "pixels", "dataset": "cifar10", "data": DATA},
}


def probe(family: str = "dcgan", protocol: str = "few-labels", accuracy: float = 0.738,
          accuracy_std: float | None = 0.004, labels_per_class: int | None = 400, dataset: str = "cifar10",
          **extra) -> dict:
    obj = {"dataset": dataset, "protocol": protocol, "accuracy": accuracy, "accuracy_std": accuracy_std,
           "error": round(1 - accuracy, 10), "C": 1e-3, "n_train": 50000 if protocol == "full" else 4000,
           "n_test": 10000, "n_features": 28672, "draws": 1 if protocol == "full" else 10, "solver": "lbfgs",
           "seconds": 12.5, "C_selection": {"grid": GRID, "curve": [[c, accuracy - 0.01 * i] for i, c in
                                                                    enumerate(GRID)], "chosen": 1e-4},
           "per_draw": [accuracy] * 3, "features_meta": dict(METAS[family]),
           "provenance": {"created": "2026-01-01T00:00:00+00:00", "gan_probe_commit": "abc123",
                          "versions": {"python": "3.12", "torch": "2.4"}, "device": {"device": "cpu"},
                          "seeds": {"seed": 0}, "command": f"gan-probe svm feats/{family} --protocol {protocol}"}}
    if protocol != "full" and labels_per_class is not None:
        obj["labels_per_class"] = labels_per_class
    obj.update(extra)
    return obj


def inception(value: float = 6.41, std: float = 0.07, **extra) -> dict:
    obj = {"metric": "inception_score", "inception_score_mean": value, "inception_score_std": std, "n": 50000,
           "conventions": {"splits": 10}, "source": {"kind": "checkpoint", "checkpoint": "runs/a/checkpoint.pt"},
           "seconds": 3.0, "provenance": {"command": "gan-probe inception-score runs/a/checkpoint.pt"}}
    obj.update(extra)
    return obj


def fid(value: float = 37.41, **extra) -> dict:
    obj = {"metric": "fid", "fid": value, "n_a": 10000,
           "a": {"kind": "checkpoint", "checkpoint": "runs/a/checkpoint.pt"},
           "b": {"kind": "dataset", "dataset": "cifar10", "split": "train"}, "seconds": 4.0,
           "provenance": {"command": "gan-probe fid runs/a/checkpoint.pt dataset:cifar10"}}
    obj.update(extra)
    return obj


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def run_dir(path: Path, steps: int = 20, with_samples: bool = True, probe_every: int | None = None) -> Path:
    """A training run directory as `gan-probe train` leaves it (without a checkpoint); with ``probe_every`` its log
    has the online probe's columns (accuracy rising to a peak at step 10, then falling)."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"train": {"dataset": "digits", "preset": "small32", "seed": 3, "device": "cpu"},
              "model": {"preset": "small32"},
              "data": {"dataset": "digits", "split": "train", "n": 1347, "sha256": "d" * 64}}
    if probe_every is not None:
        config["probe"] = {"dataset": "digits", "images": 400, "layers": None, "C": 3e-4, "seed": 0, "n_fit": 300,
                           "n_val": 100, "n_classes": 10}
    write(path / "config.json", config)
    fields = ("step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s", "seconds")
    if probe_every is not None:
        fields += ("probe_acc", "probe_seconds")
    with open(path / "log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        for s in range(1, steps + 1):
            row = {"step": s, "epoch": s / 10, "loss_d": 1.4 - s / 40, "loss_g": 0.7 + s / 30,
                   "d_real": 0.5 + s / 100, "d_fake": 0.5 - s / 100, "images_per_s": 100.0, "seconds": s * 0.5}
            if probe_every is not None and (s % probe_every == 0 or s == steps):
                row.update(probe_acc=0.5 - abs(s - 10) / 100, probe_seconds=0.25)
            w.writerow(row)
    if with_samples:
        rng = np.random.default_rng(0)
        for s in (10, steps):
            img = rng.integers(0, 256, (70, 70, 3), dtype=np.uint8)
            (path / "samples").mkdir(exist_ok=True)
            Image.fromarray(img).save(path / "samples" / f"step_{s:07d}.png")
    return path
