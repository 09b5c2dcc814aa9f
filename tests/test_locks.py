"""One writer per output: a second gan-probe process writing to a locked run directory, feature store, result file
or pipeline directory gets one line naming the holder and exit status 2; a lock left by a killed process is taken
over; nothing of the lock is left behind."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import save_checkpoint
from gan_probe.errors import ConfigError
from gan_probe.features import load_store, save_store
from gan_probe.locks import LOCK_NAME, OutputLock, OutputLocked, lock_file
from gan_probe.models import Discriminator, Generator, preset_config


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "GAN_PROBE_CACHE": str(tmp_path / "cache"), "GAN_PROBE_PROGRESS": "0",
            "GAN_PROBE_OFFLINE": "1", "WORLD_SIZE": "", "PYTHONPATH": os.getcwd()}


def _checkpoint(path, seed):
    cfg = preset_config("small32", ngf=4, ndf=4)
    torch.manual_seed(seed)
    save_checkpoint(path, {"generator": Generator(cfg).state_dict(), "discriminator": Discriminator(cfg).state_dict(),
                           "step": 0, "config": {"model": cfg.to_dict(), "train": {}}})
    return path


def _gan_probe(*argv):
    return [sys.executable, "-m", "gan_probe", *map(str, argv)]


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _commands(tmp_path):
    store = save_store(tmp_path / "store", np.zeros((4, 3), np.float32), np.arange(4) % 2,
                       np.zeros((2, 3), np.float32), np.arange(2) % 2, {"source": "test"})
    ckpt = _checkpoint(tmp_path / "a.pt", 0)
    return {
        "train": (["train", "--dataset", "digits", "--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "32",
                   "--max-steps", "1", "--no-progress", "--device", "cpu", "--out", tmp_path / "out"], True),
        "extract": (["extract", "--checkpoint", ckpt, "--dataset", "digits", "--no-progress", "--device", "cpu",
                     "--out", tmp_path / "out"], True),
        "svm": (["svm", "--features", store, "--C", "1", "--no-progress", "--device", "cpu", "--json",
                 tmp_path / "out"], False),
        "kmeans": (["kmeans", "--raw-pixels", "--no-progress", "--out", tmp_path / "out"], True),
        "pipeline": (["pipeline", "--no-progress", "--out", tmp_path / "out"], True),
    }


@pytest.mark.parametrize("command", ["train", "extract", "svm", "kmeans", "pipeline"])
def test_second_writer_gets_one_line_naming_the_holder(tmp_path, env, command):
    argv, directory = _commands(tmp_path)[command]
    out = tmp_path / "out"
    with OutputLock(out, "--json" if command == "svm" else "--out", directory=directory):
        before = _files(tmp_path / "out") + _files(tmp_path)
        done = subprocess.run(_gan_probe(*argv), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        flag = "--json" if command == "svm" else "--out"
        assert lines[0].startswith(f"gan-probe {command}: error: {flag} {out}: in use by another gan-probe process "
                                   f"(pid {os.getpid()} on {socket.gethostname()}, started "), lines[0]
        assert _files(tmp_path / "out") + _files(tmp_path) == before  # nothing written
    assert not lock_file(out, directory).exists()
    if directory:
        assert not out.exists()  # the lock made it; nothing else was written into it


def test_two_extracts_into_one_store(tmp_path, env):
    """Two extractions of different checkpoints into the same --out: one writes the store, the other is refused
    (before, the two wrote one mixed store)."""
    a, b = _checkpoint(tmp_path / "a.pt", 0), _checkpoint(tmp_path / "b.pt", 1)
    out = tmp_path / "feats"
    procs = [subprocess.Popen(_gan_probe("extract", "--checkpoint", c, "--dataset", "digits", "--out", out,
                                         "--no-progress", "--device", "cpu"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in (a, b)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    # the second either finds the first holding the lock, or (started late) the first's finished store
    assert codes == [0, 2], results
    winner = (a, b)[[code for code, _ in results].index(0)]
    loser_err = next(err for code, err in results if code == 2)
    assert len(loser_err.splitlines()) == 1 and ("in use by another gan-probe process" in loser_err
                                                  or "holds features of other inputs" in loser_err), loser_err
    store = load_store(out)
    assert store.meta["checkpoint"] == str(winner)
    assert not (out / LOCK_NAME).exists() and not (out / ".partial").exists()


def test_a_killed_holders_lock_is_taken_over_and_said_so(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from gan_probe.locks import OutputLock; "
                               f"OutputLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLocked, match=f"pid {holder.pid} on {socket.gethostname()}"):
            OutputLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    record = json.loads((out / LOCK_NAME).read_text())  # a killed process cannot clean up
    assert record["pid"] == holder.pid
    with OutputLock(out):
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "took over the lock left by" in err, err
        assert f"pid {holder.pid} on {socket.gethostname()}" in err and "no longer running" in err
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()
    assert out.is_dir()  # it existed before this process locked it


def test_lock_is_released_on_error_and_leaves_nothing(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with OutputLock(out):
            assert (out / LOCK_NAME).is_file()
            raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()  # the directories it made are gone
    result = tmp_path / "r" / "x.json"
    with OutputLock(result, "--json", directory=False):
        assert (tmp_path / "r" / "x.json.lock").is_file()
        result.write_text("{}")
    assert _files(tmp_path) == ["r", "r/x.json"]


def test_lock_is_reentrant_within_a_process(tmp_path):
    with OutputLock(tmp_path / "o"):
        with OutputLock(tmp_path / "o"):
            pass
        assert (tmp_path / "o" / LOCK_NAME).is_file()  # still held by the outer block
    assert not (tmp_path / "o").exists()


def test_outputs_that_cannot_be_locked(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ConfigError, match="--out .*file: exists and is not a directory"):
        OutputLock(tmp_path / "file").acquire()
    with pytest.raises(ConfigError, match="--json .*: cannot write there"):
        OutputLock(tmp_path / "file" / "x.json", "--json", directory=False).acquire()
    with pytest.raises(ConfigError, match="--json .*: is a directory"):
        OutputLock(tmp_path, "--json", directory=False).acquire()
    assert (tmp_path / "file").read_text() == "mine"
