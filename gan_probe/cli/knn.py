"""`gan-probe knn`: the k-nearest-neighbour probe on a feature store."""
from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError

HELP = "classify with k nearest neighbours (cosine similarity) on a feature store, with the paper's protocols"
DESCRIPTION = (
    "Classify every test row by its k nearest labelled training rows (cosine similarity of standardised "
    "features): the temperature-weighted vote of the self-supervised literature (--vote weighted, votes "
    "exp(similarity / T)) or the plain majority vote. k (and T) are chosen on a held-out validation split like "
    "the SVM's C. Protocols as in `gan-probe svm`: all labels, --labels-per-class K or the SVHN --labels N, with "
    "--draws. The result file has the SVM result's format, with classifier \"knn\". Under torchrun "
    "(torchrun --nproc_per_node N -m gan_probe knn ...) each rank holds a share of the labelled training rows and "
    "the ranks merge their nearest neighbours, with the one-process result; rank 0 writes.")


def _numbers(value: str, flag: str, kind):
    try:
        items = [kind(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected comma-separated numbers") from None
    if not items:
        raise ConfigError(f"{flag}: give at least one value")
    return tuple(items)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, metavar="FEATS", help="feature store directory")
    p.add_argument("--layers", metavar="LIST", help="use only these 0-based conv layers of the store")
    p.add_argument("--dataset-name", help="dataset name for the result (unset: meta.json's)")
    p.add_argument("--vote", choices=("weighted", "majority"), default="weighted",
                   help="weighted: each neighbour votes exp(similarity / T); majority: one vote each")
    p.add_argument("--k", type=int, help="fix the number of neighbours instead of choosing it on validation rows")
    p.add_argument("--T", type=float, help="fix the temperature of the weighted vote")
    p.add_argument("--k-grid", default="1,5,10,20,50,100,200", metavar="LIST", help="k values tried")
    p.add_argument("--T-grid", default="0.03,0.07,0.1,0.3", metavar="LIST", help="temperatures tried")
    p.add_argument("--labels-per-class", type=int, metavar="K", help="K labelled rows per class per draw")
    p.add_argument("--labels", type=int, metavar="N", help="SVHN protocol: N labels spread across classes")
    p.add_argument("--val-size", type=int, metavar="V", help="validation rows held out of the training split "
                                                             "(unset: 10%%; SVHN protocol: 10000)")
    p.add_argument("--draws", type=int, metavar="N", help="label draws (unset: 10; 1 for all labels)")
    p.add_argument("--selection-draws", type=int, metavar="N", help="draws scored for choosing k and T")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split and the label draws")
    p.add_argument("--no-standardize", action="store_true", help="cosine of the raw features")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="OUT", help="write the result object here (atomically)")
    p.add_argument("--force", action="store_true",
                   help="replace --json OUT even when it is not a gan-probe result (one is always replaced, "
                        "atomically)")


def run(args: argparse.Namespace) -> int:
    """One process, or every rank of ``torchrun -m gan_probe knn`` (each with a share of the bank rows, see
    :class:`gan_probe.probe.knn.KnnBank`): rank 0 locks --json, writes the result and prints; all ranks search."""
    from ..distributed import run_command

    return run_command(args.device, lambda ctx: _locked(args, ctx))


def _locked(args: argparse.Namespace, ctx) -> int:
    from contextlib import ExitStack

    from ..atomic import check_overwrite
    from ..distributed import agree
    from ..locks import output_lock

    with ExitStack() as held:
        def lock() -> None:
            if args.json and ctx.is_main:     # the overwrite rule, then one writer per result
                check_overwrite(args.json, "gan-probe-svm", args.force, "--json")  # kNN results share the schema
                held.enter_context(output_lock(args.json, "--json", directory=False))

        agree(lock, ctx)
        return _run(args, ctx)


def _run(args: argparse.Namespace, ctx) -> int:
    from ..distributed import agree, same_on_every_rank
    from ..features.store import load_store, select_store_layers
    from ..probe import write_result
    from ..probe.knn import KnnConfig, knn_store
    from ..probe.rows import sharded_rows
    from .svm import _parse_layers, print_summary

    config = KnnConfig(vote=args.vote, k_grid=_numbers(args.k_grid, "--k-grid", int),
                       T_grid=_numbers(args.T_grid, "--T-grid", float), k=args.k, T=args.T,
                       labels_per_class=args.labels_per_class, labels=args.labels, val_size=args.val_size,
                       draws=args.draws, selection_draws=args.selection_draws, seed=args.seed, device=args.device,
                       standardize=not args.no_standardize)
    config.validate()
    store = agree(lambda: load_store(args.features), ctx)
    same_on_every_rank(store.identity(), "feature store", ctx)
    if args.layers:
        store = select_store_layers(store, _parse_layers(args.layers))
    with sharded_rows(ctx):   # under torchrun: each rank a share of the bank rows; rank 0 alone writes
        result = knn_store(store, config, dataset_name=args.dataset_name,
                           log=(lambda message: print(message, file=sys.stderr, flush=True)) if ctx.is_main
                           else None)
    if not ctx.is_main:
        return 0
    if args.json:
        write_result(args.json, result)
    return print_summary(result, args.json)
