"""Provenance records attached to every result file: versions, device, git commit, file checksums."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

_CHUNK = 1 << 22


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_array(array: np.ndarray, chunk_rows: int = 4096) -> str:
    """Hex sha256 of an array's dtype, shape and bytes (memory-mapped arrays are hashed in chunks)."""
    digest = hashlib.sha256()
    digest.update(str(array.dtype).encode())
    digest.update(str(tuple(array.shape)).encode())
    if array.ndim == 0 or len(array) == 0:
        digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()
    for start in range(0, len(array), chunk_rows):
        digest.update(np.ascontiguousarray(array[start:start + chunk_rows]).tobytes())
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of a JSON-serialisable object in canonical form (sorted keys)."""
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def git_commit() -> str | None:
    """The git commit of the gan-probe source tree, if it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5)
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Versions of Python and the numerical libraries that affect results."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("gan-probe", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pandas"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what the platform says; "" if unknown).
    Together with the CPU capability torch dispatches to (e.g. AVX512) it decides the last bits of CPU results."""
    from .devices import cpuinfo_field

    return cpuinfo_field("model name") or platform.processor()


def device_info(device: str | None = None) -> dict[str, Any]:
    """Describe the compute device (CPU model and thread count, or the CUDA device name)."""
    import torch

    from .devices import cpu_vendor

    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_model": cpu_model(), "cpu_vendor": cpu_vendor(),
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    dev = str(device) if device is not None else "cpu"
    info["device"] = dev
    if dev.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(dev).index or 0
        info["gpu"] = torch.cuda.get_device_name(idx)
        info["cuda"] = torch.version.cuda
    return info


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as the user would retype it: ``gan-probe ARGS`` for the console script and
    ``python -m gan_probe ARGS`` for the module (no install paths), else the arguments as given."""
    import shlex

    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    program, args = Path(argv[0]), " ".join(shlex.quote(a) for a in argv[1:])
    if program.name == "gan-probe":
        head = "gan-probe"
    elif program.name == "__main__.py" and program.parent.name == "gan_probe":
        head = "python -m gan_probe"
    else:
        return " ".join(argv)
    return f"{head} {args}".rstrip()


def provenance(device: str | None = None, seeds: dict[str, int] | None = None,
               files: Iterable[str | os.PathLike] = (), **extra: Any) -> dict[str, Any]:
    """A provenance block for a result file."""
    record: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "gan_probe_commit": git_commit(),
        "versions": versions(),
        "device": device_info(device),
        "command": command_line(),
    }
    if seeds:
        record["seeds"] = dict(seeds)
    checksums = {str(f): sha256_file(f) for f in files}
    if checksums:
        record["sha256"] = checksums
    record.update(extra)
    return record
