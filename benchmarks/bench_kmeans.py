"""Benchmark the Coates & Ng k-means baseline on the real CIFAR-10 training JPEGs.

    python benchmarks/bench_kmeans.py --data /tmp/gp_data/cifar10 [--encode-images 2000] [--full]

Data: ``../shared/data/cifar10-train-jpeg.tar.gz`` extracted to ``--data`` (``train/<class>/*.jpg``). Read with
``load_split("cifar10", ...)``.

Printed, each against an anchor measured in the same run:

* encoding: a plain torch implementation (unfold-style patches, normalise, whiten, ``xx + cc - 2 x c^T``,
  sqrt, mean, relu, quadrant slices; one batch at a time with torch's own threading, run with 1 and with the
  default number of threads) versus :class:`KMeansDictionary.encode`, on the same images and dictionary;
  the features must agree;
* k-means: seconds per Lloyd iteration of ours versus scikit-learn's ``KMeans(algorithm="lloyd")`` from the
  same initial centroids on the same whitened patches;
* with ``--end-to-end`` (alone): ``gan-probe kmeans --centroids K --holdout 10000`` on every image, then
  ``gan-probe svm`` with C chosen among ``--C-grid`` (default 1e-4 .. 1e-1, where k-means features' best C lies)
  against the same ``svm`` with ``--settle 0`` (every grid fit to the tolerance) on the same features;
* with ``--full``: the complete dictionary (400,000 patches, 50 iterations) and the encoding of every image,
  extrapolated to CIFAR-10's 60,000 images, plus peak memory of encoding with 4,000 centroids.

Timings on a shared machine are noisy; the ratios are what to compare.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gan_probe.baselines import KMeansConfig, KMeansDictionary, learn_dictionary, lloyd_kmeans
from gan_probe.baselines.patches import normalise_patches_, sample_patches
from gan_probe.baselines.whitening import fit_zca


def load_cifar_jpegs(root: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """The CIFAR-10 training images under ``root`` (official pickles or train/<class>/ image folders)."""
    from gan_probe.data import load_split

    split = load_split("cifar10", str(root), "train", progress=False)
    return np.asarray(split.images), np.asarray(split.labels), "gan_probe.data.load_split('cifar10')"


def plain_encode(images: np.ndarray, d: KMeansDictionary, batch: int = 32) -> np.ndarray:
    """The straightforward torch implementation used as the anchor (same maths, no fusion)."""
    c = torch.from_numpy(d.centroids)
    cc = (c * c).sum(1)
    mean = torch.from_numpy(d.mean).float()
    white = torch.from_numpy(d.whitening).float()
    p = d.config.patch
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).float()                  # (B, H, W, C)
        b = x.shape[0]
        patches = x.unfold(1, p, 1).unfold(2, p, 1)                                 # (B, gh, gw, C, p, p)
        gh, gw = patches.shape[1:3]
        patches = patches.permute(0, 1, 2, 4, 5, 3).reshape(-1, p * p * x.shape[3])
        patches = (patches - patches.mean(1, keepdim=True)) / torch.sqrt(patches.var(1, keepdim=True) + 10)
        patches = (patches - mean) @ white
        xx = (patches * patches).sum(1, keepdim=True)
        z = torch.sqrt(torch.clamp(xx + cc - 2 * patches @ c.T, min=0))
        f = torch.relu(z.mean(1, keepdim=True) - z).view(b, gh, gw, -1)
        hr, hc = (gh + 1) // 2, (gw + 1) // 2
        out.append(torch.cat([f[:, :hr, :hc].sum((1, 2)), f[:, :hr, hc:].sum((1, 2)),
                              f[:, hr:, :hc].sum((1, 2)), f[:, hr:, hc:].sum((1, 2))], 1).numpy())
    return np.concatenate(out)


CPU_SECONDS: dict[int, float] = {}


def timed(fn, *args, **kwargs):
    """(value, wall seconds); the CPU seconds of the call (all threads) go to CPU_SECONDS[id(value)]."""
    t, c = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    CPU_SECONDS[id(value)] = time.process_time() - c
    return value, time.perf_counter() - t


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def with_threads(n: int, fn, *args, **kwargs):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return timed(fn, *args, **kwargs)
    finally:
        torch.set_num_threads(before)


def bench_encoding(images: np.ndarray, d: KMeansDictionary, n: int) -> None:
    sub = images[:n]
    threads = torch.get_num_threads()
    ours, t_ours = timed(d.encode, sub, batch_size=256)
    c_ours = CPU_SECONDS[id(ours)]
    plain1, t_plain1 = with_threads(1, plain_encode, sub, d)
    c_plain1 = CPU_SECONDS[id(plain1)]
    plain, t_plain = with_threads(threads, plain_encode, sub, d)
    ours2, t_ours2 = timed(d.encode, sub, batch_size=256)
    c_ours = min(c_ours, CPU_SECONDS[id(ours2)])
    err = float(np.abs(ours - plain).max() / np.abs(plain).max())
    t_ours = min(t_ours, t_ours2)
    best_plain = min(t_plain, t_plain1)
    per60k = 60_000 / n / 60
    print(f"encode {n} images, K={len(d.centroids)}: ours {t_ours:.1f} s ({t_ours * per60k:.1f} min/60k) | "
          f"plain torch {t_plain:.1f} s with {threads} threads, {t_plain1:.1f} s with 1 thread "
          f"({best_plain * per60k:.1f} min/60k at best)")
    print(f"  speed-up vs the plain anchor: {best_plain / t_ours:.2f}x wall (vs its best thread setting), "
          f"{t_plain / t_ours:.2f}x (vs default threads); max relative difference {err:.1e}")
    print(f"  CPU time: ours {c_ours / n * 1e3:.2f} ms/image ({c_ours * per60k / threads:.1f} min/60k on "
          f"{threads} idle cores), plain 1 thread {c_plain1 / n * 1e3:.2f} ms/image -> {c_plain1 / c_ours:.2f}x")
    assert err < 1e-4, "fast and plain encoders disagree"
    assert np.allclose(ours, ours2)


def bench_kmeans(images: np.ndarray, k: int, n_patches: int, iterations: int) -> None:
    from sklearn.cluster import KMeans, kmeans_plusplus

    x = sample_patches(images, n_patches, 6, seed=0)
    t = torch.from_numpy(x)
    normalise_patches_(t)
    zca = fit_zca(x)
    x = zca.whiten(x)
    init = x[np.random.default_rng(0).choice(len(x), k, replace=False)]
    ours, t_ours = timed(lloyd_kmeans, x, k, iterations, init=init)
    ref, t_ref = timed(KMeans(k, init=init, n_init=1, max_iter=iterations, tol=0, algorithm="lloyd").fit, x)
    diff = float(np.abs(ours.centroids - ref.cluster_centers_).max())
    print(f"k-means {n_patches} x {x.shape[1]} patches, K={k}, {iterations} iterations: ours "
          f"{t_ours / iterations:.2f} s/it | scikit-learn {t_ref / iterations:.2f} s/it -> "
          f"{t_ref / t_ours:.2f}x; max centroid difference {diff:.1e}; "
          f"50 iterations ~ {t_ours / iterations * 50 / 60:.1f} min (ours)")
    _, t_pp = timed(kmeans_plusplus, x, k, random_state=0)
    print(f"  k-means++ seeding (scikit-learn) on the same patches: {t_pp:.1f} s = "
          f"{t_pp / (t_ours / iterations):.1f} of our Lloyd iterations (random init: free)")


def bench_full(images: np.ndarray, k: int) -> None:
    cfg = KMeansConfig(centroids=k)
    d, t_dict = timed(learn_dictionary, images, cfg, progress=True)
    info = d.info
    print(f"dictionary K={k} (400,000 patches, {info['kmeans_iterations_run']} iterations): {t_dict / 60:.1f} min "
          f"(patches+ZCA {info['seconds_patches']:.0f} s, k-means {info['seconds_kmeans']:.0f} s, "
          f"{info['kmeans_empty_relocated']} empty clusters relocated); peak RSS {peak_rss_gb():.1f} GB")
    feats, t_enc = timed(d.encode, images, batch_size=256, progress=True)
    print(f"encode {len(images)} images: {t_enc / 60:.1f} min -> {t_enc / len(images) * 60_000 / 60:.1f} min per "
          f"60,000; features {feats.shape}; peak RSS {peak_rss_gb():.1f} GB")
    del feats
    rng = np.random.default_rng(0)
    d4 = KMeansDictionary(KMeansConfig(centroids=4000), rng.standard_normal((4000, 108)).astype(np.float32),
                          d.mean, d.whitening)
    _, t4 = timed(d4.encode, images[:1000], batch_size=256)
    print(f"K=4000: encode 1,000 images {t4:.1f} s ({t4 * 60:.1f} min/60k); peak RSS {peak_rss_gb():.1f} GB")


def end_to_end(data: Path, centroids: int, grid: str, keep: Path | None) -> None:
    """What a user runs for the k-means row of the CIFAR-10 table, timed command by command: ``gan-probe kmeans``
    (dictionary on the training images, encoding all 50,000 with 10,000 held out), then ``gan-probe svm`` with C
    chosen on a validation split and the refit; the anchor, in the same run and on the same features, is the same
    ``svm`` with every grid fit run to the tolerance (``--settle 0``)."""
    import json
    import subprocess
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="bench_kmeans_e2e_", dir="/tmp")) if keep is None else keep
    feats = work / f"kmeans{centroids}"

    def command(*args: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gan_probe", *args, "--no-progress"], check=True)
        return time.perf_counter() - start

    t_kmeans = command("kmeans", "--dataset", "cifar10", "--data-root", str(data), "--centroids", str(centroids),
                       "--holdout", "10000", "--out", str(feats))
    meta = json.loads((feats / "meta.json").read_text())
    seconds = meta.get("seconds", {})
    runs = {}
    for name, extra in (("default", []), ("anchor (--settle 0)", ["--settle", "0"])):
        out = work / f"svm-{len(runs)}.json"
        t = command("svm", "--features", str(feats), "--C-grid", grid, "--json", str(out), "--force", *extra)
        runs[name] = (t, json.loads(out.read_text()))
    print(f"kmeans --centroids {centroids} --holdout 10000: {t_kmeans:.1f} s (dictionary "
          f"{seconds.get('dictionary', float('nan')):.1f} s, encoding {seconds.get('encode', float('nan')):.1f} s)")
    for name, (t, result) in runs.items():
        print(f"svm --C-grid {grid} [{name}]: {t:.1f} s (solver {result.get('seconds', float('nan')):.1f} s), "
              f"C = {result['C']:g}, held-out accuracy {result['accuracy']:.4f}")
    (t_new, new), (t_old, old) = runs["default"], runs["anchor (--settle 0)"]
    print(f"end to end: {(t_kmeans + t_new) / 60:.2f} min (anchor {(t_kmeans + t_old) / 60:.2f} min); svm "
          f"{t_old / t_new:.2f}x the anchor, accuracy {100 * (new['accuracy'] - old['accuracy']):+.2f} points; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"files in {work}" if keep is not None else f"(temporary files in {work})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/gp_data/cifar10"))
    p.add_argument("--centroids", type=int, default=1600)
    p.add_argument("--encode-images", type=int, default=2000)
    p.add_argument("--kmeans-patches", type=int, default=100_000)
    p.add_argument("--kmeans-iterations", type=int, default=3)
    p.add_argument("--full", action="store_true", help="also time the full dictionary and encoding")
    p.add_argument("--end-to-end", action="store_true",
                   help="only time `gan-probe kmeans --holdout 10000` then `gan-probe svm` (and its anchor)")
    p.add_argument("--C-grid", default="1e-4,1e-3,1e-2,1e-1", help="--end-to-end: the svm's C grid")
    p.add_argument("--keep", type=Path, metavar="DIR", help="--end-to-end: write the store and results here")
    args = p.parse_args(argv)
    if args.end_to_end:
        end_to_end(args.data, args.centroids, args.C_grid, args.keep)
        return 0
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.1f}")
    (images, labels, how), t = timed(load_cifar_jpegs, args.data)
    print(f"data: {len(images)} images {images.shape[1:]} from {args.data} via {how} in {t:.1f} s")
    d = learn_dictionary(images, KMeansConfig(centroids=args.centroids, patches=100_000, iterations=5))
    bench_encoding(images, d, args.encode_images)
    bench_kmeans(images, args.centroids, args.kmeans_patches, args.kmeans_iterations)
    if args.full:
        bench_full(images, args.centroids)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
