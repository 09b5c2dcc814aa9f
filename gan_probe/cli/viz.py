"""`gan-probe viz`: samples, interpolations, latent arithmetic, filters and neighbours figures."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "samples, interpolations, latent arithmetic, filters and neighbours figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("viz", "the variants/visualisation issue")
