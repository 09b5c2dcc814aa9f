"""Peak memory of paper32 feature extraction into a store, and of the SVM fit on that store.

Each phase runs in a fresh Python process, so one phase's high-water mark does not hide another's. Reported per
phase: ``ru_maxrss`` (``resource.getrusage``), ``VmHWM`` from ``/proc/self/status`` (the same peak, total
resident set), and peaks of ``RssAnon`` (heap: images, model, activations, solver arrays) and ``RssFile`` (file
pages mapped into the process -- the memory-mapped feature matrix being written or read; page cache the kernel
can write back and drop under pressure) sampled every 20 ms. The "anchor" phase only imports torch and
gan_probe: the interpreter's own footprint, measured in the same run.

Data: synthetic 32x32 images written in the official CIFAR-10 pickle layout (so extraction runs the same reader
and code path as real CIFAR-10). The store holds train + test rows of 28,672 float32 features each.

    python benchmarks/bench_memory.py                            # 2,000 train + 500 test images
    python benchmarks/bench_memory.py --train 5000 --test 1000
    python benchmarks/bench_memory.py --paper-scale              # 50,000 + 10,000 (6.4 GiB of features; long on a CPU)
    python benchmarks/bench_memory.py --train 5000 --no-svm --keep /tmp/store

Measured (2 shared CPU cores, torch 2.14.1, batch 256; MB above the anchor's 281 MB of anonymous memory):
extraction of 500 + 100 images +313 MB anon, 5,000 + 1,000 images +375 MB anon, i.e. about 300 MB of batch
activations (paper32 keeps 286,720 floats per image for one batch of 256) plus ~11.5 KB per image (the uint8
images, 3 KB each, and their transient copies while the reader decodes). Extrapolated to 50,000 + 10,000 images:
about 1.0 GB above the interpreter. The memory-mapped matrix being written is also resident as file pages
(563 MB of the 656 MB store at 6,000 rows; up to the whole 6.4 GiB at paper scale): page cache the kernel can
write back and drop, but counted in RSS/VmHWM and in a container's memory accounting.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FEATURES = 28_672  # paper32: (128 + 128 + 256 + 256 + 512 + 512) x 16


def status() -> dict[str, int]:
    """/proc/self/status memory fields in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class PeakSampler:
    """Samples /proc/self/status in a background thread; keeps the maxima."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def _sample(self) -> None:
        for k, v in status().items():
            self.peak[k] = max(self.peak.get(k, 0), v)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def write_cifar_pickles(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """Synthetic images in the official cifar-10-batches-py layout (5 train batches + test_batch)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [n_train // 5 + (i < n_train % 5) for i in range(5)]
    for name, n in [(f"data_batch_{i + 1}", s) for i, s in enumerate(sizes)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"labels": (np.arange(n) % 10).tolist(), b"data": data}, fh, protocol=4)


def phase(args: argparse.Namespace) -> dict:
    """Run one phase in this process and return its measurements."""
    import torch

    import gan_probe.features  # noqa: F401 - the anchor includes the package imports

    torch.set_num_threads(args.threads)
    result: dict = {"phase": args.phase}
    t0 = time.perf_counter()
    with PeakSampler() as sampler:
        if args.phase == "extract":
            from gan_probe.features import extract_features

            extract_features(random_init="paper32", dataset="cifar10", data_root=args.data, out=args.store,
                             batch_size=args.batch_size, device="cpu", progress=False)
        elif args.phase == "svm":
            from gan_probe.features import load_store

            fit = _svm_entry_point()
            store = load_store(args.store)
            model = fit(store.train_features, store.train_labels, C=args.C, device="cpu")
            result["train_accuracy_on_random_data"] = model.score(store.train_features, store.train_labels)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.update({f"peak_{k}": v for k, v in sampler.peak.items()})
    return result


def _svm_entry_point():
    try:
        from gan_probe.probe.svm import fit_svm
    except ImportError:
        from gan_probe.probe import fit as fit_svm  # type: ignore[attr-defined]
    return fit_svm


def svm_available() -> bool:
    try:
        _svm_entry_point()
        return True
    except ImportError:
        return False


def run_phase(name: str, args: argparse.Namespace, data: Path, store: Path) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--data", str(data), "--store", str(store),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--C", str(args.C)]
    env = {**os.environ, "GAN_PROBE_PROGRESS": "0", "GAN_PROBE_CACHE": str(store.parent / "cache")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mb(x: float) -> str:
    return f"{x / 2 ** 20:9.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000, help="training images")
    ap.add_argument("--test", type=int, default=500, help="test images")
    ap.add_argument("--paper-scale", action="store_true", help="50,000 train + 10,000 test images (CIFAR-10)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--C", type=float, default=0.01)
    ap.add_argument("--no-svm", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="write data and store here (kept) instead of a temp dir")
    ap.add_argument("--phase", choices=("anchor", "extract", "svm"), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return
    if args.paper_scale:
        args.train, args.test = 50_000, 10_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        data, store = work / "data", work / "store"
        write_cifar_pickles(data, args.train, args.test)
        rows = args.train + args.test
        print(f"paper32 features, {args.train:,} train + {args.test:,} test images, batch {args.batch_size}, "
              f"{args.threads} threads; feature matrices {rows * FEATURES * 4 / 2 ** 30:.2f} GiB")
        phases = ["anchor", "extract"] + (["svm"] if not args.no_svm and svm_available() else [])
        results = {name: run_phase(name, args, data, store) for name in phases}
    anchor = results["anchor"]["peak_RssAnon"]
    print(f"{'phase':8} {'seconds':>8} {'maxrss MB':>9} {'VmHWM MB':>9} {'anon MB':>9} {'file MB':>9} "
          f"{'anon-anchor':>11}")
    for name, r in results.items():
        print(f"{name:8} {r['seconds']:8.1f} {mb(r['ru_maxrss'])} {mb(r['peak_VmHWM'])} {mb(r['peak_RssAnon'])} "
              f"{mb(r['peak_RssFile'])} {mb(r['peak_RssAnon'] - anchor):>11}")
        if "train_accuracy_on_random_data" in r:
            accuracy = r["train_accuracy_on_random_data"]
            print(f"{'':8} (svm fit on {args.train:,} x {FEATURES:,}; train accuracy {accuracy:.3f})")
    if "svm" not in results and not args.no_svm:
        print("svm: no fit entry point in gan_probe.probe yet; not measured")
    print(f"images alone: train {args.train * 3072 / 2 ** 20:.0f} MB, test {args.test * 3072 / 2 ** 20:.0f} MB; "
          f"one feature row {FEATURES * 4:,} bytes")


if __name__ == "__main__":
    main()
