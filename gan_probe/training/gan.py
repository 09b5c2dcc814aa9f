"""The DCGAN family: a generator and a discriminator, each with its own Adam, trained by :class:`GanStep`.

Checkpoint entries: ``generator``, ``discriminator``, ``optimizer_g``, ``optimizer_d``. On CUDA the modules run
channels-last (not under ``torch.compile``) and, in one process without compile, the whole step is replayed from
a CUDA graph (:class:`~gan_probe.training.step.GraphedStep`). Under torchrun G and the discriminator pair are
wrapped in DistributedDataParallel; with ``sync_bn`` their batch norm uses the global batch's statistics.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..distributed import DistContext
from ..models import Discriminator, Generator, ModelConfig
from .family import ModelFamily
from .schedule import FIXED_SAMPLES, NOISE, stream_rng
from .step import DiscriminatorPair, GanStep, GraphedStep, StepOutputs, draw_step_noise, graphs_supported
from .syncbn import convert_sync_batchnorm


def adam_options(config, device: torch.device, capturable: bool = False) -> dict[str, Any]:
    """Adam's settings of ``config`` (fused on CUDA; capturable for a CUDA graph)."""
    return {"lr": config.lr, "betas": (config.beta1, config.beta2),
            **({"fused": True} if device.type == "cuda" else {}), **({"capturable": True} if capturable else {})}


def compiled(module: nn.Module) -> nn.Module:
    # in the eager modules' memory layouts (inductor's own switch to channels-last is off: the configuration that
    # was timed; the stride failure it was first suspected of came from D's head, now a matmul)
    return torch.compile(module, options={"layout_optimization": False})


class GanFamily(ModelFamily):
    name = "dcgan"
    loss_names = ("loss_d", "loss_g")
    log_fields = ("loss_d", "loss_g", "d_real", "d_fake")
    postfix_fields = ("loss_d", "loss_g")
    online_probe = True

    def __init__(self, config, model_cfg: ModelConfig, ctx: DistContext, state: dict[str, Any] | None):
        self.config, self.ctx, self.device = config, ctx, ctx.device
        torch.manual_seed(config.seed)
        gen, disc = Generator(model_cfg), Discriminator(model_cfg)
        if state is not None:
            gen.load_state_dict(state["generator"])
            disc.load_state_dict(state["discriminator"])
        gen, disc = gen.to(self.device), disc.to(self.device)
        cuda = self.device.type == "cuda"
        # channels-last for the eager CUDA loop; not under torch.compile, whose generated convolution backward
        # asserted contiguous strides for channels-last tensors (torch 2.11, H200) and stopped the run
        self.channels_last = cuda and not config.compile
        if self.channels_last:
            gen = gen.to(memory_format=torch.channels_last)
            disc = disc.to(memory_format=torch.channels_last)
        if config.sync_bn:
            gen, disc = convert_sync_batchnorm(gen, self.device), convert_sync_batchnorm(disc, self.device)
        self.gen, self.disc = gen, disc
        # the whole step is captured in a CUDA graph where it can be: one process, eager modules
        self.use_graphs = config.cuda_graphs and graphs_supported(self.device) and not ctx.enabled \
            and not config.compile
        adam = adam_options(config, self.device, self.use_graphs)
        self.opt_g, self.opt_d = torch.optim.Adam(gen.parameters(), **adam), torch.optim.Adam(disc.parameters(), **adam)
        if state is not None:
            self.opt_g.load_state_dict(state["optimizer_g"])
            self.opt_d.load_state_dict(state["optimizer_d"])
        self.run_step = self._step_runner()
        self.last: StepOutputs | None = None

    def _step_runner(self) -> GanStep | GraphedStep:
        """The step's callables: DDP wrappers under torchrun (D's use in G's step needs no gradient sync)."""
        g_step: nn.Module = self.gen
        d_pair: nn.Module = DiscriminatorPair(self.disc)
        d_plain: nn.Module = self.disc
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            g_step, d_pair = DDP(self.gen, **ids), DDP(d_pair, **ids)
        if self.config.compile:
            g_step, d_pair, d_plain = compiled(g_step), compiled(d_pair), compiled(d_plain)
        step = GanStep(self.gen, self.disc, self.opt_g, self.opt_d, loss=self.config.loss, amp=self.config.amp,
                       d_pair=d_pair, g_forward=g_step, d_forward=d_plain, mog_sigma_reg=self.config.mog_sigma_reg)
        return GraphedStep(step) if self.use_graphs else step

    def prepare_input(self, real: torch.Tensor) -> torch.Tensor:
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real

    def losses(self, step: int, real: torch.Tensor, rows: slice) -> torch.Tensor:
        noise = draw_step_noise(self.gen.prior, self.config.batch_size, stream_rng(self.config.seed, NOISE, step),
                                rows, self.device)
        self.last = self.run_step(real, noise)
        return torch.stack((self.last.loss_d.float(), self.last.loss_g.float()))

    def log_stats(self) -> torch.Tensor:
        out = self.last
        return torch.stack((out.loss_d.float(), out.loss_g.float(), torch.sigmoid(out.real_logits.float()).mean(),
                            torch.sigmoid(out.fake_logits.float()).mean()))

    def samples(self) -> torch.Tensor:
        self.gen.eval()
        with torch.no_grad():
            # drawn afresh from the same stream each time: a learnable prior (mog) maps it with its current parameters
            z = self.gen.prior.sample(64, generator=stream_rng(self.config.seed, FIXED_SAMPLES, 0), device="cpu")
            images = self.gen(z.to(self.device))
        self.gen.train()
        return images

    @property
    def probe_target(self) -> nn.Module:
        """The discriminator the online probe scores (it works on a copy)."""
        return self.disc

    def state(self) -> dict[str, Any]:
        return {"generator": self.gen.state_dict(), "discriminator": self.disc.state_dict(),
                "optimizer_g": self.opt_g.state_dict(), "optimizer_d": self.opt_d.state_dict()}

    def describe(self) -> dict[str, Any]:
        return {"cuda_graph_step": self.use_graphs}
