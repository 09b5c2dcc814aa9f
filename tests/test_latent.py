import math

import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint, load_models, save_checkpoint
from gan_probe.cli import main
from gan_probe.errors import ConfigError
from gan_probe.models import Generator, LatentPrior, preset_config
from gan_probe.training import TrainConfig, read_log, train


def mog_prior(n=4, nz=3):
    torch.manual_seed(0)
    return LatentPrior(preset_config("small32", latent="mog", nz=nz, mog_components=n))


def test_mog_initialisation():
    torch.manual_seed(1)
    prior = LatentPrior(preset_config("small32", latent="mog", nz=100, mog_components=50))
    assert prior.mu.shape == prior.sigma.shape == (50, 100)
    assert float(prior.mu.detach().min()) >= -1 and float(prior.mu.detach().max()) <= 1
    assert float(prior.mu.detach().std()) == pytest.approx(2 / math.sqrt(12), rel=0.03)  # uniform(-1, 1)
    assert torch.all(prior.sigma == 0.2)
    assert {name for name, _ in prior.named_parameters()} == {"mu", "sigma"}
    assert list(LatentPrior(preset_config("small32")).parameters()) == []


def test_mog_sample_statistics():
    prior = mog_prior()
    with torch.no_grad():
        prior.mu.copy_(torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5], [-3.0, 1.0, 0.0], [1.0, -2.0, 0.5]]))
        prior.sigma.copy_(torch.tensor([[0.1, 0.5, 1.0], [0.3, 0.3, 0.3], [2.0, 0.05, 0.7], [1.0, 1.0, 0.2]]))
    n = 200_000
    gen = torch.Generator().manual_seed(0)
    k, eps = prior.draw_noise(n, generator=gen)
    z = prior.transform(k, eps).detach()
    # the same generator state through sample() gives the same codes
    assert torch.equal(prior.sample(n, generator=torch.Generator().manual_seed(0)).detach(), z)
    counts = torch.bincount(k, minlength=4).double() / n
    assert torch.allclose(counts, torch.full((4,), 0.25, dtype=torch.float64), atol=0.005)  # uniform components
    assert torch.allclose(z.mean(0), prior.mu.detach().mean(0), atol=0.02)  # mean of z = mean of the means
    for c in range(4):
        zc = z[k == c]
        assert torch.allclose(zc.mean(0), prior.mu[c].detach(), atol=0.03)
        assert torch.allclose(zc.std(0), prior.sigma[c].detach(), rtol=0.02)


def test_mog_gradients_reach_means_and_sigmas():
    prior = mog_prior()
    k, eps = prior.draw_noise(64, generator=torch.Generator().manual_seed(3))
    z = prior.transform(k, eps)
    weights = torch.arange(1.0, 4.0)  # loss = sum_i w . z_i
    (z * weights).sum().backward()
    counts = torch.bincount(k, minlength=4).float()
    assert torch.allclose(prior.mu.grad, counts[:, None] * weights)
    expected_sigma = torch.zeros(4, 3).index_add_(0, k, eps) * weights
    assert torch.allclose(prior.sigma.grad, expected_sigma, atol=1e-5)
    assert prior.sigma.grad.abs().sum() > 0


def test_regulariser_value_and_gradient():
    prior = mog_prior(n=2, nz=3)
    with torch.no_grad():
        prior.sigma.copy_(torch.tensor([[1.0, 0.5, 0.0], [2.0, 1.0, 0.8]]))
    # sum (1 - sigma)^2 = 0 + 0.25 + 1 + 1 + 0 + 0.04 = 2.29; / N=2; * weight 0.3
    reg = prior.regularizer(0.3)
    assert float(reg) == pytest.approx(0.3 * 2.29 / 2)
    reg.backward()
    assert torch.allclose(prior.sigma.grad, -2 * 0.3 * (1 - prior.sigma.detach()) / 2)
    assert prior.mu.grad is None
    assert float(LatentPrior(preset_config("small32")).regularizer(5.0)) == 0.0
    assert float(LatentPrior(preset_config("small32", latent="uniform")).regularizer()) == 0.0


