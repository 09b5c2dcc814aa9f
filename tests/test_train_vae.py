"""`gan-probe train --model vae`: the VAE family in the one training loop, and what reads its checkpoints."""
import json
import math

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint
from gan_probe.cli import main
from gan_probe.errors import CheckpointError
from gan_probe.features import ExtractOptions, extract_features, load_store
from gan_probe.training import TrainConfig, read_log, train

NZ = 16
TINY = dict(family="vae", dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": NZ}, batch_size=32,
            log_every=1, sample_every=3, checkpoint_every=3, device="cpu")  # exact resume: a CPU guarantee
ARGS = ["train", "--model", "vae", "--dataset", "digits", "--preset", "small32", "--ngf", "8", "--ndf", "8",
        "--nz", str(NZ), "--batch-size", "32", "--log-every", "1", "--device", "cpu", "--no-progress"]


def _weights(path):
    state = load_checkpoint(path)
    return {**{f"vae.{k}": v for k, v in state["vae"].items()},
            **{f"opt.{k}": v for k, v in state["optimizer"]["state"].items() for k, v in
               ((f"{k}.{name}", t) for name, t in v.items())}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 6-step VAE run (checkpoints at 3 and 6)."""
    out = tmp_path_factory.mktemp("vae") / "run"
    train(TrainConfig(**TINY, max_steps=6), out)
    return out


def test_the_checkpoint_and_config_record_the_family(run):
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["family"] == "vae" and state["config"]["train"]["family"] == "vae"
    assert "vae" in state and "optimizer" in state and "discriminator" not in state
    assert json.loads((run / "config.json").read_text())["family"] == "vae"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]


def test_log_csv_holds_the_elbo_terms(run):
    header = (run / "log.csv").read_text().splitlines()[0]
    assert header == "step,epoch,loss,recon,kl,elbo,images_per_s,seconds"
    rows = read_log(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert r["elbo"] == -r["loss"] and r["kl"] >= 0
        assert math.isclose(r["loss"], r["recon"] + r["kl"], rel_tol=1e-5)
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns


def test_resume_matches_uninterrupted_run(run, tmp_path):
    train(TrainConfig(**TINY, max_steps=3), tmp_path / "resumed")
    resumed = train(TrainConfig(**TINY, max_steps=6), tmp_path / "resumed", resume=True)
    assert resumed.resumed_from == 3 and resumed.step == 6
    a, b = _weights(run / "checkpoint.pt"), _weights(tmp_path / "resumed" / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    straight = read_log(run)
    assert [r["loss"] for r in read_log(tmp_path / "resumed")] == [r["loss"] for r in straight]


def test_cli_summary_and_a_resume_with_the_other_family_is_an_error(run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(ARGS + ["--max-steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained to step 2/2" in printed and "loss " in printed and "recon " in printed and "kl " in printed
    assert main(ARGS[:1] + ["--model", "dcgan", "--resume", "--max-steps", "3", "--out", str(out)]) == 2
    assert "checkpoint was trained with family='vae', but --model 'dcgan' was given" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--probe-every", "2", "--probe-dataset", "digits"], "--probe-every: the online probe scores a DCGAN"),
    (["--latent", "uniform"], "--latent uniform: a VAE's prior is N(0, I)"),
])
def test_options_that_do_not_apply_to_a_vae(tmp_path, capsys, extra, message):
    assert main(ARGS + ["--max-steps", "2", "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_extract_on_a_vae_checkpoint_pools_the_encoder_and_keeps_mu(run, tmp_path):
    options = dict(dataset="digits", device="cpu", holdout=200)
    root = extract_features(run / "checkpoint.pt", out=tmp_path / "all", **options)
    store = load_store(root)
    meta = store.meta
    assert meta["source"] == "vae" and meta["layer_names"] == ["conv1", "conv2", "conv3", "mu"]
    assert meta["dims_per_layer"] == {"conv1": 8 * 16, "conv2": 16 * 16, "conv3": 32 * 16, "mu": NZ}
    assert store.train_features.shape[1] == (8 + 16 + 32) * 16 + NZ
    mu = load_store(extract_features(run / "checkpoint.pt", out=tmp_path / "mu",
                                     options=ExtractOptions(layers=("mu",), holdout=200), dataset="digits",
                                     device="cpu"))
    assert mu.meta["layers"] == [3] and mu.train_features.shape[1] == NZ
    # mu is the encoder's posterior mean, the same columns as in the store of every layer
    np.testing.assert_array_equal(mu.test_features, store.test_features[:, -NZ:])


def test_extract_cli_takes_layer_names(run, tmp_path, capsys):
    out = tmp_path / "feats"
    assert main(["extract", "--checkpoint", str(run / "checkpoint.pt"), "--dataset", "digits", "--holdout", "200",
                 "--layers", "conv2,mu", "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    assert f"({16 * 16 + NZ} dims: conv2 256, mu {NZ})" in capsys.readouterr().out
    assert main(["extract", "--checkpoint", str(run / "checkpoint.pt"), "--dataset", "digits", "--holdout", "200",
                 "--layers", "conv9", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "bad")]) == 2
    assert "the model has layers 0..3, named conv1, conv2, conv3, mu" in capsys.readouterr().err


def test_viz_samples_decode_from_the_prior_and_d_only_figures_say_what_they_expect(run, tmp_path, capsys):
    out = tmp_path / "samples.png"
    assert main(["viz", "samples", "--checkpoint", str(run / "checkpoint.pt"), "--n", "9", "--dpi", "60",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "interpolate.png"
    assert main(["viz", "interpolate", "--checkpoint", str(run / "checkpoint.pt"), "--rows", "2", "--steps", "3",
                 "--dpi", "60", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["viz", "filters", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(tmp_path / "f.png"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"gan-probe viz: error: {run / 'checkpoint.pt'}: a VAE checkpoint (gan-probe train --model vae); "
                   f"viz filters expects a DCGAN checkpoint (a generator and a discriminator)")


def test_export_refuses_a_vae_checkpoint_in_one_line(run, tmp_path):
    from gan_probe.models.pretrained import export_checkpoint

    with pytest.raises(CheckpointError, match="a VAE checkpoint .*gan-probe export expects a DCGAN checkpoint"):
        export_checkpoint(run / "checkpoint.pt", tmp_path / "x.pt")


def test_the_training_curves_plot_the_elbo_terms(run, tmp_path):
    from gan_probe.report.figures import loss_curves_figure
    from gan_probe.report.results import load_run_dir

    path = loss_curves_figure([load_run_dir(run)], tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
