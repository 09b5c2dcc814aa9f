"""The DCGAN paper's visual analyses as figures: samples, latent walks, latent arithmetic, what D's features
respond to, and nearest training images of samples.

Every ``*_figure`` function takes the models of a checkpoint (:func:`gan_probe.models.checkpoint.load_models`) and
returns a matplotlib Figure; :func:`save_figure` writes it (PNG or PDF by extension, atomically).

>>> from gan_probe.models.checkpoint import load_models                            # doctest: +SKIP
>>> from gan_probe.viz import interpolate_figure, save_figure  # doctest: +SKIP
>>> models = load_models("run/checkpoint.pt")  # doctest: +SKIP
>>> save_figure(interpolate_figure(models, rows=10, steps=10, seed=0), "walk.png")  # doctest: +SKIP
"""
from .arithmetic import Arithmetic, arithmetic_figure, latent_arithmetic
from .common import dataset_images, save_figure
from .filters import filters_figure, guided_backprop, receptive_fields, top_activations
from .interpolate import Interpolation, interpolate, interpolate_figure, interpolation_path
from .neighbours import Neighbours, nearest_neighbours, neighbours_figure
from .samples import sample_grid, samples_figure

__all__ = ["Arithmetic", "arithmetic_figure", "latent_arithmetic", "dataset_images", "save_figure",
           "filters_figure", "guided_backprop", "receptive_fields", "top_activations", "Interpolation",
           "interpolate", "interpolate_figure", "interpolation_path", "Neighbours", "nearest_neighbours",
           "neighbours_figure", "sample_grid", "samples_figure"]
