"""What discriminator features respond to (``gan-probe viz filters``; the DCGAN paper's figure 5).

For each chosen conv layer and feature map: the dataset images that activate the map most strongly, cropped
to the receptive field of the maximally active unit, and the guided-backpropagation map (Springenberg et al.
2015) of that unit on the top image. A discriminator with random weights (same architecture and
initialisation, seeded) is shown beside the trained one.

Receptive fields follow from the conv kernels, strides and paddings: with ``jump`` the input-pixel distance
between neighbouring units and ``size`` the field width, unit (i, j) of a layer sees the pixels
``offset + i * jump ... offset + i * jump + size - 1`` (rows; the same for columns), where ``offset`` may be
negative (zero padding).

>>> from gan_probe.models import Discriminator, preset_config
>>> [(rf.size, rf.jump, rf.offset) for rf in receptive_fields(Discriminator(preset_config("small32")))]
[(4, 2, -1), (10, 4, -3), (22, 8, -7)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models import Discriminator
from .common import new_figure, one_thread, show, strip, to_display, to_model_input


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the units of one conv layer, in input pixels."""

    size: int
    jump: int
    offset: int  # first input row (or column) seen by unit 0; negative inside the zero padding

    def box(self, i: int, j: int) -> tuple[int, int, int]:
        """(top, left, size) of the input window seen by unit (i, j)."""
        return self.offset + i * self.jump, self.offset + j * self.jump, self.size


def receptive_fields(disc: Discriminator) -> list[ReceptiveField]:
    """Receptive field of every conv block of ``disc`` (``disc.features``), input to output."""
    size, jump, offset = 1, 1, 0
    out = []
    for block in disc.features:
        conv = next(m for m in block if isinstance(m, nn.Conv2d))
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        offset -= p * jump
        size += (k - 1) * jump
        jump *= s
        out.append(ReceptiveField(size, jump, offset))
    return out


def crop(image: np.ndarray, top: int, left: int, size: int, fill: float = 0.5) -> np.ndarray:
    """A ``size`` x ``size`` window of an (H, W, C) image; parts outside the image are ``fill``."""
    h, w = image.shape[:2]
    out = np.full((size, size, image.shape[2]), fill, dtype=np.float32)
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + size, h), min(left + size, w)
    if t1 > t0 and l1 > l0:
        out[t0 - top:t1 - top, l0 - left:l1 - left] = image[t0:t1, l0:l1]
    return out


class _GuidedLeakyReLU(torch.autograd.Function):
    """LeakyReLU whose backward pass only lets positive gradients through (guided backpropagation)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return torch.where(x > 0, x, x * slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        local = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, ctx.slope))
        return grad.clamp(min=0) * local, None


def _run_blocks(disc: Discriminator, x: torch.Tensor, last: int, guided: bool = False) -> list[torch.Tensor]:
    outs = []
    for block in disc.features[:last + 1]:
        for m in block:
            if guided and isinstance(m, nn.LeakyReLU):
                x = _GuidedLeakyReLU.apply(x, m.negative_slope)
            elif isinstance(m, nn.LeakyReLU):
                x = torch.nn.functional.leaky_relu(x, m.negative_slope)
            else:
                x = m(x)
        outs.append(x)
    return outs


def guided_backprop(disc: Discriminator, image: torch.Tensor, layer: int, channel: int, i: int,
                    j: int) -> torch.Tensor:
    """Guided-backpropagation gradient (C, H, W) of unit (``i``, ``j``) of map ``channel`` in ``layer`` w.r.t.
    ``image`` (C, H, W) in [-1, 1]. ``disc`` should be in eval mode (batch norm then acts per image)."""
    x = image[None].detach().float().to(next(disc.parameters()).device).requires_grad_(True)
    act = _run_blocks(disc, x, layer, guided=True)[layer]
    act[0, channel, i, j].backward()
    return x.grad[0].detach().cpu()


@dataclass
class TopActivations:
    """For each selected map: the top images' dataset positions, activation values and argmax units."""

    layer: int
    channels: list[int]
    values: torch.Tensor  # (maps, top)
    images: torch.Tensor  # (maps, top) indices into the image array
    units: torch.Tensor  # (maps, top, 2) (row, col) of the maximum in the feature map


