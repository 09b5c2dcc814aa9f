"""The torch L2-SVM solver against liblinear (scikit-learn's LinearSVC) on the same features, in one run.

Default problem: 5,000 training rows x 14,336 features, C = 0.01, 10 classes -- the pooled features of a
randomly initialised paper32 discriminator with half its width (ndf = 64: (64+64+128+128+256+256) x 16 =
14,336 dims) on real CIFAR-10 images (``../shared/data/cifar10-train-jpeg.tar.gz``; 500 training and 500 test
images per class, disjoint). Such features have the power-law covariance spectrum of real conv features,
which is what makes this problem hard for iterative solvers. Without the archive, or with ``--data synthetic``,
a factor model with a power-law spectrum stands in (see :func:`synthetic_features`). ``--features FEATS``
uses an existing feature store instead.

Prints, for both solvers: seconds, objective (summed over the one-vs-rest problems, same formula for both),
test accuracy, and the speed ratio; plus the machine's load average (the machine may be shared).

``--paper-scale`` fits the paper's problem size with the torch solver only: 50,000 x 28,672 float32 features
in 10 classes, generated chunk by chunk into a memory-mapped ``.npy`` under /tmp (5.7 GB, deleted afterwards)
by the synthetic factor model, one C; prints the time, the number of passes over X, when the objective came
within 1e-2 / 1e-3 / 1e-4 of its final value, and the peak RSS. With ``--features FEATS`` it fits all the
training rows of a real feature store instead (e.g. 40,000 x 28,672 from ``gan-probe extract --holdout 10000``).

    python benchmarks/bench_svm.py                      # 5,000 x 14,336, C = 0.01, torch vs liblinear
    python benchmarks/bench_svm.py --data synthetic
    python benchmarks/bench_svm.py --features FEATS --n-train 5000
    python benchmarks/bench_svm.py --paper-scale
    python benchmarks/bench_svm.py --paper-scale --features FEATS --threads 2
    python benchmarks/bench_svm.py --default-grid --features FEATS --threads 2 --device cpu
    python benchmarks/bench_svm.py --default-grid --all-rows --features FEATS --threads 2 --device cpu

``--default-grid`` runs the default ``gan-probe svm`` protocol on a store (whole default C grid, validation split,
refit) against its anchor in the same run (see :func:`default_grid`); with ``--all-rows`` on the store's train and
test rows together (the 50,000 images of CIFAR-10's training set when the store held 10,000 out).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from gan_probe.probe import TrainingProblem, fit_standardizer
from gan_probe.probe.design import standardized_design
from gan_probe.probe.liblinear import fit_liblinear
from gan_probe.probe.loss import class_targets, objective
from gan_probe.probe.svm import predict_from_scores, scores

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def rss_report() -> str:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fields = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    extra = ", ".join(f"{k} {v:,.0f} MB" for k, v in fields.items())
    return f"peak RSS {peak_mb:,.0f} MB (getrusage ru_maxrss; includes touched pages of the memory-mapped file)" \
           + (f"; now {extra}" if extra else "")


# -- data ---------------------------------------------------------------------------------------------------

def synthetic_features(n: int, dim: int, k: int = 10, seed: int = 0, rank: int = 256, out: np.ndarray | None = None,
                       chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """A factor model with a power-law spectrum, post-ReLU like conv features, generated chunk by chunk.

    ``x = relu(z A + m_y + e)``: ``z`` has ``rank`` independent factors with standard deviations
    ``3 / sqrt(j + 1)`` (eigenvalues decaying like ``1 / j``), ``A`` and the class means ``m_y`` (a 16-dim
    class subspace, weak enough that 2,000 x 28,672 rows give about 45% test accuracy) are Gaussian, ``e`` is
    unit noise. Rows are a deterministic function of ``seed`` and the
    chunk, so train and test sets come from the same distribution with different seeds.
    """
    g = torch.Generator().manual_seed(1234)  # the model (shared by train and test)
    A = torch.randn(rank, dim, generator=g) / np.sqrt(rank) * 2.0
    scale = (3.0 / torch.sqrt(torch.arange(1, rank + 1, dtype=torch.float32)))[:, None]
    A = A * scale
    means = (torch.randn(k, 16, generator=g) * 0.045) @ (torch.randn(16, dim, generator=g) / 4.0)
    labels = np.random.default_rng(seed).integers(0, k, n)
    x = out if out is not None else np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        end = min(n, start + chunk)
        gc = torch.Generator().manual_seed(seed * 1_000_003 + start)
        z = torch.randn(end - start, rank, generator=gc)
        block = z @ A + means[torch.from_numpy(labels[start:end])] + torch.randn(end - start, dim, generator=gc)
        x[start:end] = torch.relu_(block).numpy()
    return x, labels


def cifar_random_d_features(n_per_class: int, ndf: int, archive: Path, seed: int = 0):
    """Pooled features of a randomly initialised paper32 discriminator (width ``ndf``) on CIFAR-10 JPEGs."""
    from gan_probe.features.pooling import pooled_features
    from gan_probe.models import Discriminator, preset_config

    tmp = Path(tempfile.mkdtemp(prefix="bench_svm_cifar_", dir="/tmp"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        root = tmp
        images, labels = _read_jpegs(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for c in range(10):
        rows = rng.permutation(np.flatnonzero(labels == c))
        train_rows.append(rows[:n_per_class])
        test_rows.append(rows[n_per_class:2 * n_per_class])
    torch.manual_seed(seed)
    disc = Discriminator(preset_config("paper32", ndf=ndf)).eval()
    out = []
    for rows in (np.sort(np.concatenate(train_rows)), np.sort(np.concatenate(test_rows))):
        feats = []
        with torch.no_grad():
            for start in range(0, len(rows), 500):
                batch = torch.from_numpy(images[rows[start:start + 500]]).permute(0, 3, 1, 2).float() / 127.5 - 1
                feats.append(pooled_features(disc, batch).numpy())
        out.append((np.concatenate(feats).astype(np.float32), labels[rows]))
    return out[0], out[1]


def _read_jpegs(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The CIFAR-10 training images under ``root`` (official pickles or train/<class>/ image folders)."""
    from gan_probe.data import load_split

    split = load_split("cifar10", str(root), "train", progress=False)
    return np.asarray(split.images), np.asarray(split.labels)


