"""The constants of the Coates & Ng single-layer k-means baseline, as one typed, validated record."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import ConfigError
from ..records import from_known_fields

ENCODERS = ("triangle", "hard")


@dataclass(frozen=True)
class KMeansConfig:
    """Settings of the single-layer pipeline; the defaults are Coates & Ng's CIFAR-10 constants.

    ``norm_eps`` is added to each patch's variance on the 0..255 pixel scale (brightness/contrast
    normalisation), ``zca_eps`` to the eigenvalues of the patch covariance (ZCA whitening).

    >>> KMeansConfig().n_features
    6400
    >>> KMeansConfig(centroids=4000, whiten=False).zca_eps
    0.1
    """

    centroids: int = 1600
    patch: int = 6
    stride: int = 1
    patches: int = 400_000
    whiten: bool = True
    encoder: str = "triangle"
    iterations: int = 50
    seed: int = 0
    norm_eps: float = 10.0
    zca_eps: float = 0.1

    def __post_init__(self) -> None:
        for name, low in (("centroids", 1), ("patch", 1), ("stride", 1), ("patches", 2), ("iterations", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"--{name} {value!r}: expected an integer >= {low}")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"--encoder {self.encoder!r}: expected one of {', '.join(ENCODERS)}")
        if self.patches < self.centroids:
            raise ConfigError(f"--patches {self.patches}: need at least as many patches as --centroids "
                              f"({self.centroids})")
        if self.norm_eps < 0 or self.zca_eps <= 0:
            raise ConfigError(f"norm_eps {self.norm_eps} / zca_eps {self.zca_eps}: expected norm_eps >= 0, "
                              f"zca_eps > 0")

    @property
    def n_features(self) -> int:
        """4 quadrants x ``centroids``."""
        return 4 * self.centroids

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "KMeansConfig":
        return from_known_fields(cls, data, "k-means config")
