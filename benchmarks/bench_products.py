"""One conjugate-gradient pass of the L2-SVM solver over a bfloat16 copy: oneDNN-packed blocks against plain ones.

A pass is what each Newton-CG step costs: ``Z = X~ P`` and ``X~^T (A * Z)`` for ``P`` with one column per class.
Both layouts hold the same random bfloat16 rows (``--rows`` x ``--features``, blocks of 2,048 rows, as the
solver cuts them) and run the same :meth:`Design.fused` pass; the plain layout is the anchor, and the float32
design of the same rows is timed too. Prints seconds per pass and the ratios, for each column count in
``--columns``, and checks that the two bfloat16 layouts give the same products.

Then the solver's two passes in float32 (per Newton step: the exact ``X~ P`` after CG, and the gradient
``X~^T r``): :meth:`Design.matmul` (weights packed for oneDNN) and :meth:`Design.rmatmul` (NumPy's BLAS, or
torch's on the processors of ``linalg.TORCH_FLAT_PRODUCT_VENDORS``) against torch's plain products over the same
chunks in the same run, with the largest difference between them.

    python benchmarks/bench_products.py                          # 20,480 x 28,672, 10 and 20 columns, 2 threads
    python benchmarks/bench_products.py --rows 4096 --features 4096 --columns 10
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gan_probe.probe.design import SHADOW_CHUNK_ROWS, dense_design, packed_design, standardized_design  # noqa: E402
from gan_probe.probe.packed import packing_available  # noqa: E402


def seconds_per_pass(design, W: torch.Tensor, A: torch.Tensor, repeats: int) -> float:
    return timed(lambda: design.fused(W, lambda s, e, Z: A[s:e] * Z), repeats)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20480)
    ap.add_argument("--features", type=int, default=28672)
    ap.add_argument("--columns", default="10,20", help="comma-separated column counts (classes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not packing_available():
        sys.exit("bench_products.py: this torch build cannot pack bfloat16 blocks (no oneDNN)")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.2f}")
    gen = torch.Generator().manual_seed(0)
    x32 = torch.randn(args.rows, args.features, generator=gen)
    x16 = x32.to(torch.bfloat16)
    started = time.perf_counter()
    packed = packed_design(x16, 1.0, SHADOW_CHUNK_ROWS)
    print(f"{args.rows:,} x {args.features:,}: packed in {time.perf_counter() - started:.2f} s")
    plain = dense_design(x16, 1.0, SHADOW_CHUNK_ROWS)
    exact = dense_design(x32, 1.0)
    for k in (int(c) for c in args.columns.split(",")):
        W = torch.randn(args.features + 1, k, dtype=torch.float64, generator=gen)
        A = (torch.rand(args.rows, k, generator=gen) < 0.5).to(torch.float64)
        Zp, Gp = packed.fused(W, lambda s, e, Z: A[s:e] * Z)
        Zd, Gd = plain.fused(W, lambda s, e, Z: A[s:e] * Z)
        gap = max(float((Zp - Zd).norm() / Zd.norm()), float((Gp - Gd).norm() / Gd.norm()))
        t_packed = seconds_per_pass(packed, W, A, args.repeats)
        t_plain = seconds_per_pass(plain, W, A, args.repeats)
        t_exact = seconds_per_pass(exact, W, A, max(1, args.repeats // 2))
        print(f"{k:3d} columns: packed bfloat16 {t_packed:.3f} s, plain bfloat16 {t_plain:.3f} s "
              f"(packed {t_plain / t_packed:.2f}x faster), float32 {t_exact:.3f} s ({t_exact / t_packed:.2f}x); "
              f"packed vs plain products differ by {gap:.1e} (relative)")
    del packed, plain, exact, x16
    float32_passes(x32.numpy(), [int(c) for c in args.columns.split(",")], args.repeats, gen)


def timed(fn, repeats: int):
    out = fn()                                               # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats, out


def float32_passes(x, column_counts, repeats: int, gen: torch.Generator) -> None:
    design = standardized_design(x, None, cache_bytes=0)    # streamed in the solver's chunks, like a feature store
    n, d = x.shape
    for k in column_counts:
        W = torch.randn(d + 1, k, dtype=torch.float64, generator=gen)
        R = torch.randn(n, k, dtype=torch.float64, generator=gen)
        WT = W[:-1].T.to(torch.float32).contiguous()
        RT = R.T.to(torch.float32).contiguous()

        def torch_forward():
            return torch.cat([(WT @ b.T).T.to(torch.float64) for _, _, b in design.chunks()]) + W[-1]

        def torch_backward():
            return sum((RT[:, s:e] @ b).to(torch.float64) for s, e, b in design.chunks())

        t_fwd, z = timed(lambda: design.matmul(W), repeats)
        t_fwd_torch, z_torch = timed(torch_forward, repeats)
        t_bwd, g = timed(lambda: design.rmatmul(R), repeats)
        t_bwd_torch, g_torch = timed(torch_backward, repeats)
        gap = max(float((z - z_torch).norm() / z_torch.norm()), float((g[:-1].T - g_torch).norm() / g_torch.norm()))
        print(f"{k:3d} columns, float32: X~ W {t_fwd:.3f} s against torch's {t_fwd_torch:.3f} s "
              f"({t_fwd_torch / t_fwd:.2f}x), X~^T R {t_bwd:.3f} s against {t_bwd_torch:.3f} s "
              f"({t_bwd_torch / t_bwd:.2f}x); results differ by {gap:.1e} (relative)")


if __name__ == "__main__":
    main()
