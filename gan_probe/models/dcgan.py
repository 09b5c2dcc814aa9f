"""DCGAN generator and discriminator following the paper's architecture guidelines.

- Discriminator: strided convolutions (no pooling), batch norm on every conv except the first, LeakyReLU(0.2),
  a final conv over the 4x4 map to one logit (the sigmoid lives in the loss).
- Generator: a transposed-conv projection of z to 4x4, fractionally-strided (transposed) convs doubling the
  resolution, batch norm + ReLU everywhere except the tanh output layer.
- No fully connected hidden layers; weights from N(0, 0.02), batch-norm scales from N(1, 0.02).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .latent import LatentPrior


def init_dcgan_weights(module: nn.Module, std: float = 0.02) -> None:
    """The paper's initialisation: conv weights ~ N(0, std); batch norm weight ~ N(1, std), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class Discriminator(nn.Module):
    """DCGAN discriminator; ``features`` holds the conv blocks whose activations the probe pools."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        k = config.d_kernel
        pad = (k - 1) // 2 if k % 2 else k // 2 - 1
        widths = [config.ndf * 2 ** i for i in range(config.n_stages)]
        blocks: list[nn.Module] = []
        in_ch = config.channels
        for width in widths:
            strides = (1, 2) if config.d_stride1_pairs else (2,)
            for stride in strides:
                # 'same' padding for stride 1 needs k // 2 for odd kernels
                p = k // 2 if stride == 1 else pad
                layers: list[nn.Module] = [nn.Conv2d(in_ch, width, k, stride, p, bias=False)]
                if blocks:  # no batch norm on the input layer
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                blocks.append(nn.Sequential(*layers))
                in_ch = width
        self.features = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_ch, 1, 4, 1, 0, bias=False)
        init_dcgan_weights(self)

    @property
    def feature_channels(self) -> list[int]:
        return [block[0].out_channels for block in self.features]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every conv block (after its nonlinearity), input to output."""
        outs = []
        for block in self.features:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.features:
            x = block(x)
        # the head's 4x4 convolution over the last 4x4 map is one dot product per image; written as a matrix
        # product, since torch.compile's convolution backward for its (B, 1, 1, 1) output failed a stride
        # assertion (torch 2.11, CUDA)
        return torch.nn.functional.linear(x.flatten(1), self.head.weight.flatten(1)).flatten()


class Generator(nn.Module):
    """DCGAN generator mapping z of shape (B, nz) to images in [-1, 1] of shape (B, 3, S, S)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n = config.n_stages
        widths = [config.ngf * 2 ** (n - 1 - i) for i in range(n)]  # at 4x4, 8x8, ..., S/2
        layers: list[nn.Module] = [nn.ConvTranspose2d(config.nz, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for in_ch, out_ch in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], config.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)
        self.prior = LatentPrior(config)  # created after init: its parameters keep their own initialisation

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate ``n`` images in [-1, 1] from latent codes drawn from the prior."""
        device = next(self.net.parameters()).device
        return self(self.prior.sample(n, generator=generator, device=device))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))
