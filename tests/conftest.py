"""Fixtures shared by several test modules."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (tiny problems: thread start-up costs more than it saves)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Commands run as on a fresh offline machine: their own cache, no progress bars, no network, one process."""
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")
    monkeypatch.setenv("GAN_PROBE_OFFLINE", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
