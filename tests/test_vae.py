"""The VAE's ELBO terms on closed-form cases and its layout."""
import math

import numpy as np
import torch

from gan_probe.features.pooling import pooled_features
from gan_probe.models import preset_config
from gan_probe.models.vae import MIN_LOG_SCALE, VAE, gaussian_kl, gaussian_nll


def test_kl_in_closed_form():
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 (mu^2 + s^2 - 1 - log s^2) per dimension
    mu = torch.tensor([[0.0, 1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(4.0)]])
    expected = 0.5 * (0 + 1 - 1 - 0) + 0.5 * (1 + 1 - 1 - 0) + 0.5 * (4 + 4 - 1 - math.log(4.0))
    assert math.isclose(float(gaussian_kl(mu, logvar)), expected, rel_tol=1e-6)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    assert math.isclose(float(gaussian_kl(mu, logvar)), float(torch.distributions.kl_divergence(q, p).sum()),
                        rel_tol=1e-6)


def test_gaussian_nll_is_the_log_density():
    gen = torch.Generator().manual_seed(0)
    x, mean = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    log_scale = torch.tensor([-1.0, 0.0, 0.5])
    ref = -torch.distributions.Normal(mean, log_scale.exp().view(1, 3, 1, 1)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(x, mean, log_scale), ref)
    # a perfect reconstruction with sigma = 1: 0.5 log(2 pi) nats per pixel
    assert math.isclose(float(gaussian_nll(x, x, torch.zeros(3))[0]), 48 * 0.5 * math.log(2 * math.pi),
                        rel_tol=1e-6)


def test_the_elbo_is_minus_reconstruction_minus_kl():
    torch.manual_seed(0)
    vae = VAE(preset_config("small32", ndf=8, ngf=8, nz=6)).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    eps = torch.randn(3, 6)
    terms = vae.elbo_terms(x, eps)
    mu, logvar = vae.encode(x)
    mean = vae.decode(mu + torch.exp(0.5 * logvar) * eps)
    recon = gaussian_nll(x, mean, vae.log_scale).mean()
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], gaussian_kl(mu, logvar).mean())
    torch.testing.assert_close(terms["elbo"], -(terms["recon"] + terms["kl"]))
    with torch.no_grad():
        vae.log_scale.fill_(-50.0)   # the likelihood's scale is bounded below: the bound stays finite
    assert torch.isfinite(vae.elbo_terms(x, eps)["elbo"])
    assert float(vae.log_scale.detach().clamp(min=MIN_LOG_SCALE)[0]) == MIN_LOG_SCALE


def test_the_encoder_is_probed_like_a_discriminator():
    vae = VAE(preset_config("small32", ndf=8, ngf=8, nz=6)).eval()
    assert vae.feature_channels == [8, 16, 32]
    feats = pooled_features(vae, torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, (8 + 16 + 32) * 16)
    mu, logvar = vae.encode(torch.zeros(2, 3, 32, 32))
    assert mu.shape == logvar.shape == (2, 6) and np.isfinite(mu.detach().numpy()).all()
