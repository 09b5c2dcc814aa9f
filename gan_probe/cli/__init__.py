"""The ``gan-probe`` command line: a thin layer that parses flags, calls the Python API and prints.

Each subcommand lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import GanProbeError

# subcommand name -> module (inside gan_probe.cli)
COMMANDS = {
    "train": "train",
    "extract": "extract",
    "svm": "svm",
    "knn": "knn",
    "kmeans": "kmeans",
    "inception-score": "inception_score",
    "fid": "fid",
    "report": "report",
    "pipeline": "pipeline",
    "viz": "viz",
    "export": "export",
    "convert": "convert",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to an option's help only when it says something: not for required options, flags
    (store_true), unset (``None``) defaults, or help that already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not text or "%(default)" in text or "(default" in text or action.required or action.nargs == 0
                or default is None or default is argparse.SUPPRESS or isinstance(default, bool)):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too: ``gan-probe <cmd>: error: <message>`` and exit status 2, naming the
    (sub)command whose ``--help`` lists the valid flags."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:  # argparse reports these from the top-level parser; the subcommand's help is the useful one
            _innermost(self, parsed).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def _innermost(parser: argparse.ArgumentParser, parsed: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest (sub)parser that ``parsed`` went through (``gan-probe viz samples``, ``gan-probe svm``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
            if chosen is not None:
                return _innermost(chosen, parsed)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="gan-probe",
        description="Evaluate GANs the way the DCGAN paper does: train DCGANs, probe discriminator features "
                    "with linear L2-SVMs, compare with the k-means baseline, score samples (IS, FID), report.")
    parser.add_argument("--version", action="version", version=f"gan-probe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _interrupted=getattr(module, "interrupted", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except GanProbeError as exc:
        print(f"gan-probe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        detail = str(exc)  # e.g. training's "stopped at step N ...; checkpoint written to ..."
        hint = args._interrupted(args) if args._interrupted is not None else None
        print(f"gan-probe {args.command}: interrupted" + (f": {detail}" if detail else "")
              + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
