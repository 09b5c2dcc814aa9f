"""Device selection and what the machine offers (native bfloat16 products, available memory): the facts the
probe's solver plan (:mod:`gan_probe.probe.plan`) reads once per solve."""
from __future__ import annotations

import functools

import torch

from .errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def fast_bfloat16(device: torch.device | str) -> bool:
    """Whether bfloat16 matrix products are native (not emulated) on ``device``: CUDA devices that support
    bfloat16, and CPUs with the AVX-512 BF16 or AMX-BF16 instructions (read from ``/proc/cpuinfo``; ``False``
    where it cannot be read). A fixed property of the machine, so the solver's choice never depends on load."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable`` of ``/proc/meminfo``; ``None`` where it
    cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_vendor() -> str:
    """The processor's vendor as ``/proc/cpuinfo`` names it (``GenuineIntel``, ``AuthenticAMD``, ...; "" where it
    cannot be read): a fixed property of the machine, like :func:`fast_bfloat16`."""
    return cpuinfo_field("vendor_id")


def _cpu_flags() -> frozenset[str]:
    return frozenset(cpuinfo_field("flags").split())


@functools.lru_cache(maxsize=None)
def cpuinfo_field(name: str) -> str:
    """The value of the first ``name`` line of ``/proc/cpuinfo`` ("" where there is none or it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
