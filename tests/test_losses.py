import math

import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint
from gan_probe.cli import main
from gan_probe.errors import ConfigError
from gan_probe.models.losses import LOSSES, d_loss, g_loss
from gan_probe.training import TrainConfig, read_log, train


def softplus(x):
    return math.log1p(math.exp(x))


def test_bce_hand_computed():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f)
    expected_d = (softplus(0) + softplus(-2)) / 2 + (softplus(0) + softplus(-1)) / 2
    assert float(d_loss("bce", real, fake)) == pytest.approx(expected_d, abs=1e-6)
    assert float(d_loss("bce", real, fake)) == pytest.approx(0.9132423, abs=1e-6)
    # non-saturating generator: -log sigmoid(f)
    assert float(g_loss("bce", fake)) == pytest.approx((math.log(2) + softplus(1)) / 2, abs=1e-6)


def test_least_squares_hand_computed():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert float(d_loss("ls", real, fake)) == pytest.approx(0.5 * (0 + 4) / 2 + 0.5 * (0 + 4) / 2)  # 2.0
    assert float(g_loss("ls", fake)) == pytest.approx(0.5 * (1 + 9) / 2)  # 2.5
    # the optimum of D's objective: real at 1, fake at 0
    assert float(d_loss("ls", torch.ones(3), torch.zeros(3))) == 0.0
    assert float(g_loss("ls", torch.ones(3))) == 0.0


def test_hinge_hand_computed():
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.5])
    assert float(d_loss("hinge", real, fake)) == pytest.approx((0.5 + 0) / 2 + (0 + 1.5) / 2)  # 1.0
    assert float(g_loss("hinge", fake)) == pytest.approx(0.75)  # -mean(fake)
    # beyond the margins D's loss is exactly zero
    assert float(d_loss("hinge", torch.tensor([1.0, 5.0]), torch.tensor([-1.0, -3.0]))) == 0.0


@pytest.mark.parametrize("kind", LOSSES)
def test_gradient_signs(kind):
    """D's loss rewards raising real logits and lowering fake ones; G's rewards raising fake logits."""
    real = torch.tensor([0.3, -0.2], requires_grad=True)
    fake = torch.tensor([0.1, 0.4], requires_grad=True)
    d_loss(kind, real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake_g = torch.tensor([0.1, 0.4], requires_grad=True)
    g_loss(kind, fake_g).backward()
    assert (fake_g.grad < 0).all()


@pytest.mark.parametrize("kind", LOSSES)
def test_half_precision_logits_give_float32(kind):
    real, fake = torch.tensor([1.5, -0.5], dtype=torch.bfloat16), torch.tensor([0.25, -1.0], dtype=torch.bfloat16)
    out = d_loss(kind, real, fake)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(float(d_loss(kind, real.float(), fake.float())))


def test_unknown_loss():
    with pytest.raises(ConfigError, match="--loss 'wgan'"):
        d_loss("wgan", torch.zeros(1), torch.zeros(1))
    with pytest.raises(ConfigError, match="--loss 'wgan'"):
        g_loss("wgan", torch.zeros(1))
    with pytest.raises(ConfigError, match="--loss"):
        TrainConfig(loss="wgan")


TINY = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32, log_every=1,
            sample_every=100, checkpoint_every=100)


def test_each_loss_trains_is_recorded_and_differs(tmp_path):
    finals = {}
    for kind in LOSSES:
        result = train(TrainConfig(**TINY, loss=kind, max_steps=2), tmp_path / kind)
        rows = read_log(result.out_dir)
        assert len(rows) == 2 and all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in rows)
        assert load_checkpoint(result.out_dir / "checkpoint.pt")["config"]["train"]["loss"] == kind
        finals[kind] = rows[-1]["d_fake"]
    assert len(set(finals.values())) == len(LOSSES)  # same seed, different objectives -> different trajectories


def test_cli_loss_flag(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--ngf", "8", "--ndf", "8", "--batch-size", "32", "--max-steps", "1",
                 "--loss", "hinge", "--out", str(out), "--no-progress"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["config"]["train"]["loss"] == "hinge"
