"""Killing a training run with SIGKILL at any moment and resuming gives the same weights as never stopping."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gan_probe.checkpoint import load_checkpoint
from gan_probe.train import TrainConfig, train

ARGS = ["--dataset", "digits", "--preset", "small32", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "32",
        "--log-every", "1", "--sample-every", "3", "--checkpoint-every", "1", "--no-progress", "--seed", "5"]
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
                                  max_steps=STEPS), tmp_path / "reference")
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


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
    cfg = dict(dataset="digits", preset="small32", model={"ngf": 8, "ndf": 8, "nz": 16}, batch_size=32,
               checkpoint_every=1, seed=5)
    train(TrainConfig(**cfg, max_steps=3), tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"\x00" * 100)  # e.g. a disk fault
    resumed = train(TrainConfig(**cfg, max_steps=4), tmp_path / "run", resume=True)
    assert resumed.resumed_from == 2  # the previous good checkpoint
    straight = train(TrainConfig(**cfg, max_steps=4), tmp_path / "straight")
    a, b = _weights(resumed.out_dir / "checkpoint.pt"), _weights(straight.out_dir / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
