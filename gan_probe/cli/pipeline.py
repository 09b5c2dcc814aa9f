"""`gan-probe pipeline`: train -> extract -> svm -> baselines -> IS/FID -> report, cached and resumable."""
from __future__ import annotations

import argparse

HELP = "run train, extract, svm, kmeans, metrics and report as cached stages"
DESCRIPTION = ("Run the whole evaluation from a TOML config (without --config: the embedded default on "
               "scikit-learn's digits; its measured time on a 2-core CPU is in reports/digits-default/README.md, "
               "tens of minutes, most of it in the probes' C grids and FID). Each stage is cached under "
               "OUT/stages/: re-running skips "
               "finished stages whose inputs did not change, and an interrupted training stage resumes. A [vae] "
               "section adds a VAE's encoder to the probed representations and a [knn] section a kNN result beside "
               "every SVM result (both off unless enabled). Example configs: gan-probe pipeline --show-config "
               "digits-default | digits-representations | cifar10-paper | svhn-paper.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.toml", help="pipeline config (default: the embedded digits config)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<config name>)")
    p.add_argument("--show-config", metavar="NAME", help="print a shipped example config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def interrupted(args: argparse.Namespace) -> str:
    """What a rerun of an interrupted command reuses (printed after "interrupted")."""
    return "the same command resumes: finished stages are reused and the interrupted stage picks up its saved work"


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..pipeline import load_config, run_pipeline
    from ..progress import progress_enabled

    if args.show_config:
        from importlib.resources import files

        path = files("gan_probe").joinpath("configs", f"{args.show_config.removesuffix('.toml')}.toml")
        if not path.is_file():
            raise ConfigError(f"--show-config {args.show_config}: no such example; expected digits-default, "
                              f"digits-representations, cifar10-paper or svhn-paper")
        print(path.read_text(), end="")
        return 0
    config = load_config(args.config)
    summary = run_pipeline(config, args.out, progress=progress_enabled(args.no_progress),
                           log=lambda msg: print(msg, flush=True))
    computed = sum(not s.cached for s in summary.stages)
    print(f"{len(summary.stages)} stages ({computed} computed, {len(summary.stages) - computed} up to date)")
    print(f"report: {summary.report}")
    return 0