@pytest.mark.parametrize("latent", ["normal", "uniform", "mog"])
def test_sampling_reproducible_with_generator(latent):
    torch.manual_seed(0)
    prior = LatentPrior(preset_config("small32", latent=latent, nz=8, mog_components=5))
    a = prior.sample(10, generator=torch.Generator().manual_seed(7))
    b = prior.sample(10, generator=torch.Generator().manual_seed(7))
    c = prior.sample(10, generator=torch.Generator().manual_seed(8))
    assert a.shape == (10, 8) and torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(123)  # the global RNG does not matter once a generator is given
    assert torch.equal(prior.sample(10, generator=torch.Generator().manual_seed(7)), a)


def test_mog_prior_lives_in_generator_state_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = preset_config("small32", latent="mog", nz=8, ngf=4, ndf=4, mog_components=3)
    gen = Generator(cfg)
    assert {"prior.mu", "prior.sigma"} <= set(gen.state_dict())
    opt = torch.optim.Adam(gen.parameters())
    assert any(p is gen.prior.mu for group in opt.param_groups for p in group["params"])
    with torch.no_grad():
        gen.prior.mu.add_(0.5)
        gen.prior.sigma.fill_(0.7)
    from gan_probe.models import Discriminator
    save_checkpoint(tmp_path / "m.pt", {"generator": gen.state_dict(), "discriminator": Discriminator(cfg).state_dict(),
                                        "config": {"model": cfg.to_dict()}})
    loaded = load_models(tmp_path / "m.pt")
    assert torch.equal(loaded.generator.prior.mu, gen.prior.mu) and torch.all(loaded.generator.prior.sigma == 0.7)
    gen.eval()
    with torch.no_grad():
        expected = gen.sample(4, generator=torch.Generator().manual_seed(1))
        assert torch.equal(loaded.generator.sample(4, generator=torch.Generator().manual_seed(1)), expected)


TINY = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16, "latent": "mog",
                                                      "mog_components": 5},
            batch_size=32, log_every=1, sample_every=5, checkpoint_every=5, mog_sigma_reg=0.5,
            device="cpu")  # exact resume is a CPU guarantee (GPU kernels may reduce in any order)


def _weights(path):
    state = load_checkpoint(path)
    return {**{f"g.{k}": v for k, v in state["generator"].items()},
            **{f"d.{k}": v for k, v in state["discriminator"].items()}}


def test_mog_training_updates_prior_and_resumes_exactly(tmp_path):
    straight = train(TrainConfig(**TINY, max_steps=8), tmp_path / "straight")
    train(TrainConfig(**TINY, max_steps=5), tmp_path / "resumed")
    resumed = train(TrainConfig(**TINY, max_steps=8), tmp_path / "resumed", resume=True)
    assert resumed.resumed_from == 5
    wa, wb = _weights(straight.out_dir / "checkpoint.pt"), _weights(resumed.out_dir / "checkpoint.pt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss_g"] for r in read_log(straight.out_dir)] == [r["loss_g"] for r in read_log(resumed.out_dir)]
    # the prior's parameters were optimised by G's Adam
    assert not torch.all(wa["g.prior.sigma"] == 0.2)
    torch.manual_seed(0)
    init = Generator(TrainConfig(**TINY).model_config()).prior
    assert not torch.equal(wa["g.prior.mu"], init.mu.detach())
    state = load_checkpoint(straight.out_dir / "checkpoint.pt")
    assert state["config"]["train"]["mog_sigma_reg"] == 0.5
    assert state["config"]["model"]["latent"] == "mog" and state["config"]["model"]["mog_components"] == 5
    # the logged G loss includes the regulariser: 0.5 * 5 * 16 * 0.8^2 / 5 = 5.12 at the first step, plus the GAN term
    assert read_log(straight.out_dir)[0]["loss_g"] > 5.12


def test_cli_mog_flags(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--ngf", "8", "--ndf", "8", "--batch-size", "32", "--max-steps", "1",
                 "--latent", "mog", "--mog-components", "7", "--mog-sigma-reg", "0.25", "--out", str(out),
                 "--no-progress"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["generator"]["prior.mu"].shape == (7, 100)
    assert state["config"]["train"]["mog_sigma_reg"] == 0.25
    with pytest.raises(ConfigError, match="--mog-sigma-reg"):
        TrainConfig(mog_sigma_reg=-1.0)
