"""`gan-probe inception-score`: Inception Score of generated or real images."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "Inception Score of generated or real images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("inception-score", "the sample-quality issue")
