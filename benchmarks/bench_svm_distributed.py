"""The L2-SVM probe in one process against N gloo processes sharing its training rows, and a time model.

One problem (default 20,000 training x 2,048 features in 10 classes, a Gaussian mixture with spread-out column
scales, written to a memory-mapped ``.npy`` under a temporary directory) is fitted for one C twice: in this
process (all the machine's threads) and by ``--ranks`` gloo processes started with ``torch.distributed.run``
(threads divided among them), each holding a contiguous share of the rows (:mod:`gan_probe.probe.rows`). Prints
for both: seconds, passes over the rows, objective, test accuracy; for the ranks also the all-reduces the solve
made, their bytes and the wall time spent inside them (per pass), and a micro-benchmark of one all-reduce of a
pass's payload (``K x (D + 1) + K`` float64) and of one float (the latency).

The time model a user plans a run with (see docs/distributed.md)::

    T = passes x (max(bytes per rank / memory bandwidth, flops per rank / throughput) + t_allreduce(payload))
    t_allreduce(b) = latency + 2 (N - 1) / N x b / link bandwidth        (ring all-reduce)

Here it is checked against the measurement (the one-process pass time, divided among N ranks, plus the measured
all-reduce per pass, predicts the N-rank time) and evaluated for ``--predict``: 8 GPUs x 1.28M rows x 28,672
features x 1,000 classes with the stated GPU figures.

    python benchmarks/bench_svm_distributed.py                       # 20,000 x 2,048, 2 gloo ranks
    python benchmarks/bench_svm_distributed.py --rows 5000 --dim 512 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from threadpoolctl import threadpool_limits

from gan_probe.probe.plan import SolverOptions
from gan_probe.probe.svm import TrainingProblem, predict_from_scores, scores

OPTIONS = SolverOptions(precondition="subspace", hessian_precision="storage")


def make_data(root: Path, rows: int, dim: int, classes: int, test: int = 2000) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dim)) * (0.6 / np.sqrt(dim))   # as hard at any width
    scales = np.geomspace(0.1, 3.0, dim)
    for name, n in (("train", rows), ("test", test)):
        y = rng.integers(0, classes, n)
        x = np.lib.format.open_memmap(root / f"{name}_x.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        for start in range(0, n, 4096):
            end = min(n, start + 4096)
            x[start:end] = centres[y[start:end]] + rng.normal(size=(end - start, dim)) * scales
        x.flush()
        np.save(root / f"{name}_y.npy", y)


def solve(root: Path, C: float) -> dict:
    """Fit one C on the rows in ``root`` (sharing them among the ranks when a process group runs)."""
    x, y = np.load(root / "train_x.npy", mmap_mode="r"), np.load(root / "train_y.npy")
    xt, yt = np.load(root / "test_x.npy", mmap_mode="r"), np.load(root / "test_y.npy")
    started = time.perf_counter()
    problem = TrainingProblem(x, y, options=OPTIONS, device="cpu", method="primal")
    res = problem.solve(C)
    accuracy = float(np.mean(predict_from_scores(scores(xt, problem.standardizer, res.W), problem.classes) == yt))
    reducer = problem.design.reducer
    return {"seconds": time.perf_counter() - started, "solve_seconds": res.seconds, "passes": res.passes,
            "newton": res.newton_iterations, "cg": res.cg_iterations, "objective": float(np.sum(res.objective)),
            "accuracy": accuracy, "reductions": reducer.reductions, "reduced_bytes": reducer.reduced_bytes,
            "reduce_seconds": reducer.seconds, "rows": problem.design.n}


def allreduce_micro(numel: int, repeats: int = 30) -> float:
    """Median seconds of one all-reduce of ``numel`` float64 values."""
    import torch.distributed as dist

    buf = torch.zeros(numel, dtype=torch.float64)
    times = []
    for _ in range(repeats + 3):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(buf)
        times.append(time.perf_counter() - started)
    return float(np.median(times[3:]))


def worker(root: Path, C: float, classes: int, dim: int) -> None:
    from gan_probe.distributed import init_distributed, shutdown
    from gan_probe.probe.rows import sharded_rows

    ctx = init_distributed("cpu")
    with sharded_rows(ctx):
        out = solve(root, C)
    out["allreduce_payload_s"] = allreduce_micro(classes * (dim + 1) + classes)
    out["allreduce_latency_s"] = allreduce_micro(1)
    (root / f"rank{ctx.rank}.json").write_text(json.dumps(out))
    shutdown()   # (a gloo group left running at exit can abort the process)


def predict(passes: float, rows: int, dim: int, classes: int, ranks: int, mem_bw: float, flops: float,
            link_bw: float, latency: float) -> dict:
    """The time model for ``passes`` fused passes (forward and backward products) over ``rows`` x ``dim`` float32
    rows shared by ``ranks``, with ``classes`` columns per product."""
    per_rank = rows / ranks
    read = per_rank * dim * 4 / mem_bw
    compute = 4 * per_rank * dim * classes / flops
    payload = 8 * (classes * (dim + 1) + classes)
    reduce = latency + 2 * (ranks - 1) / ranks * payload / link_bw
    per_pass = max(read, compute) + reduce
    return {"per_pass_s": per_pass, "read_s": read, "compute_s": compute, "allreduce_s": reduce,
            "payload_bytes": payload, "total_s": passes * per_pass}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--C", type=float, default=0.01)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(Path(args.worker), args.C, args.classes, args.dim)
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench_svm_dist_") as tmp:
        root = Path(tmp)
        make_data(root, args.rows, args.dim, args.classes)
        one = {}
        for n in sorted({threads, 1}, reverse=True):   # all threads, and one (as each rank below runs)
            torch.set_num_threads(n)
            with threadpool_limits(n):
                one[n] = solve(root, args.C)
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // args.ranks)), "GAN_PROBE_PROGRESS": "0"}
        env.pop("WORLD_SIZE", None)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                        str(args.ranks), __file__, "--worker", str(root), "--C", str(args.C), "--classes",
                        str(args.classes), "--dim", str(args.dim)], check=True, env=env)
        launch = time.perf_counter() - started
        ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(args.ranks)]
    report(args, one, ranks, launch, threads)


def report(args, ones: dict, ranks: list[dict], launch: float, threads: int) -> None:
    r0, one, single = ranks[0], ones[threads], ones[1]
    rel = abs(r0["objective"] - one["objective"]) / abs(one["objective"])
    per_pass_1 = single["solve_seconds"] / max(1, single["passes"])
    reduce_per_pass = r0["reduce_seconds"] / max(1, r0["passes"])
    # model check: each rank runs one thread on 1/N of the rows (the one-thread pass time / N); every pass one
    # all-reduce of its payload, every other collective (line search, preconditioner) one latency
    modelled = (r0["passes"] * (per_pass_1 / len(ranks) + r0["allreduce_payload_s"])
                + max(0, r0["reductions"] - r0["passes"]) * r0["allreduce_latency_s"])
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    lines = [
        f"machine: {os.cpu_count()} CPU threads, load average {load}",
        f"problem: {args.rows:,} x {args.dim:,} float32 training rows, {args.classes} classes, C = {args.C:g}",
        *(f"1 process ({n} thread{'s' * (n > 1)}): {o['solve_seconds']:.2f} s solve, {o['passes']} passes "
          f"({o['solve_seconds'] / max(1, o['passes']) * 1e3:.1f} ms each), objective {o['objective']:.10g}, "
          f"test accuracy {o['accuracy']:.4f}" for n, o in ones.items()),
        f"{args.ranks} gloo ranks (1 thread each, {r0['rows']:,} rows on rank 0): {r0['solve_seconds']:.2f} s solve, "
        f"{r0['passes']} passes, objective {r0['objective']:.10g} (relative difference {rel:.1e}), "
        f"test accuracy {r0['accuracy']:.4f} ({'identical' if r0['accuracy'] == one['accuracy'] else 'DIFFERENT'}); "
        f"launch to exit {launch:.1f} s",
        f"  all-reduces in the solve: {r0['reductions']} ({r0['reductions'] / max(1, r0['passes']):.1f} per pass), "
        f"{r0['reduced_bytes'] / 1e6:.1f} MB, {r0['reduce_seconds']:.2f} s inside them "
        f"({reduce_per_pass * 1e3:.2f} ms per pass, waiting for the slower rank included)",
        f"  one all-reduce: {r0['allreduce_payload_s'] * 1e3:.3f} ms for a pass's "
        f"{8 * (args.classes * (args.dim + 1) + args.classes) / 1e3:.0f} kB, {r0['allreduce_latency_s'] * 1e6:.0f} us "
        f"for 8 bytes",
        f"  model: passes x (one-thread pass time / {len(ranks)} + one all-reduce) + other collectives x latency = "
        f"{modelled:.2f} s against "
        f"{r0['solve_seconds']:.2f} s measured",
    ]
    gpu = predict(passes=600, rows=1_281_167, dim=28_672, classes=1000, ranks=8, mem_bw=3.35e12, flops=60e12,
                  link_bw=400e9, latency=50e-6)
    lines.append(f"prediction, 8 GPUs x 1,281,167 rows x 28,672 dims x 1,000 classes, 600 passes per C: "
                 f"{gpu['per_pass_s']:.3f} s per pass (read {gpu['read_s'] * 1e3:.1f} ms, products "
                 f"{gpu['compute_s'] * 1e3:.0f} ms, all-reduce of {gpu['payload_bytes'] / 1e6:.0f} MB "
                 f"{gpu['allreduce_s'] * 1e3:.2f} ms): {gpu['total_s'] / 60:.1f} min per C")
    print("\n".join(lines))
    if args.json:
        numbers = {"one": {str(n): o for n, o in ones.items()}, "ranks": ranks, "launch_s": launch, "load": load,
                   "relative_objective_difference": rel, "model_s": modelled, "prediction_8gpu": gpu}
        Path(args.json).write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
