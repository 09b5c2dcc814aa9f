"""`gan-probe pipeline`: run train, extract, svm, kmeans, metrics and report as cached stages."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "run train, extract, svm, kmeans, metrics and report as cached stages"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("pipeline", "the report issue")
