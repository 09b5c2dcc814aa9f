"""`gan-probe svm`: fit linear L2-SVMs on a feature store with the paper's protocols."""
from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError

HELP = "fit linear L2-SVMs on a feature store with the paper's protocols"
DESCRIPTION = (
    "Fit one-vs-rest linear L2-SVMs (squared hinge, L2 penalty: the objective and C of scikit-learn's "
    "LinearSVC) on standardised features and report test accuracy. Protocols: all training labels (default), "
    "--labels-per-class K with --draws N random draws (mean +- std), or the SVHN protocol --labels N "
    "--val-size V --draws N (test error mean +- 1.96 std). C is chosen on a held-out validation split unless "
    "--C fixes it. Give a feature store (--features) or extract one first (--dataset, --data-root, "
    "--checkpoint, and --holdout N for data with no test split). Accuracies in --json are fractions in [0, 1]. "
    "Under torchrun (torchrun --nproc_per_node N -m gan_probe svm ...) each rank fits on its share of the training "
    "rows (gloo on CPUs, NCCL on GPUs), with the one-process result; rank 0 writes.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("features")
    src.add_argument("--features", metavar="FEATS", help="feature store directory (train/test features + meta.json)")
    src.add_argument("--dataset", help="one-step form: dataset to extract features from (e.g. cifar10, svhn)")
    src.add_argument("--data-root", metavar="R", help="one-step form: dataset root")
    src.add_argument("--checkpoint", metavar="CKPT", help="one-step form: gan-probe checkpoint whose discriminator "
                                                         "gives the features")
    src.add_argument("--features-dir", metavar="DIR", help="one-step form: where to write the feature store")
    src.add_argument("--holdout", type=int, metavar="N",
                     help="one-step form: hold out N training images (stratified, seeded) as the test set instead "
                          "of reading the test split, as extract --holdout does (for data with no test split)")
    src.add_argument("--holdout-seed", type=int, default=0, metavar="SEED", help="one-step form: seed of --holdout")
    src.add_argument("--dataset-name", help="dataset name for the result; unset: meta.json's 'dataset'")
    src.add_argument("--layers", metavar="LIST",
                     help="probe only these 0-based conv layers of the store (comma-separated, e.g. 0,1,2,3; "
                          "read into memory); unset: every column")
    proto = parser.add_argument_group("protocol")
    proto.add_argument("--C", default="auto", help="regularisation constant, or 'auto' to choose it on a "
                                                   "validation split")
    proto.add_argument("--C-grid", metavar="LIST",
                       help="comma-separated C values tried by --C auto; unset: 1e-6,1e-5,1e-4,1e-3,0.01,0.1,1")
    proto.add_argument("--C-patience", type=int, metavar="N",
                       help="full labels, --C auto: stop going up the grid after N values in a row scored below "
                            "the best validation accuracy (the rest of the grid is recorded as skipped); unset: "
                            "fit every C. Large C values are the slowest fits on a CPU")
    proto.add_argument("--settle", type=int, metavar="N",
                       help="full labels, --C auto: a fit on the C grid stops once its validation predictions "
                            "have settled (at most 0.05%% of them changed) in N Newton steps in a row: C is chosen on "
                            "validation accuracy alone. The refit at the chosen C always runs to --tol. 0: every "
                            "grid fit runs to --tol; unset: 2")
    proto.add_argument("--labels-per-class", type=int, metavar="K", help="K labelled rows per class per draw")
    proto.add_argument("--labels", type=int, metavar="N", help="SVHN protocol: N labels spread across classes")
    proto.add_argument("--val-size", type=int, metavar="V",
                       help="validation rows held out of the training split; unset: 10%% of it with --C auto "
                            "(SVHN protocol: 10000), none with a fixed --C")
    proto.add_argument("--draws", type=int, metavar="N", help="random label draws; unset: 10 (1 for all labels)")
    proto.add_argument("--selection-draws", type=int, metavar="N",
                       help="draws scored for choosing C; unset: all (the authors' SVHN script used 10 of 100)")
    proto.add_argument("--seed", type=int, default=0, help="seed of the validation split and the label draws")
    solver = parser.add_argument_group("solver")
    solver.add_argument("--solver", choices=("torch", "liblinear"), default="torch",
                        help="torch (fast, CPU or CUDA) or liblinear (scikit-learn's LinearSVC, the reference)")
    solver.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torch solver)")
    solver.add_argument("--method", choices=("auto", "primal", "kernel"), default="auto",
                        help="torch solver: primal Newton-CG, exact Newton on the Gram matrix (few rows), or auto")
    solver.add_argument("--tol", type=float, default=None,
                        help="torch solver: stop when a Newton step lowers the objective by less than this "
                             "fraction; unset: 1e-6")
    parser.add_argument("--json", metavar="OUT",
                        help="write the result object here (atomically); until then each C's fit of the full-label "
                             "protocol is kept in OUT.fits/, from which a rerun of an interrupted command resumes")
    parser.add_argument("--force", action="store_true",
                        help="replace --json OUT even when it is not a gan-probe svm result "
                             "(one of those is always replaced, atomically)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (else bars on a terminal, periodic lines otherwise; the line per "
                             "fitted C and draw is written either way)")


