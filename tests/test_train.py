import csv

import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint, load_models
from gan_probe.cli import main
from gan_probe.errors import CheckpointError, GanProbeError
from gan_probe.training import TrainConfig, read_log, train

TINY = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32,
            log_every=1, sample_every=5, checkpoint_every=5, device="cpu")  # exact resume: a CPU guarantee


def _weights(path):
    state = load_checkpoint(path)
    return {**{f"g.{k}": v for k, v in state["generator"].items()},
            **{f"d.{k}": v for k, v in state["discriminator"].items()}}


def test_same_seed_same_losses_and_weights(tmp_path):
    a = train(TrainConfig(**TINY, max_steps=6, seed=3), tmp_path / "a")
    b = train(TrainConfig(**TINY, max_steps=6, seed=3), tmp_path / "b")
    la, lb = read_log(a.out_dir), read_log(b.out_dir)
    assert [r["loss_d"] for r in la] == [r["loss_d"] for r in lb]
    wa, wb = _weights(a.out_dir / "checkpoint.pt"), _weights(b.out_dir / "checkpoint.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(TrainConfig(**TINY, max_steps=6, seed=4), tmp_path / "c")
    assert [r["loss_d"] for r in read_log(c.out_dir)] != [r["loss_d"] for r in la]


def test_resume_matches_uninterrupted_run(tmp_path):
    straight = train(TrainConfig(**TINY, max_steps=10), tmp_path / "straight")
    train(TrainConfig(**TINY, max_steps=5), tmp_path / "resumed")
    resumed = train(TrainConfig(**TINY, max_steps=10), tmp_path / "resumed", resume=True)
    assert resumed.resumed_from == 5 and resumed.step == 10
    wa, wb = _weights(straight.out_dir / "checkpoint.pt"), _weights(resumed.out_dir / "checkpoint.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["step"] for r in read_log(resumed.out_dir)] == list(range(1, 11))
    assert [r["loss_g"] for r in read_log(resumed.out_dir)] == [r["loss_g"] for r in read_log(straight.out_dir)]
    # the log's seconds count the whole run: they go on from the checkpoint's time instead of restarting at zero
    seconds = [r["seconds"] for r in read_log(resumed.out_dir)]
    assert seconds == sorted(seconds) and seconds[5] >= seconds[4] > 0
    assert torch.load(resumed.out_dir / "checkpoint.pt", weights_only=True)["seconds"] >= seconds[-1]


def test_run_directory_contents(tmp_path):
    result = train(TrainConfig(**TINY, max_steps=5), tmp_path / "run")
    out = result.out_dir
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # a plain dict
    assert {"generator", "discriminator", "optimizer_g", "optimizer_d", "step", "config"} <= set(state)
    assert state["step"] == 5 and state["config"]["model"]["ngf"] == 8
    assert (out / "samples" / "step_0000005.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "log.csv") as fh:
        assert {"step", "loss_d", "loss_g"} <= set(csv.DictReader(fh).fieldnames)
    models = load_models(out / "checkpoint.pt")
    assert models.generator.sample(2).shape == (2, 3, 32, 32)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_refuses_to_overwrite_without_resume(tmp_path):
    train(TrainConfig(**TINY, max_steps=1), tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(GanProbeError, match="--resume"):
        train(TrainConfig(**TINY, max_steps=2), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    train(TrainConfig(**TINY, max_steps=1), tmp_path / "run")
    data = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_cli_train_and_resume(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--dataset", "digits", "--preset", "small32", "--ngf", "8", "--ndf", "8", "--batch-size", "32",
            "--out", str(out), "--no-progress", "--sample-every", "2"]
    assert main(args + ["--max-steps", "2"]) == 0
    assert main(args + ["--max-steps", "3", "--resume"]) == 0
    assert "resumed at step 2" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert main(args + ["--max-steps", "3", "--batch-size", "5000"]) == 2  # existing run, no --resume
    assert main(["train", "--dataset", "digits", "--batch-size", "5000", "--out", str(tmp_path / "x"),
                 "--no-progress", "--max-steps", "1"]) == 2
    assert "only 1347 images" in capsys.readouterr().err


def test_holdout_trains_only_on_the_images_the_probe_keeps_for_training(tmp_path):
    from gan_probe.data import load_split
    from gan_probe.data.holdout import holdout_split

    keep, held = holdout_split(load_split("digits", split="train", image_size=32), 347, 5)
    out = train(TrainConfig(**TINY, max_steps=1, holdout=347, holdout_seed=5), tmp_path / "run").out_dir
    data = load_checkpoint(out / "checkpoint.pt")["data"]
    assert data["n"] == len(keep) == 1000 and data["sha256"] == keep.checksum != held.checksum
    assert data["holdout"]["n_test"] == 347 and data["holdout"]["seed"] == 5
    assert main(["train", "--max-steps", "1", "--holdout", "0", "--out", str(tmp_path / "bad")]) == 2


def test_max_minutes_stops_at_a_log_step_with_a_checkpoint_and_resumes_exactly(tmp_path):
    straight = train(TrainConfig(**TINY, max_steps=8), tmp_path / "straight")
    cut = train(TrainConfig(**{**TINY, "log_every": 3}, max_steps=8, max_minutes=1e-9), tmp_path / "cut")
    assert cut.step == 3  # the first log step after the (already spent) budget
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 3
    assert (tmp_path / "cut" / "samples" / "step_0000003.png").is_file()
    resumed = train(TrainConfig(**TINY, max_steps=8), tmp_path / "cut", resume=True)
    assert resumed.resumed_from == 3 and resumed.step == 8
    wa, wb = _weights(straight.out_dir / "checkpoint.pt"), _weights(resumed.out_dir / "checkpoint.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("minutes", [0, -1.5])
def test_max_minutes_must_be_positive(minutes):
    with pytest.raises(GanProbeError, match="--max-minutes must be positive"):
        TrainConfig(**TINY, max_minutes=minutes)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_request_checkpoints_the_step_it_is_in_and_resumes_exactly(tmp_path, sig):
    import os
    import signal

    from gan_probe.training import TrainingStopped

    straight = train(TrainConfig(**TINY, max_steps=8), tmp_path / "straight")

    def request_stop(step, row):
        if step == 3:
            os.kill(os.getpid(), getattr(signal, sig))

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingStopped, match="stopped at step 4 of 8 on request; checkpoint written to"):
        train(TrainConfig(**TINY, max_steps=8), tmp_path / "cut", callback=request_stop)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 4      # not 5, the last periodic one
    assert len(read_log(tmp_path / "cut")) == 4
    resumed = train(TrainConfig(**TINY, max_steps=8), tmp_path / "cut", resume=True)
    assert resumed.resumed_from == 4 and resumed.step == 8
    wa, wb = _weights(straight.out_dir / "checkpoint.pt"), _weights(resumed.out_dir / "checkpoint.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_ctrl_c_while_training_names_the_checkpoint_and_the_resume_command(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import gan_probe.training as training

    real = training.train

    def train_and_press_ctrl_c(*args, **kwargs):
        kwargs["callback"] = lambda step, row: step == 2 and os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", train_and_press_ctrl_c)
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--preset", "small32", "--ngf", "8", "--ndf", "8", "--nz", "16",
                 "--batch-size", "32", "--log-every", "1", "--max-steps", "6", "--device", "cpu", "--no-progress",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130
    assert (f"gan-probe train: interrupted: stopped at step 3 of 6 on request; checkpoint written to "
            f"{out / 'checkpoint.pt'}; `gan-probe train --resume --out {out}` continues") in err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
