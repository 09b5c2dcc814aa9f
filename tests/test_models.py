import math

import pytest
import torch
from torch import nn

from gan_probe.errors import ConfigError
from gan_probe.models import Discriminator, Generator, ModelConfig, preset_config


@pytest.mark.parametrize("preset", ["paper32", "dcgan64", "small32"])
def test_output_shapes(preset):
    cfg = preset_config(preset)
    gen, disc = Generator(cfg), Discriminator(cfg)
    x = gen(torch.randn(3, cfg.nz))
    assert x.shape == (3, 3, cfg.image_size, cfg.image_size)
    assert disc(x).shape == (3,)
    assert float(x.detach().abs().max()) <= 1.0  # tanh output


@pytest.mark.parametrize("size", [32, 64, 128])
def test_any_power_of_two_resolution(size):
    cfg = preset_config("small32", image_size=size, ngf=4, ndf=4)
    assert Generator(cfg)(torch.randn(2, cfg.nz)).shape == (2, 3, size, size)
    feats = Discriminator(cfg).forward_features(torch.randn(2, 3, size, size))
    assert feats[-1].shape[-1] == 4  # the last conv block is 4x4 at every resolution
    assert len(feats) == int(math.log2(size // 4))


def test_paper32_discriminator_layout():
    disc = Discriminator(preset_config("paper32"))
    convs = [b[0] for b in disc.features]
    assert [(c.out_channels, c.stride[0], c.kernel_size[0]) for c in convs] == [
        (128, 1, 3), (128, 2, 3), (256, 1, 3), (256, 2, 3), (512, 1, 3), (512, 2, 3)]
    sizes = [f.shape[-1] for f in disc.forward_features(torch.zeros(1, 3, 32, 32))]
    assert sizes == [32, 16, 16, 8, 8, 4]
    assert sum(disc.feature_channels) * 16 == 28_672


def test_batch_norm_placement():
    cfg = preset_config("dcgan64")
    disc, gen = Discriminator(cfg), Generator(cfg)
    has_bn = [any(isinstance(m, nn.BatchNorm2d) for m in block) for block in disc.features]
    assert has_bn == [False] + [True] * (len(has_bn) - 1)  # not on D's input layer
    assert all(any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in b) for b in disc.features)
    layers = list(gen.net)
    assert isinstance(layers[-1], nn.Tanh) and isinstance(layers[-2], nn.ConvTranspose2d)  # no BN on G's output
    n_convt = sum(isinstance(m, nn.ConvTranspose2d) for m in layers)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == n_convt - 1
    assert sum(isinstance(m, nn.ReLU) for m in layers) == n_convt - 1
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in disc.modules())
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in gen.modules())


def test_weight_init_statistics():
    torch.manual_seed(0)
    cfg = preset_config("paper32")
    weights = torch.cat([m.weight.flatten() for m in Discriminator(cfg).modules() if isinstance(m, nn.Conv2d)]
                        + [m.weight.flatten() for m in Generator(cfg).modules()
                           if isinstance(m, nn.ConvTranspose2d)])
    assert abs(float(weights.mean())) < 1e-3
    assert float(weights.std()) == pytest.approx(0.02, rel=0.01)
    bn = torch.cat([m.weight for m in Discriminator(cfg).modules() if isinstance(m, nn.BatchNorm2d)])
    assert float(bn.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(bn.std()) == pytest.approx(0.02, rel=0.15)


def test_uniform_latent_for_paper32():
    gen = Generator(preset_config("paper32"))
    z = gen.prior.sample(4000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4000, 256)
    assert float(z.min()) >= -1 and float(z.max()) <= 1
    assert float(z.std()) == pytest.approx(1 / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("bad", [dict(image_size=48), dict(latent="cauchy"), dict(nz=0)])
def test_invalid_config(bad):
    with pytest.raises(ConfigError):
        ModelConfig(**bad)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="--preset 'big'"):
        preset_config("big")
