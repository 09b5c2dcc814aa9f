"""Downloads of the official CIFAR-10/SVHN files, without any network: urlopen is replaced in every test."""
import hashlib
import io
import pickle
import socket
import tarfile
import time
from urllib.error import URLError

import numpy as np
import pytest
from scipy.io import savemat

import gan_probe.data.download as download
from gan_probe.data import load_split
from gan_probe.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")


def offline(*args, **kwargs):
    raise URLError(socket.gaierror(-2, "Name or service not known"))


def serve(content, calls=None):
    """A stand-in for urlopen that returns ``content`` (and records the requested URLs)."""
    def fake(url, timeout=None):
        assert timeout is not None and timeout <= 30  # a short timeout, so an offline machine fails at once
        if calls is not None:
            calls.append(url)
        return io.BytesIO(content)
    return fake


def cifar_archive():
    """A cifar-10-python.tar.gz holding cifar-10-batches-py/ with tiny batches in the official format."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, obj):
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            add(name, {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 2]})
        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return buf.getvalue()


def svhn_file():
    buf = io.BytesIO()
    savemat(buf, {"X": np.full((32, 32, 3, 3), 7, np.uint8), "y": np.array([[10], [1], [2]], np.uint8)})
    return buf.getvalue()


@pytest.mark.parametrize("dataset, split, url, name", [
    ("cifar10", "train", download.CIFAR10_URL, "cifar-10-python.tar.gz"),
    ("svhn", "extra", "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat", "extra_32x32.mat"),
])
def test_offline_fails_at_once_with_instructions(tmp_path, monkeypatch, dataset, split, url, name):
    monkeypatch.setattr(download, "urlopen", offline)
    start = time.perf_counter()
    with pytest.raises(DataError) as exc:
        load_split(dataset, tmp_path / "data", split, download=True)
    assert time.perf_counter() - start < 5
    text = str(exc.value)
    assert "\n" not in text and f"cannot download {url}" in text and "offline?" in text
    assert f"put it at {tmp_path / 'data' / name}" in text
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def test_timeout_is_reported_the_same_way(tmp_path, monkeypatch):
    def slow(url, timeout=None):
        raise socket.timeout("timed out")
    monkeypatch.setattr(download, "urlopen", slow)
    with pytest.raises(DataError, match=r"cannot download .*test_32x32.mat \(timed out; offline\?\)"):
        load_split("svhn", tmp_path, "test", download=True)


def test_checksum_mismatch_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "urlopen", serve(b"this is not the CIFAR-10 archive"))
    with pytest.raises(DataError) as exc:
        load_split("cifar10", tmp_path, "train", download=True)
    got = hashlib.md5(b"this is not the CIFAR-10 archive").hexdigest()
    assert f"downloaded file has md5 {got}, expected c58f30108f718f92721af3b95e74349a" in str(exc.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts]


def test_broken_connection_mid_download_saves_nothing(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            raise ConnectionResetError(104, "Connection reset by peer")
    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: Broken(b""))
    with pytest.raises(DataError, match=r"download of .*train_32x32.mat failed \(.*Connection reset by peer\)"):
        load_split("svhn", tmp_path, "train", download=True)
    assert not list(tmp_path.glob("*.mat")) and not list(tmp_path.glob(".*"))


def test_cifar10_download_extract_then_no_network(tmp_path, monkeypatch):
    archive = cifar_archive()
    monkeypatch.setitem(download.MD5, download.CIFAR10_URL, hashlib.md5(archive).hexdigest())
    calls = []
    monkeypatch.setattr(download, "urlopen", serve(archive, calls))
    s = load_split("cifar10", tmp_path / "root", "test", download=True)
    assert calls == [download.CIFAR10_URL]
    assert len(s) == 2 and s.classes[0] == "c0" and s.labels.tolist() == [1, 2]
    assert (tmp_path / "root" / "cifar-10-python.tar.gz").is_file()
    assert sorted(p.name for p in (tmp_path / "root" / "cifar-10-batches-py").iterdir()) == sorted(
        ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
    monkeypatch.setattr(download, "urlopen", lambda *a, **k: pytest.fail("network used although files exist"))
    assert load_split("cifar10", tmp_path / "root", "train", download=True).images.shape == (10, 32, 32, 3)
    # a missing batch file is restored from the kept archive, still without network
    (tmp_path / "root" / "cifar-10-batches-py" / "data_batch_2").unlink()
    assert len(load_split("cifar10", tmp_path / "root", "train", download=True)) == 10


def test_corrupt_kept_archive(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"garbage")
    monkeypatch.setattr(download, "urlopen", lambda *a, **k: pytest.fail("network used although archive exists"))
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz: corrupt archive .*delete it and download again"):
        load_split("cifar10", tmp_path, "train", download=True)


def test_svhn_download_then_no_network(tmp_path, monkeypatch):
    content = svhn_file()
    url = "http://ufldl.stanford.edu/housenumbers/test_32x32.mat"
    monkeypatch.setitem(download.MD5, url, hashlib.md5(content).hexdigest())
    calls = []
    monkeypatch.setattr(download, "urlopen", serve(content, calls))
    s = load_split("svhn", tmp_path, "test", download=True)
    assert calls == [url] and s.labels.tolist() == [0, 1, 2] and int(s.images.max()) == 7
    assert (tmp_path / "test_32x32.mat").read_bytes() == content
    monkeypatch.setattr(download, "urlopen", lambda *a, **k: pytest.fail("network used although file exists"))
    assert len(load_split("svhn", tmp_path, "test", download=True)) == 3


def test_official_checksums_are_recorded():
    assert download.MD5 == {
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "http://ufldl.stanford.edu/housenumbers/train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "http://ufldl.stanford.edu/housenumbers/test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
        "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
    }


def test_download_only_for_cifar10_and_svhn(tmp_path):
    with pytest.raises(DataError, match=r"--download: only cifar10 and svhn can be downloaded, not imagenet"):
        load_split("imagenet", tmp_path, "train", download=True)
