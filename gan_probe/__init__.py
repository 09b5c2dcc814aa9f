"""gan-probe: rerun the DCGAN paper's evaluation on your own models and data."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import GanProbeError  # noqa: E402
from .data import load_split, ImageSplit, DATASETS  # noqa: E402

__all__ = ["__version__", "GanProbeError", "load_split", "ImageSplit", "DATASETS"]
