"""`gan-probe kmeans`: the Coates & Ng single-layer k-means baseline features (or raw pixels) -> feature store."""
from __future__ import annotations

import argparse

from ..data import DATASETS

HELP = "the Coates & Ng single-layer k-means baseline features"
DESCRIPTION = (
    "Learn a k-means dictionary on random normalised, ZCA-whitened training patches, encode every patch of "
    "every image with the triangle code max(0, mean(z) - z_k), sum-pool over 4 quadrants (4 K features) and "
    "write the train and test features into FEATS (the layout of `gan-probe extract`, plus dictionary.npz), "
    "ready for `gan-probe svm --features FEATS`. Defaults are the paper's CIFAR-10 constants.")


def _count_or_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a count nor a fraction") from None
    if value <= 0 or (value != int(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count >= 1 or a fraction in (0, 1)")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASETS, default="digits", help="dataset to encode")
    d.add_argument("--data-root", help="dataset directory")
    d.add_argument("--download", action="store_true", help="fetch cifar10/svhn's official files if missing")
    d.add_argument("--image-size", type=int, help="resize and center-crop to this size (default: native)")
    d.add_argument("--train-split", default="train",
                   help="split the dictionary is learned on and encoded as the training set")
    d.add_argument("--test-split", default="test", help="split encoded as the test set (unless --holdout)")
    d.add_argument("--holdout", type=_count_or_fraction, metavar="N",
                   help="hold out N training images (or a fraction, e.g. 0.2), stratified and seeded, as the "
                        "test set instead of reading --test-split (for data with no test split)")
    d.add_argument("--holdout-seed", type=int, default=0, help="seed of --holdout and --train-limit")
    d.add_argument("--train-limit", type=int, metavar="N",
                   help="use a stratified, seeded subset of N training images (after --holdout)")
    k = p.add_argument_group("k-means features")
    k.add_argument("--centroids", type=int, default=1600, help="dictionary size K (4 K features)")
    k.add_argument("--patch", type=int, default=6, help="patch size (pixels)")
    k.add_argument("--stride", type=int, default=1, help="stride of the dense patch grid when encoding")
    k.add_argument("--patches", type=int, default=400_000, help="random training patches for the dictionary")
    k.add_argument("--no-whiten", action="store_true", help="skip ZCA whitening")
    k.add_argument("--encoder", choices=("triangle", "hard"), default="triangle",
                   help="triangle: max(0, mean(z) - z_k); hard: one-hot nearest centroid")
    k.add_argument("--iterations", type=int, default=50, help="k-means (Lloyd) iterations")
    k.add_argument("--seed", type=int, default=0, help="seed of patch sampling and k-means initialisation")
    k.add_argument("--dictionary", metavar="NPZ",
                   help="encode with this saved dictionary (its constants replace the flags above) instead of "
                        "learning one")
    k.add_argument("--raw-pixels", action="store_true",
                   help="write the raw-pixel baseline instead (pixels / 255, flattened; no dictionary)")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--batch-size", type=int, default=256, help="images encoded per batch")
    r.add_argument("--threads", type=int, help="CPU worker threads (default: torch's thread count)")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress bars (else bars on a terminal, periodic lines otherwise)")
    p.add_argument("--out", required=True, metavar="FEATS", help="feature store directory")


def load_splits(args: argparse.Namespace):
    """(train, test, extra meta) for the data flags, chosen by :func:`gan_probe.features.extract.load_probe_splits`
    as every feature store's images are (own splits, or --holdout, then --train-limit)."""
    from ..data.holdout import suggest_holdout
    from ..errors import ConfigError
    from ..features.extract import ExtractOptions, load_probe_splits
    from ..progress import progress_enabled

    if args.train_limit is not None and args.train_limit < 1:
        raise ConfigError(f"--train-limit {args.train_limit}: expected at least 1")
    options = ExtractOptions(train_split=args.train_split, test_split=args.test_split, holdout=args.holdout,
                             holdout_seed=args.holdout_seed)
    with suggest_holdout(args.train_split):
        train, test = load_probe_splits(args.dataset, args.data_root, args.image_size, options,
                                        download=args.download, progress=progress_enabled(args.no_progress),
                                        train_limit=args.train_limit)
    extra = {key: train.info[key] for key in ("holdout", "train_limit") if key in train.info}
    return train, test, extra


def run(args: argparse.Namespace) -> int:
    from ..locks import output_lock

    with output_lock(args.out, "--out"):  # one writer per feature store
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..baselines import KMeansConfig, KMeansDictionary, kmeans_features, pixel_features
    from ..features.store import load_store
    from ..progress import progress_enabled

    if args.threads is not None:
        if args.threads < 1:
            from ..errors import ConfigError

            raise ConfigError(f"--threads {args.threads}: expected at least 1")
        import torch

        torch.set_num_threads(args.threads)
    config = None
    if not args.raw_pixels and args.dictionary is None:
        config = KMeansConfig(centroids=args.centroids, patch=args.patch, stride=args.stride, patches=args.patches,
                              whiten=not args.no_whiten, encoder=args.encoder, iterations=args.iterations,
                              seed=args.seed)
    dictionary = KMeansDictionary.load(args.dictionary) if args.dictionary else None
    train, test, extra = load_splits(args)
    progress = progress_enabled(args.no_progress)
    if args.raw_pixels:
        root = pixel_features(train, test, args.out, progress=progress, extra_meta=extra)
    else:
        root = kmeans_features(train, test, args.out, config or dictionary.config, device=args.device,
                               batch_size=args.batch_size, progress=progress, dictionary=dictionary,
                               extra_meta=extra)
    store = load_store(root)
    meta = store.meta
    what = "raw pixels" if args.raw_pixels else (f"k-means K={meta['config']['centroids']} "
                                                 f"({meta['config']['encoder']}, grid {meta['grid'][0]}x"
                                                 f"{meta['grid'][1]})")
    print(f"features: {root}  train {store.train_features.shape}  test {store.test_features.shape}  ({what})")
    if not args.raw_pixels:
        sec = meta["seconds"]
        print(f"dictionary {sec['dictionary']:.1f} s, encoding {sec['encode']:.1f} s; "
              f"dictionary saved to {root / 'dictionary.npz'}")
    return 0
