"""`gan-probe extract`: pooled discriminator features -> feature store."""
from __future__ import annotations

import argparse
import re

from ..data import DATASETS
from ..models import PRESETS

HELP = "extract pooled discriminator (or VAE encoder) features into a feature store"
DESCRIPTION = ("Run a discriminator over a dataset's train and test splits, max-pool every conv layer's "
               "activations to a GRID x GRID map, flatten and concatenate (28,672 dims for paper32). Writes "
               "FEATS/{train,test}_{features,labels}.npy and meta.json. Re-running with the same inputs reuses "
               "the finished store. A VAE checkpoint (train --model vae) gives its encoder's conv layers pooled the "
               "same way and mu (nz values, unpooled).")


def add_common_arguments(p: argparse.ArgumentParser, out_required: bool) -> None:
    """Flags shared by `extract` and the one-step form of `svm`."""
    src = p.add_argument_group("discriminator")
    src.add_argument("--checkpoint", help="gan-probe checkpoint (.pt)")
    src.add_argument("--random-init", metavar="PRESET|CKPT",
                     help="instead of a checkpoint: random weights (the random-D baseline) for a preset "
                          f"({', '.join(sorted(PRESETS))}) or for the architecture of checkpoint CKPT")
    src.add_argument("--init-seed", type=int, default=0, help="seed of --random-init")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASETS, default=None if not out_required else "digits",
                   help="dataset whose train and test splits are run through the discriminator")
    d.add_argument("--data-root", help="dataset directory")
    d.add_argument("--download", action="store_true", help="fetch cifar10/svhn's official files if missing")
    d.add_argument("--train-split", default="train",
                   help="split whose features train the probe (and re-estimate batch norm)")
    d.add_argument("--test-split", default="test", help="split whose features test the probe (unless --holdout)")
    d.add_argument("--holdout", type=int, metavar="N",
                   help="hold out N training images (stratified, seeded) as the test set instead of reading "
                        "--test-split (for data with no test split)")
    d.add_argument("--holdout-seed", type=int, default=0, help="seed of --holdout")
    f = p.add_argument_group("features")
    f.add_argument("--grid", type=int, default=4, help="max-pool every layer to GRID x GRID")
    f.add_argument("--layers", help="comma-separated 0-based conv layers or their names conv1..convN; a VAE's "
                                    "encoder also has mu, its posterior mean (default: all, mu included)")
    f.add_argument("--bn", choices=("recompute", "checkpoint"), default="recompute",
                   help="re-estimate batch-norm statistics on the training split, or keep the checkpoint's")
    f.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    f.add_argument("--no-progress", action="store_true",
                   help="no progress bars (else bars on a terminal, periodic lines otherwise)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, out_required=True)
    p.add_argument("--out", required=True, metavar="FEATS", help="feature store directory")
    p.add_argument("--shards", action="store_true",
                   help="under torchrun: every rank writes its own rows to its own file (FEATS/shards.json lists "
                        "them), with no gather through rank 0; readers see the same store")
    m = p.add_argument_group("another model instead of a discriminator")
    m.add_argument("--model", metavar="torchvision:NAME",
                   help="a torchvision model's named layers (--layers layer1,layer2: submodule names), pooled to the "
                        "grid like D's; random weights unless --weights")
    m.add_argument("--weights", metavar="FILE", help="--model: a state-dict file of the model's weights")
    m.add_argument("--image-size", type=int, default=32, help="--model: images are resized to this size")


def options_from_args(args: argparse.Namespace):
    from ..errors import ConfigError
    from ..features import ExtractOptions

    layers = None
    if args.layers:
        parts = [x.strip() for x in args.layers.split(",")]
        if not all(re.fullmatch(r"-?\d+|conv[1-9]\d*|mu", x) for x in parts):
            raise ConfigError(f"--layers {args.layers!r}: expected comma-separated 0-based layer numbers or names "
                              f"(conv1, conv2, ...; mu for a VAE)")
        layers = tuple(int(x) if x.lstrip("-").isdigit() else x for x in parts)
    return ExtractOptions(grid=args.grid, layers=layers, bn=args.bn, batch_size=args.batch_size,
                          train_split=args.train_split, test_split=args.test_split, holdout=args.holdout,
                          holdout_seed=args.holdout_seed)


def extract_from_args(args: argparse.Namespace, out):
    from ..data.holdout import suggest_holdout
    from ..features import extract_features
    from ..progress import progress_enabled

    if getattr(args, "model", None):
        if getattr(args, "shards", False):
            from ..errors import ConfigError

            raise ConfigError("--shards: a discriminator's features only (not --model)")
        return _extract_model(args, out)
    with suggest_holdout(args.train_split):
        return extract_features(checkpoint=args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                                out=out, options=options_from_args(args), device=args.device,
                                progress=progress_enabled(args.no_progress), random_init=args.random_init,
                                seed=args.init_seed, download=args.download, shards=getattr(args, "shards", False))


def interrupted(args: argparse.Namespace) -> str:
    """What a rerun of an interrupted command reuses (printed after "interrupted")."""
    return (f"the same command resumes: {args.out}/.partial/ keeps the batch-norm statistics and the batches "
            f"written so far")


def run(args: argparse.Namespace) -> int:
    from ..distributed import run_command
    from ..features import load_store

    def body(ctx) -> int:  # under torchrun every rank computes, rank 0 writes and reports
        root = extract_from_args(args, args.out)
        if not ctx.is_main:
            return 0
        store = load_store(root)
        meta = store.meta
        print(f"features: {root}  train {store.train_features.shape}  test {store.test_features.shape}  "
              f"({meta['n_features']} dims: " + ", ".join(f"{k} {v}" for k, v in meta["dims_per_layer"].items())
              + ")")
        return 0

    return run_command(args.device, body)


def _extract_model(args: argparse.Namespace, out):
    """``--model torchvision:NAME``: the named layers of another model (gan_probe.features.extract_module)."""
    from ..data.holdout import suggest_holdout
    from ..errors import ConfigError
    from ..features import ExtractOptions
    from ..features.extract_module import extract_module_features
    from ..progress import progress_enabled

    if args.checkpoint or args.random_init:
        raise ConfigError("--model replaces --checkpoint / --random-init; give one of them")
    if not args.layers:
        raise ConfigError(f"--model {args.model}: name the layers to pool with --layers (e.g. layer1,layer2)")
    options = ExtractOptions(grid=args.grid, batch_size=args.batch_size, train_split=args.train_split,
                             test_split=args.test_split, holdout=args.holdout, holdout_seed=args.holdout_seed)
    with suggest_holdout(args.train_split):
        return extract_module_features(args.model, [x for x in args.layers.split(",") if x], dataset=args.dataset,
                                       data_root=args.data_root, out=out, options=options, device=args.device,
                                       progress=progress_enabled(args.no_progress), weights=args.weights,
                                       seed=args.init_seed, image_size=args.image_size, download=args.download)
