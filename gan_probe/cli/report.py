"""`gan-probe report`: paper-style tables and figures from result files."""
from __future__ import annotations

import argparse

from . import not_ready

HELP = "paper-style tables and figures from result files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return not_ready("report", "the report issue")
