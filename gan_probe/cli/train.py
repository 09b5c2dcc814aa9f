"""`gan-probe train`: train a DCGAN."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "train a DCGAN (paper hyperparameters by default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("train", "the foundation issue")
