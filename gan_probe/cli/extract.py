"""`gan-probe extract`: extract pooled discriminator features into a feature store."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "extract pooled discriminator features into a feature store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("extract", "the feature-probe issue")
