import copy
import json

import pytest
import torch

from gan_probe.models import Discriminator, Generator, preset_config
from gan_probe.training import TrainConfig, read_log, train
from gan_probe.training.schedule import stream_rng
from gan_probe.training.step import GanStep, GraphedStep, draw_step_noise, latent_from_noise

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _models(latent="normal", device="cpu", seed=0):
    cfg = preset_config("small32", ngf=8, ndf=8, nz=16, latent=latent, mog_components=4)
    torch.manual_seed(seed)
    return Generator(cfg).to(device), Discriminator(cfg).to(device)


def _step(gen, disc, amp, capturable=False, latent_reg=0.0):
    cuda_ = next(disc.parameters()).device.type == "cuda"
    adam = {"lr": 2e-4, "betas": (0.5, 0.999), **({"fused": True, "capturable": capturable} if cuda_ else {})}
    return GanStep(gen, disc, torch.optim.Adam(gen.parameters(), **adam), torch.optim.Adam(disc.parameters(), **adam),
                   loss="bce", amp=amp, mog_sigma_reg=latent_reg)


def _inputs(gen, step, device, batch=16):
    real = torch.rand(batch, 3, 32, 32, generator=stream_rng(9, 4, step)).mul_(2).sub_(1).to(device)
    return real, draw_step_noise(gen.prior, batch, stream_rng(9, 2, step), slice(0, batch), torch.device(device))


@pytest.mark.parametrize("latent", ["normal", "uniform", "mog"])
def test_rank_slices_of_the_noise_make_up_the_global_draw(latent):
    gen, _ = _models(latent)
    whole = draw_step_noise(gen.prior, 8, stream_rng(1, 2, 7), slice(0, 8), torch.device("cpu"))
    parts = [draw_step_noise(gen.prior, 8, stream_rng(1, 2, 7), slice(r * 4, r * 4 + 4), torch.device("cpu"))
             for r in range(2)]
    for i, tensor in enumerate(whole):
        assert torch.equal(torch.cat([p[i] for p in parts]), tensor)
    assert latent_from_noise(gen.prior, whole).shape == (8, 16)
    assert torch.equal(latent_from_noise(gen.prior, whole),
                       gen.prior.sample(8, generator=stream_rng(1, 2, 7), device="cpu"))


def test_eager_step_updates_d_from_its_loss_and_g_through_the_updated_d():
    gen, disc = _models()
    step = _step(gen, disc, amp=False)
    real, noise = _inputs(gen, 0, "cpu")
    g0, d0 = copy.deepcopy(gen), copy.deepcopy(disc)
    out = step(real, noise)
    # D's loss is computed with the weights before the update, G's with D's updated weights
    with torch.no_grad():
        fake = g0(noise[0])
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        lr, lf = d0(real), d0(fake)
        expected_d = bce(lr, torch.ones_like(lr)) + bce(lf, torch.zeros_like(lf))
        fake_g = disc(g0(noise[0]))
    assert out.loss_d.item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert out.loss_g.item() == pytest.approx(bce(fake_g, torch.ones_like(fake_g)).item(), rel=1e-5)
    assert all(p.requires_grad for p in disc.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(gen.parameters(), g0.parameters()))


def test_graphed_step_needs_a_warmup():
    gen, disc = _models()
    with pytest.raises(ValueError, match="warmup"):
        GraphedStep(_step(gen, disc, amp=False), warmup=0)


def _params(*modules):
    return torch.cat([t.detach().float().flatten() for m in modules for t in list(m.parameters()) + list(m.buffers())
                      if t.is_floating_point()])


@cuda
@pytest.mark.parametrize("latent,amp", [("normal", False), ("mog", False), ("uniform", True)])
def test_graph_replay_follows_the_eager_trajectory(latent, amp):
    torch.backends.cudnn.deterministic = True
    try:
        eager_gen, eager_disc = _models(latent, "cuda")
        graph_gen, graph_disc = _models(latent, "cuda")
        eager = _step(eager_gen, eager_disc, amp, capturable=True, latent_reg=0.01)
        graphed = GraphedStep(_step(graph_gen, graph_disc, amp, capturable=True, latent_reg=0.01), warmup=2)
        for s in range(8):
            real, noise = _inputs(eager_gen, s, "cuda")
            a, b = eager(real, noise), graphed(real, noise)
            tol = dict(rtol=2e-2, atol=2e-3) if amp else dict(rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(b.loss_d, a.loss_d, **tol)
            torch.testing.assert_close(b.loss_g, a.loss_g, **tol)
        assert graphed.captured and graphed.eager_calls == 2
        start = _params(*_models(latent, "cuda"))
        moved = _params(eager_gen, eager_disc) - start
        gap = _params(graph_gen, graph_disc) - _params(eager_gen, eager_disc)
        assert moved.norm() > 0
        assert gap.norm() <= (0.05 if amp else 1e-4) * moved.norm()
    finally:
        torch.backends.cudnn.deterministic = False


@cuda
def test_cuda_training_uses_the_graph_and_resumes(tmp_path):
    tiny = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32,
                log_every=1, sample_every=5, checkpoint_every=5, device="cuda", amp=False)
    straight = train(TrainConfig(**tiny, max_steps=10), tmp_path / "straight")
    assert json.loads((straight.out_dir / "config.json").read_text())["cuda_graph_step"] is True
    eager = train(TrainConfig(**tiny, max_steps=10, cuda_graphs=False), tmp_path / "eager")
    assert json.loads((eager.out_dir / "config.json").read_text())["cuda_graph_step"] is False
    train(TrainConfig(**tiny, max_steps=5), tmp_path / "resumed")
    resumed = train(TrainConfig(**tiny, max_steps=10), tmp_path / "resumed", resume=True)
    for other in (eager, resumed):
        a, b = read_log(straight.out_dir), read_log(other.out_dir)
        assert [r["step"] for r in b] == list(range(1, 11))
        for ra, rb in zip(a, b):
            assert rb["loss_d"] == pytest.approx(ra["loss_d"], rel=1e-3)
            assert rb["loss_g"] == pytest.approx(ra["loss_g"], rel=1e-3)


def test_cli_flag_turns_the_graph_off_and_cpu_runs_never_use_it(tmp_path):
    from gan_probe.cli import main

    base = ["train", "--dataset", "digits", "--preset", "small32", "--ngf", "8", "--ndf", "8", "--nz", "16",
            "--batch-size", "32", "--max-steps", "2", "--no-progress", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--no-cuda-graphs", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "config.json").read_text())
    b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert a["train"]["cuda_graphs"] is True and b["train"]["cuda_graphs"] is False
    assert a["cuda_graph_step"] is False and b["cuda_graph_step"] is False
    # a runtime option: resuming with the other value is allowed
    assert main([*base[:-5], "--max-steps", "3", "--no-progress", "--device", "cpu", "--no-cuda-graphs",
                 "--resume", "--out", str(tmp_path / "a")]) == 0
