"""The VAE family: :class:`~gan_probe.models.vae.VAE` (D's layout as encoder, G's as decoder) and one Adam.

A step minimises the negative ELBO of this rank's rows, ``loss = recon + kl`` (nats per image), with
``z = mu + sigma * eps`` and ``eps ~ N(0, I)`` drawn on the CPU from the step's noise stream (the same for every
world size; rank r keeps its rows). log.csv records ``loss``, ``recon``, ``kl`` and ``elbo`` (= -loss); the sample
grids are decoded from the fixed codes of :data:`~gan_probe.training.schedule.FIXED_SAMPLES`, drawn from the prior
N(0, I). Checkpoint entries: ``vae`` (the module's state) and ``optimizer``.

The optimiser options are the DCGAN's (``--lr``, ``--beta1``); ``--loss`` and ``--mog-sigma-reg`` do not apply, the
prior is N(0, I) (``--latent normal``), and there is no online probe or CUDA-graph step.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..distributed import DistContext
from ..models import ModelConfig
from ..models.vae import VAE
from .family import ModelFamily
from .gan import adam_options, compiled
from .schedule import FIXED_SAMPLES, NOISE, stream_rng
from .syncbn import convert_sync_batchnorm

TERMS = ("loss", "recon", "kl", "elbo")


class NegativeElbo(nn.Module):
    """``vae.elbo_terms`` as one forward call returning the stacked :data:`TERMS` (what DDP wraps)."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        terms = self.vae.elbo_terms(x, eps)
        return torch.stack([terms[name] for name in TERMS])


class VaeFamily(ModelFamily):
    name = "vae"
    loss_names = ("loss",)
    log_fields = TERMS
    postfix_fields = ("loss", "recon", "kl")

    def __init__(self, config, model_cfg: ModelConfig, ctx: DistContext, state: dict[str, Any] | None):
        self.config, self.ctx, self.device = config, ctx, ctx.device
        torch.manual_seed(config.seed)
        vae = VAE(model_cfg)
        if state is not None:
            vae.load_state_dict(state["vae"])
        vae = vae.to(self.device)
        cuda = self.device.type == "cuda"
        self.channels_last = cuda and not config.compile
        if self.channels_last:
            vae = vae.to(memory_format=torch.channels_last)
        if config.sync_bn:
            vae = convert_sync_batchnorm(vae, self.device)
        self.vae = vae
        self.opt = torch.optim.Adam(vae.parameters(), **adam_options(config, self.device))
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
        objective: nn.Module = NegativeElbo(vae)
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            objective = DDP(objective, **({"device_ids": [self.device.index]} if cuda else {}))
        self.objective = compiled(objective) if config.compile else objective
        self.amp = config.amp and cuda
        self.last: torch.Tensor | None = None

    def prepare_input(self, real: torch.Tensor) -> torch.Tensor:
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real

    def losses(self, step: int, real: torch.Tensor, rows: slice) -> torch.Tensor:
        nz = self.vae.config.nz
        eps = torch.randn(self.config.batch_size, nz, generator=stream_rng(self.config.seed, NOISE, step))[rows]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            terms = self.objective(real, eps.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        terms[0].backward()
        self.opt.step()
        self.last = terms.detach().float()
        return self.last[:1]

    def log_stats(self) -> torch.Tensor:
        return self.last

    def samples(self) -> torch.Tensor:
        decoder = self.vae.decoder
        decoder.eval()
        with torch.no_grad():
            z = decoder.prior.sample(64, generator=stream_rng(self.config.seed, FIXED_SAMPLES, 0), device="cpu")
            images = decoder(z.to(self.device))
        decoder.train()
        return images

    def state(self) -> dict[str, Any]:
        return {"vae": self.vae.state_dict(), "optimizer": self.opt.state_dict()}
