"""`gan-probe kmeans`: the Coates & Ng single-layer k-means baseline features."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "the Coates & Ng single-layer k-means baseline features"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("kmeans", "the k-means baseline issue")
