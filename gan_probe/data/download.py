"""Fetching the official CIFAR-10 and SVHN files, verified by md5, written atomically.

Nothing touches the network when the target file is already there. Without network access the fetch fails
at once (short socket timeout) with a one-line :class:`DataError` naming the URL and where to put the file.

>>> svhn_url("test")
'http://ufldl.stanford.edu/housenumbers/test_32x32.mat'
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Sequence
from urllib.error import URLError
from urllib.request import urlopen

from ..atomic import atomic_path
from ..errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat"
# md5 of each official file, as published with the data sets (url -> md5).
MD5 = {
    CIFAR10_URL: "c58f30108f718f92721af3b95e74349a",
    SVHN_URL.format(split="train"): "e26dedcc434d2e4c54c9b2d4a06d8373",
    SVHN_URL.format(split="test"): "eb5a983be6a315427106f1b164d9cef3",
    SVHN_URL.format(split="extra"): "a93ce644f1a588dc4d68dda5feec44a7",
}
TIMEOUT_S = 10.0
_BLOCK = 1 << 20


def svhn_url(split: str) -> str:
    return SVHN_URL.format(split=split)


def fetch(url: str, dest: str | os.PathLike, *, progress: bool = True, timeout: float = TIMEOUT_S,
          digest: tuple[str, str] | None = None, verify: Callable[[Path], None] | None = None) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` exists, checked before it is saved.

    The check: ``digest`` (``(algorithm, hex)``, e.g. ``("sha256", "...")``), else the md5 of :data:`MD5` for
    the official data files, else ``verify(tmp_path)``, which raises :class:`DataError` for a bad file.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    if digest is None and url in MD5:
        digest = ("md5", MD5[url])
    if digest is None and verify is None:
        raise ValueError(f"fetch({url!r}): nothing to check the download against")
    hint = f"get {url} yourself and put it at {dest}"
    try:
        response = urlopen(url, timeout=timeout)
    except (URLError, OSError, http.client.HTTPException, socket.timeout) as exc:
        raise DataError(f"cannot download {url} ({_reason(exc)}; offline?); {hint}") from None
    from ..progress import bar as progress_bar

    hasher = hashlib.new(digest[0]) if digest else None
    headers = getattr(response, "headers", None)
    length = str(headers.get("Content-Length") or "") if headers is not None else ""
    total = int(length) if length.isdigit() else None
    try:
        with response, atomic_path(dest) as tmp, open(tmp, "wb") as fh, \
                progress_bar(total=total, unit="B", unit_scale=True, desc=dest.name, enabled=progress,
                             leave=False) as bar:
            for block in iter(lambda: response.read(_BLOCK), b""):
                if hasher is not None:
                    hasher.update(block)
                fh.write(block)
                bar.update(len(block))
            if hasher is not None and hasher.hexdigest() != digest[1]:
                raise DataError(f"{url}: downloaded file has {digest[0]} {hasher.hexdigest()}, expected "
                                f"{digest[1]}; nothing was saved to {dest} (retry, or {hint})")
            if hasher is None:
                fh.flush()
                verify(Path(tmp))
    except (URLError, OSError, http.client.HTTPException, socket.timeout) as exc:
        raise DataError(f"download of {url} failed ({_reason(exc)}); nothing was saved; {hint}") from None
    return dest


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split()) or type(exc).__name__


def download_cifar10(batches: str | os.PathLike, files: Sequence[str], *, progress: bool = True) -> Path:
    """Make sure the folder ``batches`` (normally ``<root>/cifar-10-batches-py``) holds the official ``files``
    (the batch files the reader, :mod:`gan_probe.data.cifar10`, names; this module does not import it).

    Missing files are taken from the official archive, which is fetched to ``<parent>/cifar-10-python.tar.gz``
    and kept there (a later call then needs no network). Files already present are left alone.
    """
    batches = Path(batches)
    if all((batches / name).is_file() for name in files):
        return batches
    batches.parent.mkdir(parents=True, exist_ok=True)
    archive = fetch(CIFAR10_URL, batches.parent / CIFAR10_ARCHIVE, progress=progress)
    scratch = Path(tempfile.mkdtemp(prefix=".cifar10-extract.", dir=batches.parent))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers()
                           if m.isfile() and m.name.startswith(CIFAR10_DIR + "/") and ".." not in m.name]
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(scratch, members=members, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    tar.extractall(scratch, members=members)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{archive}: corrupt archive ({_reason(exc)}); delete it and download again") from None
        batches.mkdir(exist_ok=True)
        for name in files:
            if not (batches / name).is_file() and (scratch / CIFAR10_DIR / name).is_file():
                os.replace(scratch / CIFAR10_DIR / name, batches / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return batches


def download_svhn(root: str | os.PathLike, split: str, *, progress: bool = True) -> Path:
    """Make sure ``root/<split>_32x32.mat`` exists (fetching the official file if needed); return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return fetch(svhn_url(split), root / f"{split}_32x32.mat", progress=progress)
