"""`gan-probe fid`: Frechet Inception Distance between two image sources."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "Frechet Inception Distance between two image sources"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("fid", "the sample-quality issue")
