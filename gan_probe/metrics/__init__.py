"""Sample-quality metrics: Inception Score and Frechet Inception Distance with the TF 2015-12-05 Inception.

Modules: ``resize`` (TF1 bilinear), ``inception_net`` (the network), ``weights`` (files, cache, download),
``sources`` (checkpoint / images / dataset / stats), ``extractors`` (batched feature extraction),
``inception_score`` and ``fid`` (pure functions on arrays), ``evaluate`` (whole runs -> result dicts).

>>> import numpy as np
>>> from gan_probe.metrics import inception_score_from_probs, frechet_distance
>>> round(inception_score_from_probs(np.eye(10)[np.arange(100) % 10], splits=1).mean, 6)
10.0
>>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)).fid, 6)
2.0
"""
from .fid import FeatureStats, FrechetResult, StatsAccumulator, fid_from_stats, frechet_distance
from .inception_net import InceptionV3TF
from .inception_score import (ISConventions, ISResult, grouped_inception_score, inception_score,
                              inception_score_from_probs)
from .resize import tf1_bilinear_resize

__all__ = ["FeatureStats", "FrechetResult", "StatsAccumulator", "fid_from_stats", "frechet_distance",
           "InceptionV3TF", "ISConventions", "ISResult", "grouped_inception_score", "inception_score",
           "inception_score_from_probs", "tf1_bilinear_resize"]
