"""`gan-probe viz`: samples, interpolations, latent arithmetic, filters and neighbours figures."""
from __future__ import annotations

import argparse

from ..data import DATASETS
from ..progress import progress_enabled

HELP = "samples, interpolations, latent arithmetic, filters and neighbours figures"
DESCRIPTION = ("Figures of the DCGAN paper's visual analyses from a checkpoint. Each subcommand writes one "
               "figure to --out (PNG, or PDF when the name ends in .pdf); the same --seed gives the same figure. "
               "samples, interpolate and arithmetic also take a VAE checkpoint (train --model vae): its decoder, "
               "with codes from the prior N(0, I).")

#: the figures that only use the generator, so that a VAE's decoder can stand in for it
DECODER_ONLY = ("samples", "interpolate", "arithmetic")
SUBCOMMANDS = {
    "samples": "a grid of samples from fixed latent codes",
    "interpolate": "walks in latent space between random codes (paper figure 4)",
    "arithmetic": "vector arithmetic on the latent codes of chosen samples (paper figure 7)",
    "filters": "image patches that most activate D's feature maps, with guided backprop (paper figure 5)",
    "neighbours": "nearest training images of samples in pixel and D-feature space (memorisation check)",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a gan-probe checkpoint")
    p.add_argument("--out", required=True, metavar="FILE", help="output figure (.png or .pdf)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent codes / random choices")
    p.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N")
    p.add_argument("--dpi", type=int, default=150, help="resolution of PNG output")
    p.add_argument("--force", action="store_true",
                   help="replace --out FILE even when it is not a figure written by gan-probe viz "
                        "(one of those is always replaced, atomically)")


def _data(p: argparse.ArgumentParser, limit: int | None) -> None:
    p.add_argument("--dataset", choices=DATASETS, help="images to search (default: the checkpoint's training data)")
    p.add_argument("--data-root", help="dataset directory (default: the one recorded in a training checkpoint; for an "
                   "exported or shipped checkpoint, the dataset's default location)")
    p.add_argument("--split", help="split to search (default: the checkpoint's training split)")
    p.add_argument("--limit", type=int, default=limit,
                   help="use a seeded random subset of this many images" + ("" if limit else " (default: all)"))
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE")
    sub.required = True
    from . import HelpFormatter as fmt
    p = {name: sub.add_parser(name, help=text, description=text, formatter_class=fmt)
         for name, text in SUBCOMMANDS.items()}
    for sp in p.values():
        _common(sp)

    p["samples"].add_argument("--n", type=int, default=64, help="number of samples")
    p["samples"].add_argument("--nrow", type=int, help="samples per row (default: about square)")
    p["samples"].add_argument("--numbers", action="store_true", help="print each sample's index (for arithmetic)")

    p["interpolate"].add_argument("--rows", type=int, default=10, help="number of walks")
    p["interpolate"].add_argument("--steps", type=int, default=10, help="images per walk, endpoints included")
    p["interpolate"].add_argument("--mode", choices=("linear", "slerp"),
                                  help="path (default: slerp for a normal prior, linear for uniform/mog)")

    a = p["arithmetic"]
    a.add_argument("--grid-seed", type=int, default=0,
                   help="seed of the sample grid the indices refer to (see: viz samples --seed S --numbers)")
    a.add_argument("--grid-n", type=int, default=64, help="size of that grid (viz samples --n)")
    for name in "abc":
        a.add_argument(f"--{name}", required=True, metavar="I,J,K",
                       help=f"indices of the samples of concept {name.upper()} (result: A - B + C)")
    a.add_argument("--perturb", type=float, default=0.25, help="uniform noise range added for the variations")
    a.add_argument("--variations", type=int, default=8, help="number of perturbed results")

    f = p["filters"]
    f.add_argument("--layers", help="comma-separated 0-based conv layers (default: the last)")
    f.add_argument("--maps", type=int, default=6, help="feature maps per layer (the first K)")
    f.add_argument("--top", type=int, default=8, help="top-activating patches per map")
    _data(f, limit=5000)

    nb = p["neighbours"]
    nb.add_argument("--n", type=int, default=8, help="number of samples")
    nb.add_argument("--k", type=int, default=5, help="neighbours per sample and space")
    nb.add_argument("--grid", type=int, default=4, help="max-pooling grid of the D features")
    _data(nb, limit=None)


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_overwrite
    from ..models.checkpoint import load_models
    from ..devices import resolve_device
    from ..viz import common

    common.check_out_path(args.out)  # before any work
    check_overwrite(args.out, "gan-probe-figure", args.force)
    # samples, interpolations and arithmetic only decode: a VAE's decoder (samples from its N(0, I) prior) will do
    models = load_models(args.checkpoint, device=resolve_device(args.device), vae=args.figure in DECODER_ONLY,
                         what=f"viz {args.figure}")
    fig = _FIGURES[args.figure](models, args)
    path = common.save_figure(fig, args.out, dpi=args.dpi)
    print(f"wrote {path}")
    return 0


def _samples(models, args):
    from ..viz.samples import samples_figure

    return samples_figure(models, n=args.n, seed=args.seed, nrow=args.nrow, numbers=args.numbers,
                          title=f"{args.n} samples, seed {args.seed}" if args.numbers else None)


def _interpolate(models, args):
    from ..viz.interpolate import interpolate_figure

    return interpolate_figure(models, rows=args.rows, steps=args.steps, mode=args.mode, seed=args.seed)


def _arithmetic(models, args):
    from ..viz.arithmetic import arithmetic_figure, parse_indices

    return arithmetic_figure(models, parse_indices(args.a, "--a"), parse_indices(args.b, "--b"),
                             parse_indices(args.c, "--c"), grid_seed=args.grid_seed, grid_n=args.grid_n,
                             perturb=args.perturb, variations=args.variations, seed=args.seed)


def _images(models, args):
    from ..viz.common import images_for_checkpoint

    return images_for_checkpoint(models, args.dataset, args.data_root, args.split, args.limit, args.seed,
                                 args.checkpoint)


def _filters(models, args):
    from ..errors import ConfigError
    from ..viz.filters import filters_figure

    layers = None
    if args.layers:
        try:
            layers = [int(v) for v in args.layers.split(",")]
        except ValueError:
            raise ConfigError(f"--layers {args.layers!r}: expected comma-separated integers") from None
    return filters_figure(models, _images(models, args), layers=layers, maps=args.maps, top=args.top,
                          seed=args.seed, batch_size=args.batch_size, progress=progress_enabled(args.no_progress))


def _neighbours(models, args):
    from ..viz.neighbours import neighbours_figure

    return neighbours_figure(models, _images(models, args), n=args.n, k=args.k, seed=args.seed, grid=args.grid,
                             batch_size=args.batch_size, progress=progress_enabled(args.no_progress))


_FIGURES = {"samples": _samples, "interpolate": _interpolate, "arithmetic": _arithmetic, "filters": _filters,
            "neighbours": _neighbours}
