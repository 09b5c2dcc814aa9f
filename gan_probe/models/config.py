"""Model configuration and the named presets."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import ConfigError
from ..records import from_known_fields

LATENTS = ("normal", "uniform", "mog")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a DCGAN generator/discriminator pair.

    The discriminator has ``log2(image_size / 4)`` stride-2 stages with widths ``ndf * 2**i``; with
    ``d_stride1_pairs`` each stage is preceded by a stride-1 conv of the same width (the paper's 32x32
    ImageNet model). The generator mirrors it with transposed convs from a 4x4 projection of ``z``.
    """

    preset: str = "custom"
    image_size: int = 32
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    d_kernel: int = 4
    d_stride1_pairs: bool = False
    latent: str = "normal"
    mog_components: int = 50
    channels: int = 3

    def __post_init__(self) -> None:
        if self.image_size not in (32, 64, 128):
            raise ConfigError(f"--image-size {self.image_size}: expected a power of two from 32 to 128")
        if self.latent not in LATENTS:
            raise ConfigError(f"--latent {self.latent!r}: expected one of {', '.join(LATENTS)}")
        if self.d_stride1_pairs and self.d_kernel % 2 == 0:
            raise ConfigError(f"d_kernel {self.d_kernel}: stride-1 pairs need an odd kernel size")
        for name in ("nz", "ngf", "ndf", "d_kernel", "mog_components"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")

    @property
    def n_stages(self) -> int:
        return int(math.log2(self.image_size // 4))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return from_known_fields(cls, data, "model config")


PRESETS: dict[str, ModelConfig] = {
    # The authors' ImageNet-1k 32x32 model: D 3x3 convs 128(s1),128(s2),256(s1),256(s2),512(s1),512(s2);
    # G nz=256, ngf=128, z ~ uniform(-1, 1). Pooled features: 28,672 dims.
    "paper32": ModelConfig("paper32", image_size=32, nz=256, ngf=128, ndf=128, d_kernel=3, d_stride1_pairs=True,
                           latent="uniform"),
    # The common 64x64 DCGAN (4x4 kernels, ngf = ndf = 64, nz = 100, z ~ N(0, 1)).
    "dcgan64": ModelConfig("dcgan64", image_size=64, nz=100, ngf=64, ndf=64, d_kernel=4, latent="normal"),
    # The authors' SVHN model's D: 5x5 convs, stride 2, pad 2, 64-128-256 maps; 7,168 pooled features. (Its G here
    # is gan-probe's: a 4x4 transposed-conv projection, where the authors' G used a dense one.)
    "svhn32": ModelConfig("svhn32", image_size=32, nz=100, ngf=64, ndf=64, d_kernel=5, latent="normal"),
    # A narrow 32x32 model that trains on a CPU in minutes.
    "small32": ModelConfig("small32", image_size=32, nz=100, ngf=32, ndf=32, d_kernel=4, latent="normal"),
}


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """A preset with some fields replaced (``None`` values are ignored).

    >>> preset_config("small32", ndf=16).ndf
    16
    """
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r}: unknown preset; expected one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **overrides)