def load_problem(args):
    if args.load_features:
        arrays = np.load(args.load_features)
        return ((arrays["x"], arrays["y"]), (arrays["xt"], arrays["yt"]),
                f"features saved by an earlier run ({args.load_features})")
    if args.features:
        from gan_probe.features import load_store

        store = load_store(args.features)
        n = min(args.n_train or len(store.train_labels), len(store.train_labels))
        rows = np.sort(np.random.default_rng(0).permutation(len(store.train_labels))[:n])
        train = (np.asarray(store.train_features[rows]), store.train_labels[rows])
        test = (store.test_features, store.test_labels)
        return train, test, f"feature store {args.features} ({n} training rows)"
    data = args.data
    if data == "auto":
        data = "cifar-random-d" if SHARED_CIFAR.is_file() else "synthetic"
    if data == "cifar-random-d":
        train, test = cifar_random_d_features(args.n_train // 10, args.ndf, SHARED_CIFAR)
        return train, test, (f"random-init paper32 D (ndf={args.ndf}) pooled features of CIFAR-10 JPEGs "
                             f"({SHARED_CIFAR.name})")
    train = synthetic_features(args.n_train, args.dim, seed=0)
    test = synthetic_features(args.n_test, args.dim, seed=1)
    return train, test, "synthetic power-law factor model (benchmarks/bench_svm.py:synthetic_features)"


# -- runs ---------------------------------------------------------------------------------------------------

def compare(args) -> None:
    torch.set_num_threads(os.cpu_count() or 1)  # preparing the features is not timed: use every core
    (x, y), (xt, yt), what = load_problem(args)
    if args.save_features:
        np.savez(args.save_features, x=x, y=y, xt=xt, yt=yt)
    torch.set_num_threads(args.threads)
    print(f"data: {what}: train {x.shape}, test {xt.shape}, C = {args.C:g}")
    print(f"load average before: {load_avg()} (2-core machine; shared)")
    classes = np.unique(y)

    start = time.perf_counter()
    with threadpool_limits(args.threads):  # the NumPy/SciPy BLAS the CPU solver also uses
        st = fit_standardizer(x)
        problem = TrainingProblem(x, y, standardizer=st, device=args.device, method=args.method)
        res = problem.solve(args.C)
    t_torch = time.perf_counter() - start
    acc_torch = float(np.mean(predict_from_scores(scores(xt, st, res.W, device=problem.device), classes) == yt))
    print(f"torch   : {t_torch:9.1f} s  objective {res.total_objective:.8g}  test accuracy {acc_torch:.4f}  "
          f"[{problem.method} route, {res.newton_iterations} Newton steps, {res.passes} passes over X, "
          f"device {problem.device}]")
    print(f"load average after torch: {load_avg()}")
    if args.skip_liblinear:
        return

    start = time.perf_counter()
    W_lib, _, info = fit_liblinear(x, y, args.C, st, max_iter=args.liblinear_max_iter)
    t_lib = time.perf_counter() - start
    design = standardized_design(x, st, cache_bytes=0)
    obj_lib = objective(design, torch.as_tensor(W_lib), class_targets(y, classes), args.C)
    acc_lib = float(np.mean(predict_from_scores(scores(xt, st, torch.as_tensor(W_lib)), classes) == yt))
    print(f"liblinear: {t_lib:9.1f} s  objective {obj_lib.sum():.8g}  test accuracy {acc_lib:.4f}  "
          f"[dual={info['dual']}, {info['n_iter']} iterations, converged={info['converged']}]")
    print(f"load average after liblinear: {load_avg()}")
    rel = (res.objective - obj_lib) / obj_lib
    print(f"objective torch vs liblinear: total {(res.total_objective - obj_lib.sum()) / obj_lib.sum():+.2e} "
          f"relative, worst class {rel.max():+.2e}")
    print(f"accuracy torch - liblinear: {100 * (acc_torch - acc_lib):+.2f} points")
    print(f"speed ratio liblinear / torch: {t_lib / t_torch:.1f}x")


def paper_scale(args) -> None:
    if args.features:
        return paper_scale_store(args)
    n, dim, n_test = 50000, 28672, 10000
    workdir = Path(tempfile.mkdtemp(prefix="bench_svm_paper_", dir="/tmp"))
    try:
        path = workdir / "train_features.npy"
        t0 = time.perf_counter()
        x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        _, y = synthetic_features(n, dim, seed=0, out=x)
        x.flush()
        del x
        xt, yt = synthetic_features(n_test, dim, seed=1)
        print(f"generated {n:,} x {dim:,} float32 ({n * dim * 4 / 1e9:.1f} GB memmap at {path}) and a "
              f"{n_test:,}-row test set in {time.perf_counter() - t0:.0f} s")
        x = np.load(path, mmap_mode="r")
        fit_large(x, y, xt, yt, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"removed {workdir}")


def paper_scale_store(args) -> None:
    """The large fit on a real feature store: all its training rows, scored on its test rows."""
    from gan_probe.features import load_store

    store = load_store(args.features)
    x, y = store.train_features, np.asarray(store.train_labels)
    print(f"feature store {args.features}: train {x.shape}, test {store.test_features.shape}")
    fit_large(x, y, store.test_features, np.asarray(store.test_labels), args)


def fit_large(x, y, xt, yt, args) -> None:
    """One C with the primal solver, printing every Newton step; then time, passes, accuracy and peak RSS."""
    from gan_probe.probe.newton import newton_cg

    n, dim = x.shape
    print(f"load average before: {load_avg()} (2-core machine; shared); torch threads {torch.get_num_threads()}")
    start = time.perf_counter()
    st = fit_standardizer(x)
    t_stats = time.perf_counter() - start
    problem = TrainingProblem(x, y, standardizer=st, device=args.device, method="primal")
    log = []

    def step(e):
        log.append((e["passes"], e["objective"], time.perf_counter() - start))
        fast = f" + {e['bfloat16_passes']} bfloat16" if "bfloat16_passes" in e else ""
        print(f"  Newton {e['iteration']:2d}: objective {e['objective']:.10g}, {e['cg_steps']} CG steps, "
              f"{e['passes']}{fast} passes, rows active for some class {e['active_rows']:.1%}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)

    with threadpool_limits(args.threads):
        res = newton_cg(problem.design, problem.Y, args.C, options=problem.options, callback=step)
    t_fit = time.perf_counter() - start
    classes = np.unique(y)
    acc = float(np.mean(predict_from_scores(scores(xt, st, res.W, device=problem.device), classes) == yt))
    print(f"{n:,} x {dim:,}, {len(classes)} classes, C = {args.C:g}: {t_fit:.1f} s "
          f"(statistics pass {t_stats:.1f} s), {res.passes + 1} passes over X (1 for the statistics) and "
          f"{res.bfloat16_passes} over its bfloat16 copy, "
          f"{res.newton_iterations} Newton steps, {res.cg_iterations} CG steps, converged={res.converged}, "
          f"objective {res.total_objective:.10g}, test accuracy {acc:.4f}")
    if res.passes and not res.bfloat16_passes:
        print(f"  {(t_fit - t_stats) / res.passes:.2f} s per pass over X on average")
    final = res.total_objective
    for rel in (1e-2, 1e-3, 1e-4):
        hit = next(((p, t) for p, f, t in log if f <= final * (1 + rel)), None)
        if hit:
            print(f"  within {rel:g} (relative) of the final objective after {hit[0]} passes, {hit[1]:.0f} s")
    print(f"load average after: {load_avg()}")
    print(rss_report())


def default_grid(args) -> None:
    """The default ``gan-probe svm`` protocol (all labels, the whole default C grid chosen on a validation split,
    then the refit on every training row) on a feature store, twice in this run: the anchor fits every grid C to
    the solver's tolerance and sketches the data again for the refit (``--settle 0``, as before grid fits could
    stop); then the default, whose grid fits stop once the validation predictions settle and whose refit reuses
    the grid's sketch. Prints each fit, the chosen C, the held-out accuracy and the solver's time of both."""
    from gan_probe.features import load_store

    store = load_store(args.features)
    x, y = store.train_features, np.asarray(store.train_labels)
    xt, yt = store.test_features, np.asarray(store.test_labels)
    print(f"feature store {args.features}: train {x.shape}, test {xt.shape}; load average {load_avg()}")
    scratch = None
    if args.all_rows:
        scratch = tempfile.mkdtemp(prefix="bench-svm-all-rows-")
        x, y = _all_rows(store, Path(scratch))
        print(f"--all-rows: training on all {len(y):,} rows (train and test written into one memory-mapped .npy); "
              f"the 'held-out' accuracy below is on the store's test rows, which are training rows here")
    try:
        _default_grid_runs(args, x, y, xt, yt)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _all_rows(store, directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The store's train and test rows in one memory-mapped ``.npy`` under ``directory`` (and their labels)."""
    train, test = store.train_features, store.test_features
    out = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.float32,
                                    shape=(len(train) + len(test), train.shape[1]))
    for source, offset in ((train, 0), (test, len(train))):
        for start in range(0, len(source), 5000):
            block = np.asarray(source[start:start + 5000], dtype=np.float32)
            out[offset + start:offset + start + len(block)] = block
    out.flush()
    del out
    labels = np.concatenate([np.asarray(store.train_labels), np.asarray(store.test_labels)])
    return np.load(directory / "x.npy", mmap_mode="r"), labels


def _default_grid_runs(args, x, y, xt, yt) -> None:
    from gan_probe.probe import probe_config
    from gan_probe.probe.protocols import run_protocol

    st = fit_standardizer(x)
    runs = {}
    for name, settle in (("default", None), ("anchor", 0)):
        config = probe_config(device=args.device, settle=settle)
        original = TrainingProblem.sketch
        if settle == 0:   # the anchor: a new sketch for the refit, as before it reused the grid's
            TrainingProblem.sketch = property(lambda self: None)
        try:
            with threadpool_limits(args.threads):
                start = time.perf_counter()
                out = run_protocol(x, y, xt, yt, config, standardizer=st,
                                   log=lambda line: print(f"  [{name}] {line}", flush=True))
                seconds = time.perf_counter() - start
        finally:
            TrainingProblem.sketch = original
        runs[name] = (out, seconds)
        fits = " + ".join(f"{f['seconds']:.0f}" for f in out["fits"])
        print(f"{name}: {seconds:.1f} s in the solver (fits {fits} s), chosen C = {out['C']:g}, held-out "
              f"accuracy {out['accuracy']:.4f}; load average {load_avg()}", flush=True)
    (new, t_new), (old, t_old) = runs["default"], runs["anchor"]
    print(f"default vs anchor: {t_new:.1f} s vs {t_old:.1f} s ({t_old / t_new:.2f}x), chosen C {new['C']:g} vs "
          f"{old['C']:g}, held-out accuracy {100 * (new['accuracy'] - old['accuracy']):+.2f} points")
    print(rss_report())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=("auto", "cifar-random-d", "synthetic"), default="auto")
    ap.add_argument("--features", help="a feature store instead of generated features")
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=14336, help="synthetic data: feature dimension")
    ap.add_argument("--ndf", type=int, default=64, help="cifar-random-d: discriminator width (64 -> 14,336 dims)")
    ap.add_argument("--C", type=float, default=0.01)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--method", default="auto", choices=("auto", "primal", "kernel"))
    ap.add_argument("--skip-liblinear", action="store_true")
    ap.add_argument("--liblinear-max-iter", type=int, default=1000, help="LinearSVC's max_iter (its default)")
    ap.add_argument("--paper-scale", action="store_true")
    ap.add_argument("--default-grid", action="store_true",
                    help="with --features: the default svm protocol (whole C grid, refit) against its anchor")
    ap.add_argument("--all-rows", action="store_true",
                    help="with --default-grid: train on the store's train and test rows together (e.g. all 50,000 "
                         "CIFAR-10 images of a store extracted with --holdout 10000); a timing, nothing is held out")
    ap.add_argument("--save-features", metavar="NPZ", help="save the prepared train/test features (to rerun "
                    "the comparison without preparing them again)")
    ap.add_argument("--load-features", metavar="NPZ", help="features saved by --save-features")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of the torch solver, for torch and for the NumPy/SciPy BLAS it also uses "
                         "(default 1: liblinear is single-threaded too)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{args.threads} thread(s) for the torch solver (torch and the NumPy/SciPy BLAS)")
    if args.default_grid:
        if not args.features:
            ap.error("--default-grid needs --features FEATS (a feature store with a test split)")
        default_grid(args)
    elif args.paper_scale:
        paper_scale(args)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
