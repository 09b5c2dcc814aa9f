"""Tiny checkpoints for the figure tests: untrained models whose generator batch-norm statistics were
estimated on one batch, so that (in eval mode) different codes give visibly different images."""
import torch
from torch import nn

from gan_probe.models.checkpoint import save_checkpoint
from gan_probe.models import Discriminator, Generator, preset_config


def tiny_checkpoint(path, latent="normal", preset="small32", seed=0, **overrides):
    cfg = preset_config(preset, **{"ngf": 8, "ndf": 8, "nz": 16, "latent": latent, "mog_components": 4, **overrides})
    torch.manual_seed(seed)
    gen, disc = Generator(cfg), Discriminator(cfg)
    for m in gen.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: running stats = the batch's statistics
    with torch.no_grad():
        gen.net[-2].weight.mul_(25)  # the last layer's N(0, 0.02) weights would give near-constant gray images
        gen.train()(gen.prior.sample(256, generator=torch.Generator().manual_seed(seed)))
    save_checkpoint(path, {"generator": gen.state_dict(), "discriminator": disc.state_dict(), "step": 0,
                           "config": {"model": cfg.to_dict(),
                                      "train": {"dataset": "digits", "data_root": None, "split": "train"}}})
    return path