@torch.no_grad()
def top_activations(disc: Discriminator, images: np.ndarray, layer: int, channels: Sequence[int], top: int = 8,
                    batch_size: int = 256, progress: bool = False) -> TopActivations:
    """Scan uint8 (N, H, W, 3) ``images`` and keep, for each map, the ``top`` images with the largest maximum
    activation (ties: lower image index first) and where in the map that maximum is."""
    device = next(disc.parameters()).device
    chans = torch.as_tensor(list(channels), dtype=torch.long)
    best_v = torch.empty(len(chans), 0)
    best_i = torch.empty(len(chans), 0, dtype=torch.long)
    best_u = torch.empty(len(chans), 0, dtype=torch.long)
    starts = range(0, len(images), batch_size)
    if progress:
        from ..progress import bar

        starts = bar(starts, desc=f"activations (conv{layer + 1})", unit="batch", dynamic_ncols=True)
    for start in starts:
        x = to_model_input(images[start:start + batch_size]).to(device)
        act = _run_blocks(disc, x, layer)[layer][:, chans.to(device)].float().cpu()  # (B, maps, h, w)
        flat = act.flatten(2)
        v, pos = flat.max(dim=2)  # (B, maps)
        best_v = torch.cat([best_v, v.T], 1)
        best_i = torch.cat([best_i, torch.arange(start, start + len(x)).expand(len(chans), -1)], 1)
        best_u = torch.cat([best_u, pos.T], 1)
        order = torch.sort(-best_v, dim=1, stable=True).indices[:, :top]
        best_v, best_i, best_u = (t.gather(1, order) for t in (best_v, best_i, best_u))
    w = act.shape[-1]
    units = torch.stack([best_u // w, best_u % w], dim=-1)
    return TopActivations(layer, list(map(int, chans)), best_v, best_i, units)


def random_discriminator_like(disc: Discriminator, seed: int) -> Discriminator:
    """A discriminator of the same config with fresh N(0, 0.02) weights drawn with ``seed``, in eval mode.

    Uses the global RNG inside a forked state, so the caller's random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        fresh = Discriminator(disc.config)
    return fresh.to(next(disc.parameters()).device).eval()


def normalise_gradient(grad: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Gradient -> display range [0, 1] with zero at mid-gray, scaled by a high percentile of its non-zero
    magnitudes (a few extreme pixels would otherwise leave the rest gray).

    >>> normalise_gradient(np.array([[-2.0, 0.0, 1.0]]), percentile=100).tolist()
    [[0.0, 0.5, 0.75]]
    """
    mags = np.abs(grad[grad != 0])
    scale = float(np.percentile(mags, percentile)) if mags.size else 0.0
    if scale <= 0:
        return np.full_like(grad, 0.5)
    return np.clip(grad / (2 * scale) + 0.5, 0, 1)


def filter_rows(disc: Discriminator, images: np.ndarray, layers: Sequence[int], maps: int = 6, top: int = 8,
                batch_size: int = 256, progress: bool = False) -> list[tuple[str, np.ndarray]]:
    """One (label, strip) per (layer, map): ``top`` receptive-field crops, then the guided-backprop crop."""
    fields = receptive_fields(disc)
    display = to_display(images)
    rows = []
    for layer in layers:
        n_maps = disc.feature_channels[layer]
        channels = list(range(min(maps, n_maps)))
        found = top_activations(disc, images, layer, channels, top, batch_size, progress)
        rf = fields[layer]
        for m, channel in enumerate(channels):
            tiles = []
            for k in range(found.images.shape[1]):
                r, c = found.units[m, k].tolist()
                tiles.append(crop(display[int(found.images[m, k])], *rf.box(r, c)))
            first = int(found.images[m, 0])
            r, c = found.units[m, 0].tolist()
            with one_thread(next(disc.parameters()).device.type == "cpu"):
                grad = guided_backprop(disc, to_model_input(images[first:first + 1])[0], layer, channel, r, c)
            grad_img = normalise_gradient(grad.permute(1, 2, 0).numpy())
            tiles.append(crop(grad_img, *rf.box(r, c)))
            rows.append((f"conv{layer + 1} #{channel}", strip(tiles, [len(tiles) - 2], gap=max(2, rf.size // 3))))
    return rows


def filters_figure(models, images: np.ndarray, layers: Sequence[int] | None = None, maps: int = 6, top: int = 8,
                   seed: int = 0, batch_size: int = 256, progress: bool = False):
    """Side by side: random-weight discriminator (seeded) and trained discriminator; rows = (layer, map).

    ``layers`` are 0-based conv layer indices (default: the last conv layer, as in the paper's figure 5).
    """
    trained = models.discriminator.eval()
    n_layers = len(trained.features)
    layers = [n_layers - 1] if layers is None else sorted(set(int(i) for i in layers))
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad or not layers:
        raise ConfigError(f"--layers {','.join(map(str, layers))}: the discriminator has conv layers "
                          f"0..{n_layers - 1}")
    models.require_layers(layers)
    if maps < 1 or top < 1:
        raise ConfigError(f"--maps and --top must be positive, got {maps} and {top}")
    if len(images) == 0:
        raise ConfigError("the dataset has no images")
    random = random_discriminator_like(trained, seed)
    panels = [("random weights (seed %d)" % seed, filter_rows(random, images, layers, maps, top, batch_size, progress)),
              (f"trained (step {models.state.get('step', '?')})",
               filter_rows(trained, images, layers, maps, top, batch_size, progress))]
    n_rows = len(panels[0][1])
    row_h, label_w = 0.42, 0.75
    strip_w = max(row_h * 0.9 * img.shape[1] / img.shape[0] for _, rows in panels for _, img in rows)
    width = label_w + 2 * strip_w + 0.3
    height = n_rows * row_h + 0.6
    fig = new_figure(width, height)
    for p, (title, rows) in enumerate(panels):
        left = (label_w + p * (strip_w + 0.3)) / width
        for r, (label, img) in enumerate(rows):
            h = row_h * 0.9
            w = h * img.shape[1] / img.shape[0]
            bottom = (height - 0.45 - (r + 1) * row_h) / height
            ax = fig.add_axes((left, bottom, w / width, h / height))
            show(ax, img)
            if p == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"top-{top} receptive-field crops per feature map, then guided backprop of the top image",
                 fontsize=8, y=0.999, va="top")
    return fig
