"""One DCGAN training step (D's update, then G's), run eagerly or replayed from a captured CUDA graph.

A step at the paper's batch size launches a few hundred small kernels; on a fast GPU the Python and dispatcher
work of launching them takes longer than the kernels themselves. :class:`GraphedStep` records the whole step --
G's forward pass, D's losses and backward passes, both Adam updates and the batch-norm statistics -- into one
CUDA graph after a few eager steps, and then only copies each step's inputs (the real batch and the latent
noise) into the graph's fixed buffers and replays it. The arithmetic is the eager step's: same kernels, same
order, same random numbers (the noise is drawn outside the graph from the step's seed).

>>> from gan_probe.training.step import GanStep, GraphedStep   # doctest: +SKIP
>>> step = GraphedStep(GanStep(gen, disc, opt_g, opt_d, loss="bce", amp=True))   # doctest: +SKIP
>>> out = step(real, noise)   # StepOutputs: loss_d, loss_g, real_logits, fake_logits  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models import Discriminator
from ..models.losses import d_loss, g_loss


@dataclass
class StepOutputs:
    """What the loop reads after a step (all detached; under a graph, overwritten by the next replay)."""

    loss_d: torch.Tensor
    loss_g: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: torch.Tensor


def draw_step_noise(prior: nn.Module, batch_size: int, generator: torch.Generator, rows: slice,
                    device: torch.device) -> tuple[torch.Tensor, ...]:
    """This rank's parameter-free latent noise of one step, drawn on the CPU from ``generator``.

    ``(z,)`` for the normal and uniform priors, ``(k, eps)`` for the mixture (its differentiable transform is
    part of the step, :func:`latent_from_noise`). The global batch's draw is the same on every device and world
    size; rank r keeps ``rows``. On CUDA the numbers go through pinned memory with an asynchronous copy: a plain
    copy from pageable memory would wait for the GPU to finish the previous step.
    """
    def move(t: torch.Tensor) -> torch.Tensor:
        t = t[rows]
        if device.type == "cuda":
            return t.pin_memory().to(device, non_blocking=True)
        return t.to(device)

    if prior.kind == "mog":
        return tuple(move(t) for t in prior.draw_noise(batch_size, generator=generator, device="cpu"))
    return (move(prior.sample(batch_size, generator=generator, device="cpu")),)


def latent_from_noise(prior: nn.Module, noise: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The latent codes of :func:`draw_step_noise`'s noise (the mixture's reparameterisation, else ``z``)."""
    if prior.kind == "mog":
        return prior.transform(*noise)
    return noise[0]


class DiscriminatorPair(nn.Module):
    """D applied separately to a real and a generated batch in one forward call.

    DistributedDataParallel expects one forward per backward; running D twice inside one forward keeps batch
    norm's per-batch statistics exactly as in the single-process loop (real and fake never mixed).
    """

    def __init__(self, disc: Discriminator):
        super().__init__()
        self.disc = disc

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.disc(real), self.disc(fake)


class GanStep:
    """The eager step: D minimises its loss on (real, G(z).detach()), then G its loss through the updated D.

    ``g_forward``, ``d_pair`` and ``d_forward`` default to ``gen``, :class:`DiscriminatorPair` ``(disc)`` and
    ``disc``; the trainer passes DistributedDataParallel or compiled wrappers of them instead.
    """

    def __init__(self, gen: nn.Module, disc: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 loss: str, amp: bool, d_pair: nn.Module | None = None, g_forward: nn.Module | None = None,
                 d_forward: nn.Module | None = None, mog_sigma_reg: float = 0.0):
        self.gen, self.disc, self.opt_g, self.opt_d = gen, disc, opt_g, opt_d
        self.loss, self.mog_sigma_reg = loss, mog_sigma_reg
        self.g_forward = g_forward if g_forward is not None else gen
        self.d_forward = d_forward if d_forward is not None else disc
        self.d_pair = d_pair if d_pair is not None else DiscriminatorPair(disc)
        device = next(disc.parameters()).device
        self.amp = amp and device.type == "cuda"
        self.autocast_cache = True  # a captured graph needs it off (cached casts would be graph-private)

    def _autocast(self) -> torch.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp, cache_enabled=self.autocast_cache)

    def __call__(self, real: torch.Tensor, noise: tuple[torch.Tensor, ...]) -> StepOutputs:
        z = latent_from_noise(self.gen.prior, noise)
        with self._autocast():
            fake = self.g_forward(z)
            real_logits, fake_logits = self.d_pair(real, fake.detach())
            loss_d = d_loss(self.loss, real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        self.disc.requires_grad_(False)  # G's step needs gradients through D, not of D's weights
        try:
            with self._autocast():
                fake_logits_g = self.d_forward(fake)
                # zero for priors without parameters: a CPU scalar, added without a host-to-device copy
                loss_g = g_loss(self.loss, fake_logits_g) + self.gen.prior.regularizer(self.mog_sigma_reg)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
        finally:
            self.disc.requires_grad_(True)
        return StepOutputs(loss_d.detach(), loss_g.detach(), real_logits.detach(), fake_logits.detach())


def graphs_supported(device: torch.device) -> bool:
    """Whether a step on ``device`` can be captured (CUDA only)."""
    return device.type == "cuda" and torch.cuda.is_available()


class GraphedStep:
    """Runs ``step`` eagerly ``warmup`` times (on a side stream), then captures it once and replays the graph.

    Requirements, checked by the trainer: one process (no DistributedDataParallel), no ``torch.compile``, both
    optimizers built with ``capturable=True``, and inputs of the same shapes every step. The eager warm-up steps
    are real training steps; they let cuDNN, cuBLAS and the optimizers create their workspaces and state
    before capture, which must not allocate outside the graph's memory pool.
    """

    def __init__(self, step: GanStep, warmup: int = 3):
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1 (the optimizers' state must exist), got {warmup}")
        self.step, self.warmup = step, warmup
        self.eager_calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_real: torch.Tensor | None = None
        self.static_noise: tuple[torch.Tensor, ...] = ()
        self.static_out: StepOutputs | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, real: torch.Tensor, noise: tuple[torch.Tensor, ...]) -> StepOutputs:
        if self.graph is None and self.eager_calls < self.warmup:
            self.eager_calls += 1
            side = torch.cuda.Stream(device=real.device)
            side.wait_stream(torch.cuda.current_stream(real.device))
            with torch.cuda.stream(side):
                out = self.step(real, noise)
            torch.cuda.current_stream(real.device).wait_stream(side)
            return out
        if self.graph is None:
            self._capture(real, noise)
        self.static_real.copy_(real)
        for buffer, value in zip(self.static_noise, noise):
            buffer.copy_(value)
        self.graph.replay()
        return self.static_out

    def _capture(self, real: torch.Tensor, noise: tuple[torch.Tensor, ...]) -> None:
        self.static_real = torch.empty_like(real)
        self.static_noise = tuple(torch.empty_like(t) for t in noise)
        self.step.autocast_cache = False
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(real.device)
        with torch.cuda.graph(graph):
            self.static_out = self.step(self.static_real, self.static_noise)
        self.graph = graph
