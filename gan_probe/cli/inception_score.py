"""`gan-probe inception-score`: Inception Score of generated or real images."""
from __future__ import annotations

import argparse

HELP = "Inception Score of generated or real images"
DESCRIPTION = (
    "Inception Score (Salimans et al. 2016) with the TF Inception 2015-12-05 network (1008 logits, no bias), "
    "images resized to 299 with TF1 bilinear interpolation and normalised as (x - 128) / 128. Defaults follow "
    "torch-fidelity 0.4.0: 10 splits, samples permuted with RandomState(2020) before splitting, population std "
    "(ddof 0), float64. Every convention is a flag and is written into the --json result. Weights: --weights "
    "PATH, else weights-inception-2015-12-05-6726825d.pth from $GAN_PROBE_CACHE (default ~/.cache/gan_probe), "
    "downloaded there with a sha256 check when a network is available.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("images (exactly one)")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint", metavar="CKPT", help="gan-probe checkpoint: score samples of its generator")
    g.add_argument("--images", metavar="PATH", help="image folder, or .npy/.npz uint8 array (N, H, W, 3)")
    g.add_argument("--dataset", metavar="NAME", help="dataset reader (cifar10, svhn, imagenet, folder, digits)")
    s.add_argument("--data-root", metavar="R", help="dataset directory (with --dataset)")
    s.add_argument("--split", default="train", help="dataset split (with --dataset)")
    s.add_argument("--samples", type=int, help="checkpoint: samples to draw (default 50000); images/dataset: "
                                               "score a seeded random subset of this size (default: all)")
    s.add_argument("--seed", type=int, default=0, help="seed for generator sampling / subset choice")
    c = p.add_argument_group("conventions")
    c.add_argument("--splits", type=int, default=10, help="number of splits")
    c.add_argument("--split-shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="permute samples before splitting")
    c.add_argument("--split-seed", type=int, default=2020, help="seed of the permutation (numpy RandomState)")
    c.add_argument("--std-ddof", type=int, choices=(0, 1), default=0, help="ddof of the std over splits")
    c.add_argument("--per-class", action="store_true",
                   help="also report the IS within each class: the --classifier's argmax class, else the "
                        "dataset's labels")
    c.add_argument("--classifier", metavar="MODEL.pt",
                   help="TorchScript classifier for --per-class: float (N, 3, H, W) in [-1, 1] -> logits "
                        "(loaded only with --trust-classifier-code)")
    c.add_argument("--trust-classifier-code", action="store_true",
                   help="allow loading --classifier: a TorchScript file runs the code stored in it when it is "
                        "loaded, with your permissions; give this only for a file whose origin you trust")
    n = p.add_argument_group("network and compute")
    n.add_argument("--weights", metavar="PATH", help="Inception state dict (pt_inception-2015-12-05 layout)")
    n.add_argument("--no-download", action="store_true", help="never download the weights")
    n.add_argument("--batch-size", type=int, default=50, help="images per Inception forward pass")
    n.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    n.add_argument("--json", metavar="OUT", help="write the result with conventions and provenance here")
    n.add_argument("--no-progress", action="store_true", help="no progress bar")
    n.add_argument("--force", action="store_true",
                   help="replace --json OUT even when it is not a gan-probe inception-score result "
                        "(one of those is always replaced, atomically)")


def open_source(args: argparse.Namespace, device, progress: bool = False):
    from ..errors import GanProbeError
    from ..metrics.sources import open_checkpoint, open_dataset, open_images

    if args.samples is not None and args.samples < 1:
        raise GanProbeError(f"--samples {args.samples}: expected a positive number")
    if args.checkpoint:
        return open_checkpoint(args.checkpoint, args.samples or 50_000, args.seed, device)
    if args.images:
        return open_images(args.images, progress).subset(args.samples, args.seed)
    return open_dataset(args.dataset, args.data_root, args.split, progress).subset(args.samples, args.seed)


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_overwrite
    from ..distributed import run_command
    from ..errors import GanProbeError

    if args.json:
        check_overwrite(args.json, "gan-probe-inception-score", args.force, "--json")
    if args.splits < 1:
        raise GanProbeError(f"--splits {args.splits}: expected a positive number")
    if args.batch_size < 1:
        raise GanProbeError(f"--batch-size {args.batch_size}: expected a positive number")
    if args.classifier and not args.per_class:
        raise GanProbeError("--classifier is only used with --per-class")
    if args.classifier:
        from ..metrics.evaluate import check_classifier_trust

        check_classifier_trust(args.classifier, args.trust_classifier_code)  # before any work
    return run_command(args.device, lambda ctx: _score(args, ctx))


def _score(args: argparse.Namespace, ctx) -> int:
    """Every rank scores its share of the images (one process: all of them); rank 0 reports and writes."""
    from ..atomic import write_json
    from ..metrics.evaluate import inception_score_of, reference_extractor
    from ..metrics.inception_score import ISConventions
    from ..progress import progress_enabled
    from ..provenance import provenance

    device = ctx.device
    extractor = reference_extractor(args.weights, device, download=not args.no_download)
    source = open_source(args, device, progress=progress_enabled(args.no_progress) and ctx.is_main)
    conventions = ISConventions(args.splits, args.split_shuffle, args.split_seed, args.std_ddof)
    result = inception_score_of(source, extractor, conventions, args.batch_size, args.per_class, args.classifier,
                                progress=progress_enabled(args.no_progress), ctx=ctx,
                                trust_classifier_code=args.trust_classifier_code)
    if result is None:  # not rank 0
        return 0
    result = {"metric": "inception_score", **result, "source": source.describe(), "ranks": ctx.world_size,
              "provenance": provenance(device=str(device), seeds={"sampling": args.seed,
                                                                  "split": args.split_seed})}
    if not result["extractor"].get("reference", False):
        print("warning: these weights are not the published Inception 2015-12-05 file (sha256 differs); "
              "the score is not comparable with published numbers")
    print(f"Inception Score: {result['inception_score_mean']:.4f} +- {result['inception_score_std']:.4f} "
          f"({result['n']} images, {args.splits} splits)")
    for cls, r in result.get("per_class", {}).get("classes", {}).items():
        score = "n/a (fewer samples than splits)" if r["inception_score_mean"] is None else \
            f"{r['inception_score_mean']:.4f} +- {r['inception_score_std']:.4f}"
        print(f"  class {cls}: {score} ({r['n']} images)")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
