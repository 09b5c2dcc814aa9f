"""`gan-probe extract` and `gan-probe svm` killed with SIGKILL in a real process, then rerun: the rerun resumes
from what the killed process kept and gives exactly what an uninterrupted run gives.

(The training run's counterpart is tests/test_crash_resume.py; the in-process interruptions of the same code
paths are in tests/test_extract.py and tests/test_probe_resume.py.)"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import save_checkpoint
from gan_probe.features import load_store
from gan_probe.models import Discriminator, Generator, preset_config
from gan_probe.probe.resume import fits_dir

from feature_stores import make_store


def _env(tmp_path):
    return {**os.environ, "GAN_PROBE_CACHE": str(tmp_path / "cache"), "GAN_PROBE_PROGRESS": "0",
            "GAN_PROBE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _kill_when(command, env, ready, timeout=120):
    """Start ``command``, SIGKILL it as soon as ``ready()`` is true; the test fails if it ended first."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the command ended before it could be killed: {err.decode()[-500:]}"


def _cli(*args):
    return [sys.executable, "-m", "gan_probe", *map(str, args)]


def test_extract_killed_inside_its_training_split_resumes_to_the_same_store(tmp_path):
    cfg = preset_config("small32", ngf=4, ndf=4)
    torch.manual_seed(0)
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, {"generator": Generator(cfg).state_dict(), "discriminator": Discriminator(cfg).state_dict(),
                           "step": 0, "config": {"model": cfg.to_dict(), "train": {}}})
    env = _env(tmp_path)

    def command(out):
        return _cli("extract", "--checkpoint", ckpt, "--dataset", "digits", "--out", out, "--batch-size", 8,
                    "--no-progress")

    whole = subprocess.run(command(tmp_path / "whole"), env=env, capture_output=True, text=True)  # same threads
    assert whole.returncode == 0, whole.stderr
    reference = load_store(tmp_path / "whole")
    row_bytes = reference.train_features.shape[1] * 4
    partial = tmp_path / "f" / ".partial" / "train_features.npy"

    def some_rows_written():  # past the header and at least 20 whole rows, long before the split's 1,347 (one
        # batch of 8 more: a rerun keeps whole batches only, and 20 written rows are 16 kept ones)
        try:
            return partial.stat().st_size > 128 + (20 + 8) * row_bytes
        except FileNotFoundError:
            return False

    _kill_when(command(tmp_path / "f"), env, some_rows_written)
    assert not (tmp_path / "f" / "meta.json").exists()   # a killed extraction is never taken for a store

    rerun = subprocess.run(command(tmp_path / "f"), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    store = load_store(tmp_path / "f")
    for part in ("train_features", "train_labels", "test_features", "test_labels"):
        assert np.array_equal(getattr(reference, part), getattr(store, part)), part
    resumed = store.meta["resumed"]
    assert resumed["batchnorm"] and 20 <= resumed["rows"]["train"] < len(reference.train_labels)
    assert resumed["rows"]["train"] % 8 == 0   # whole batches only
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "meta.json", "test_features.npy", "test_labels.npy", "train_features.npy", "train_labels.npy"]


def test_svm_killed_inside_its_C_grid_resumes_to_the_same_result(tmp_path):
    store = make_store(tmp_path / "feats", n_train=1500, n_test=200, d=300, k=5, spread=0.15)
    grid = ["--C-grid", "1e-4,3e-4,1e-3,3e-3,0.01,0.03,0.1,0.3,1", "--val-size", "300", "--method", "primal"]
    env = _env(tmp_path)
    whole, killed = tmp_path / "whole.json", tmp_path / "killed.json"
    done = subprocess.run(_cli("svm", "--features", store, *grid, "--json", whole), env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr

    def two_fits_kept():
        return len(list(fits_dir(killed).glob("C=*.pt"))) >= 2

    command = _cli("svm", "--features", store, *grid, "--json", killed)
    _kill_when(command, env, two_fits_kept)
    assert not killed.exists()
    kept = len(list(fits_dir(killed).glob("C=*.pt")))

    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr.count("resumed from") == kept and not fits_dir(killed).exists()
    a, b = json.loads(whole.read_text()), json.loads(killed.read_text())
    assert b["C"] == a["C"] and b["accuracy"] == a["accuracy"]
    assert [p["val_accuracy"] for p in b["C_selection"]["curve"]] == [p["val_accuracy"]
                                                                      for p in a["C_selection"]["curve"]]
    assert sum(bool(f.get("resumed")) for f in b["fits"]) == kept
    for fa, fb in zip(a["fits"], b["fits"]):
        assert fb["objective"] == pytest.approx(fa["objective"], rel=1e-6)
