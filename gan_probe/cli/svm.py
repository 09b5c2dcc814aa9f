"""`gan-probe svm`: fit linear L2-SVMs on a feature store with the paper's protocols."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "fit linear L2-SVMs on a feature store with the paper's protocols"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("svm", "the feature-probe issue")
