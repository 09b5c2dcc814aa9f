"""The in-memory form every dataset reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..provenance import sha256_array


@dataclass(eq=False)
class ImageSplit:
    """One split of a dataset.

    ``images`` is a uint8 array of shape (N, H, W, 3) (it may be a read-only memory map), ``labels`` an int64
    array of shape (N,) or ``None`` for unlabelled data, ``classes`` the class names in label order.
    """

    images: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    dataset: str
    split: str
    source: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (len(self.images),):
                raise ValueError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @cached_property
    def checksum(self) -> str:
        """sha256 over the pixel bytes and the labels: identifies the data independent of file names."""
        digest = sha256_array(self.images)
        if self.labels is not None:
            digest = sha256_array(np.frombuffer((digest + sha256_array(self.labels)).encode(), dtype=np.uint8))
        return digest

    def subset(self, indices: np.ndarray, split: str | None = None) -> "ImageSplit":
        indices = np.asarray(indices)
        return ImageSplit(np.asarray(self.images[indices]), None if self.labels is None else self.labels[indices],
                          self.classes, self.dataset, split or self.split, self.source, dict(self.info))

    def describe(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, "n": len(self), "image_size": self.image_size,
                "classes": len(self.classes) if self.classes else None, "source": self.source,
                "sha256": self.checksum}
