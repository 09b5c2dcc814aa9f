"""Baselines that write the same feature stores as ``gan-probe extract``: Coates & Ng k-means, raw pixels.

>>> from gan_probe.baselines import KMeansConfig, learn_dictionary, KMeansDictionary, kmeans_features
>>> from gan_probe.baselines import pixel_features
"""
from __future__ import annotations

from .clustering import KMeansResult, lloyd_kmeans
from .config import ENCODERS, KMeansConfig
from .dictionary import KMeansDictionary, learn_dictionary
from .encode import QUADRANTS, PatchEncoder, pool_quadrants, quadrant_halves
from .kmeans import DICTIONARY, kmeans_features, kmeans_store_dictionary, resolve_device
from .patches import extract_patches, normalise_patches, normalise_patches_, patch_grid, sample_patches
from .pixels import pixel_features, pixel_matrix
from .whitening import Zca, fit_zca

__all__ = ["KMeansConfig", "ENCODERS", "learn_dictionary", "KMeansDictionary", "kmeans_features",
           "kmeans_store_dictionary", "DICTIONARY", "resolve_device", "PatchEncoder", "pool_quadrants",
           "quadrant_halves", "QUADRANTS", "lloyd_kmeans", "KMeansResult", "fit_zca", "Zca", "sample_patches",
           "extract_patches", "normalise_patches", "normalise_patches_", "patch_grid", "pixel_features",
           "pixel_matrix"]