def probe_config_from_args(args: argparse.Namespace):
    """The run's :class:`~gan_probe.probe.ProbeConfig`, built by :func:`gan_probe.probe.probe_config` (as the
    pipeline builds its own) from the flags as given; errors name the flags."""
    from ..probe import probe_config

    return probe_config(C=args.C, C_grid=args.C_grid, labels_per_class=args.labels_per_class, labels=args.labels,
                        val_size=args.val_size, draws=args.draws, selection_draws=args.selection_draws,
                        C_patience=args.C_patience, seed=args.seed, solver=args.solver, device=args.device,
                        method=args.method, tol=args.tol, settle=args.settle)


def _parse_layers(value: str) -> list[int]:
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--layers {value!r}: expected comma-separated 0-based layer indices, e.g. 0,1,2,3") from None


def _features_dir(args: argparse.Namespace, progress: bool) -> str:
    one_step = any(v is not None for v in (args.checkpoint, args.dataset, args.data_root, args.features_dir,
                                           args.holdout))
    if args.features and one_step:
        raise ConfigError("give either --features or the one-step form (--dataset, --data-root, --checkpoint), "
                          "not both")
    if args.features:
        return args.features
    if not one_step:
        raise ConfigError("no features: give --features FEATS, or --dataset, --data-root and --checkpoint to "
                          "extract them first")
    if args.checkpoint is None or args.dataset is None:
        raise ConfigError("the one-step form needs --dataset and --checkpoint (and usually --data-root)")
    from ..data.holdout import suggest_holdout
    from ..features.extract import extract_features

    with suggest_holdout():
        path = extract_features(checkpoint=args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                                out=args.features_dir, device=args.device, progress=progress,
                                holdout=args.holdout, holdout_seed=args.holdout_seed)
    return str(path)


def run(args: argparse.Namespace) -> int:
    """One process, or every rank of ``torchrun -m gan_probe svm`` (each with a share of the training rows, see
    :mod:`gan_probe.probe.rows`): rank 0 checks and locks --json, writes the result and prints; all ranks fit."""
    from ..distributed import run_command

    return run_command(args.device, lambda ctx: _locked(args, ctx))


def _locked(args: argparse.Namespace, ctx) -> int:
    from contextlib import ExitStack

    from ..atomic import check_overwrite
    from ..distributed import agree
    from ..locks import output_lock

    with ExitStack() as held:
        def lock() -> None:
            if args.json and ctx.is_main:
                check_overwrite(args.json, "gan-probe-svm", args.force, "--json")
                # one writer per result, checked before the fit
                held.enter_context(output_lock(args.json, "--json", directory=False))

        agree(lock, ctx)
        return _run(args, ctx)


def interrupted(args: argparse.Namespace) -> str | None:
    """What a rerun of an interrupted command reuses (printed after "interrupted")."""
    from ..probe.resume import fits_dir

    kept = fits_dir(args.json) if args.json else None
    if kept is None or not any(kept.glob("C=*.pt")):
        return None
    return f"the C values fitted so far are kept in {kept}; the same command resumes after them"


def _run(args: argparse.Namespace, ctx) -> int:
    from ..distributed import agree, same_on_every_rank
    from ..features.store import load_store, select_store_layers
    from ..probe import run_probe
    from ..probe.rows import sharded_rows
    from ..progress import progress_enabled

    progress = progress_enabled(args.no_progress) and ctx.is_main
    config = probe_config_from_args(args)  # checked before any extraction or fit
    root = _features_dir(args, progress)
    features = agree(lambda: load_store(root), ctx)
    same_on_every_rank(features.identity(), "feature store", ctx)
    if args.layers:
        features = select_store_layers(features, _parse_layers(args.layers))
    with sharded_rows(ctx):   # under torchrun: each rank a share of the rows; rank 0 alone writes
        result = run_probe(features, config, args.json, dataset_name=args.dataset_name, progress=progress,
                           log=(lambda message: print(message, file=sys.stderr, flush=True)) if ctx.is_main
                           else None)
    return print_summary(result, args.json) if ctx.is_main else 0


def print_summary(result: dict, json_path: str | None) -> int:
    """Print a probe result's summary, and where it was written; the classifier commands' end."""
    from ..probe import summary_lines

    for line in summary_lines(result):
        print(line)
    if json_path:
        print(f"wrote {json_path}")
    return 0
