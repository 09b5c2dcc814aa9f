"""Killing a training run with SIGKILL at any moment and resuming gives the same weights as never stopping."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint
from gan_probe.training import TrainConfig, train

ARGS = ["--dataset", "digits", "--preset", "small32", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "32",
        "--log-every", "1", "--sample-every", "3", "--checkpoint-every", "1", "--no-progress", "--seed", "5",
        "--device", "cpu"]  # exact resume is a CPU guarantee
STEPS = 12


def _weights(path):
    state = load_checkpoint(path)
    return {**{f"g.{k}": v for k, v in state["generator"].items()},
            **{f"d.{k}": v for k, v in state["discriminator"].items()},
            "step": torch.tensor(state["step"])}


def _cli(out, *extra):
    return [sys.executable, "-m", "gan_probe", "train", *ARGS, "--out", str(out), "--max-steps", str(STEPS), *extra]


@pytest.mark.parametrize("kill_after_step,delay", [(2, 0.0), (5, 0.013)])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, kill_after_step, delay):
    reference = train(TrainConfig(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16},
                                  batch_size=32, log_every=1, sample_every=3, checkpoint_every=1, seed=5,
                                  max_steps=STEPS, device="cpu"), tmp_path / "reference")
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            log = run / "log.csv"
            if log.exists() and len(log.read_text().splitlines()) > kill_after_step:
                break
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    # nothing half-written: every checkpoint present loads
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        if (run / name).exists():
            load_checkpoint(run / name)
    done = subprocess.run(_cli(run, "--resume"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected, got = _weights(reference.out_dir / "checkpoint.pt"), _weights(run / "checkpoint.pt")
    assert got["step"] == STEPS
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    steps = [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1))
    assert not [p for p in run.rglob("*.tmp")]


def test_resume_removes_what_a_kill_mid_write_left(tmp_path):
    cfg = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32,
               checkpoint_every=1, seed=5, device="cpu")
    train(TrainConfig(**cfg, max_steps=2), tmp_path / "run")
    # what a SIGKILL between creating the temporary and renaming it leaves behind
    (tmp_path / "run" / "samples").mkdir(exist_ok=True)
    stale = [tmp_path / "run" / ".checkpoint.pt.k2x9q.tmp", tmp_path / "run" / ".log.csv.a8b1c.tmp",
             tmp_path / "run" / "samples" / ".step_0000002.png.u7c1d.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    keep = tmp_path / "run" / "notes.tmp"  # not an atomic-write temporary: not ours to delete
    keep.write_text("user file")
    train(TrainConfig(**cfg, max_steps=3), tmp_path / "run", resume=True)
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "user file"


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
    cfg = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32,
               checkpoint_every=1, seed=5, device="cpu")
    train(TrainConfig(**cfg, max_steps=3), tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"\x00" * 100)  # e.g. a disk fault
    resumed = train(TrainConfig(**cfg, max_steps=4), tmp_path / "run", resume=True)
    assert resumed.resumed_from == 2  # the previous good checkpoint
    straight = train(TrainConfig(**cfg, max_steps=4), tmp_path / "straight")
    a, b = _weights(resumed.out_dir / "checkpoint.pt"), _weights(straight.out_dir / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_non_finite_loss_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import math
    import re

    import gan_probe.training.step as training
    from gan_probe.cli import main

    real_g_loss, calls = training.g_loss, []

    def nan_at_step_5(kind, logits):
        calls.append(1)
        loss = real_g_loss(kind, logits)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setattr(training, "g_loss", nan_at_step_5)
    out = tmp_path / "run"
    # checks happen at checkpoints (every 2) and log rows (every 3): step 5's NaN is seen at step 6
    args = ["train", *ARGS[:ARGS.index("--log-every")], "--log-every", "3", "--checkpoint-every", "2",
            "--sample-every", "100", "--device", "cpu", "--no-progress", "--max-steps", "10", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert re.fullmatch(r"gan-probe train: error: non-finite loss at step 5 \(loss_d=[-0-9.e]+, loss_g=nan\); "
                        r"training stopped, the last good checkpoint is " + re.escape(str(out / "checkpoint.pt"))
                        + r" \(step 4\)\n", err), err
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    assert load_checkpoint(out / "checkpoint.prev.pt")["step"] == 2
    assert [int(line.split(",")[0]) for line in (out / "log.csv").read_text().splitlines()[1:]] == [3]
    assert not math.isnan(float((out / "log.csv").read_text().splitlines()[1].split(",")[3]))
