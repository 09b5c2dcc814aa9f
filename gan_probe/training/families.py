"""Which model family a run trains: ``gan-probe train --model dcgan`` (:mod:`gan_probe.training.gan`) or ``--model
vae`` (:mod:`gan_probe.training.vae`), both behind :class:`~gan_probe.training.family.ModelFamily`."""
from __future__ import annotations

from typing import Any

from ..distributed import DistContext
from ..errors import ConfigError
from ..models import ModelConfig
from .family import FAMILIES, ModelFamily
from .gan import GanFamily
from .vae import VaeFamily


def build_family(config, model_cfg: ModelConfig, ctx: DistContext, state: dict[str, Any] | None) -> ModelFamily:
    """The family of ``config.family`` on ``ctx.device``, seeded, with ``state`` (a checkpoint) loaded if given."""
    family = config.family
    if family == "dcgan":
        return GanFamily(config, model_cfg, ctx, state)
    if family == "vae":
        return VaeFamily(config, model_cfg, ctx, state)
    raise ConfigError(f"--model {family!r}: expected one of {', '.join(FAMILIES)}")
