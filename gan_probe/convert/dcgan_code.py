"""The DCGAN authors' released models (github.com/Newmu/dcgan_code, MIT licence) as gan-probe checkpoints.

The release format: ``EPOCH_discrim_params.jl`` is a joblib pickle listing the discriminator's arrays, and each
array also lies beside it as ``EPOCH_discrim_params.jl_NN.npy`` (NN from 01, in the parameter order of the
authors' model code; ``EPOCH_gen_params.jl_NN.npy`` for the generator). Only the ``.npy`` files are read, with
``allow_pickle=False``: the ``.jl`` pickle is never loaded.

Two models were released; each is recognised by its arrays' shapes (:data:`MODELS`):

- ``imagenet32``: the paper's ImageNet-1k 32x32 model (its CIFAR-10 experiment), epoch 30. D: 3x3 convs
  128(s1)-128(s2)-256(s1)-256(s2)-512(s1)-512(s2), pad 1, batch norm on all but the first, a dense head from
  512x4x4: exactly the ``paper32`` preset's discriminator.
- ``svhn``: the SVHN model, epoch 200. D: 5x5 convs with stride 2 and pad 2, 64-128-256 maps, batch norm on the
  last two, a dense head from 256x4x4: the ``svhn32`` preset's discriminator (7,168 pooled features).

What the conversion changes, and why:

- Theano's ``dnn_conv`` convolves (``conv_mode='conv'``: the kernel is flipped) while torch correlates, so
  every conv kernel is flipped along both spatial axes (:func:`theano_conv_to_torch`).
- The dense head ``wy`` of shape (C*4*4, 1) acts on the last map flattened in (channel, row, column) order,
  which is the order of our head's 4x4 conv weight (1, C, 4, 4): reshaped, not flipped.
- Batch norm has no running statistics in the release (Theano's ``batchnorm`` normalised with batch
  statistics); gan-probe's probe re-estimates them on the training images (``extract --bn recompute``, the
  default), as the authors' own analysis script did. A converted checkpoint refuses ``--bn checkpoint``.
  The authors' epsilon was 1e-8 against torch's 1e-5: both are far below the variances of these layers.
- Inputs are ``x / 127.5 - 1`` in both code bases. The channel order is RGB (the authors' SVHN loader keeps the
  ``.mat`` file's order; the probe accuracies of both orders are compared in ``reports/anchors``).
- The generators are not converted: the authors' G projects z with a dense layer whose batch norm is per unit
  (not per channel) and uses 5x5 / 3x3 transposed convs, an architecture gan-probe's ``Generator`` does not
  build. A converted checkpoint has no generator, and sampling from it says so.

Missing files are never filled in: a partial set (the ImageNet release lacks ``jl_11`` and ``jl_14``, the
weights of conv layers 5 and 6) converts into a checkpoint whose ``missing`` entry names the layers and files;
extraction of the layers before them works, anything that needs them is a one-line error.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, DataError

REPOSITORY = "https://github.com/Newmu/dcgan_code"
#: the commit whose files are fetched by ``--download`` (the last commit of the repository)
COMMIT = "ee12b2d15a3856794b8dae77d1eb263c67c36e47"
RAW_URL = "https://raw.githubusercontent.com/Newmu/dcgan_code/{commit}/{path}"
FILE_PATTERN = re.compile(r"^(\d+)_(discrim|gen)_params\.jl_(\d\d)\.npy$")


@dataclass(frozen=True)
class Param:
    """One released array: its role in the authors' code, its shape, and where it goes in our D."""

    name: str  # the authors' name (w, w2, g2, b2, ..., wy)
    shape: tuple[int, ...]
    target: str  # our state-dict key
    kind: str  # "conv" (flipped), "bn_weight", "bn_bias", "head" (reshaped)
    layer: int  # 0-based conv layer it belongs to (the head: the last layer)


@dataclass(frozen=True)
class ReleasedModel:
    name: str
    preset: str
    epoch: int
    path: str  # folder in the authors' repository
    trained_on: str
    discriminator: tuple[Param, ...]
    sha256: dict[str, str]  # file name -> sha256 where known

    def files(self) -> list[str]:
        return [discrim_file(self.epoch, i) for i in range(1, len(self.discriminator) + 1)]


def discrim_file(epoch: int, index: int) -> str:
    return f"{epoch}_discrim_params.jl_{index:02d}.npy"


def _d_params(widths: list[int], kernel: int) -> tuple[Param, ...]:
    """The authors' D parameter order: w, then (w_i, g_i, b_i) for every batch-normed conv, then wy."""
    params = [Param("w", (widths[0], 3, kernel, kernel), "features.0.0.weight", "conv", 0)]
    for i in range(1, len(widths)):
        n = i + 1
        params += [Param(f"w{n}", (widths[i], widths[i - 1], kernel, kernel), f"features.{i}.0.weight", "conv", i),
                   Param(f"g{n}", (widths[i],), f"features.{i}.1.weight", "bn_weight", i),
                   Param(f"b{n}", (widths[i],), f"features.{i}.1.bias", "bn_bias", i)]
    params.append(Param("wy", (widths[-1] * 16, 1), "head.weight", "head", len(widths) - 1))
    return tuple(params)


MODELS: dict[str, ReleasedModel] = {
    "imagenet32": ReleasedModel(
        "imagenet32", "paper32", 30, "models/imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z",
        "ImageNet-1k 32x32, the authors' release",
        _d_params([128, 128, 256, 256, 512, 512], 3),
        {
            "30_discrim_params.jl_01.npy": "f90d162c427747332e1f84e55179777971cd38faf04012b644040cd8c9dba9ac",
            "30_discrim_params.jl_02.npy": "71a217a8d1456e914eca7a60a8bfe776d0e94a951ff1e903b085d06d7295c839",
            "30_discrim_params.jl_03.npy": "42e586d7689afe6fa246e559007a79d17c74a71ccb00e82bbd1bef92452945df",
            "30_discrim_params.jl_04.npy": "c96bfdaf557584a011522f1a3550ddecc37242254082003fd86e552c810cac02",
            "30_discrim_params.jl_05.npy": "7cd50047eecc15f50c44965aa97774e90be428a33dc7b36277e80998340649f1",
            "30_discrim_params.jl_06.npy": "017620285a9d6d025d2e28a91622e224b7c98213f83f742460d6157a078d0e6a",
            "30_discrim_params.jl_07.npy": "3d738403270b7d27c88eff9a500b2327b63d8faae66a313e3060f2e27d6a9b02",
            "30_discrim_params.jl_08.npy": "829d42e90ddf0884a743c587196ee059407300f78d018da78a12c9ae1fe91d80",
            "30_discrim_params.jl_09.npy": "d59a1cfd4fc2291cd57a3dcd84ba7381050d422f01c5058f7819df3ff5db6d88",
            "30_discrim_params.jl_10.npy": "f8017956ece953a192b1075fd8ebe710771bb071165797f34fc94322e3773d2d",
            "30_discrim_params.jl_12.npy": "ac245a0bfcb6eca75188335f38ce0225ea2110c80dcd67e87b42d1b9c46f9b68",
            "30_discrim_params.jl_13.npy": "937b1e4fea0f4c9316dae1b0e0a8d1475ad67383bd9968252102de87e1c94afe",
            "30_discrim_params.jl_15.npy": "ede3817fc30e91ef2cecb506de021c7aa5331eb48a3b2163b0deb1c33534c40d",
            "30_discrim_params.jl_16.npy": "309501dddf9391a1ac39479dfcb34034cfa59390153890d64a2f8baf5e2be2d9",
            "30_discrim_params.jl_17.npy": "8051786943cc5d2a04bb8301a0ae8cf530076672f90a01b89b48fe6fb329cb37",
        }),
    "svhn": ReleasedModel(
        "svhn", "svhn32", 200, "models/svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb",
        "SVHN train, the authors' release",
        _d_params([64, 128, 256], 5),
        {
            "200_discrim_params.jl_01.npy": "fe9ef3d815b106df988ec6f384a79ae68df27a214c11ada52b94548f4666b15f",
            "200_discrim_params.jl_02.npy": "f62c228d2e9ec48b7a07d191317a5c166129a8e94363c3c546f59509cc29e521",
            "200_discrim_params.jl_03.npy": "b7ea7698a743162669e127a318b36aea2a870673fac7437790c8c1f31b61ba55",
            "200_discrim_params.jl_04.npy": "2c7fce37952dd6d97bc2562dc6a1ae3f49ec7a542b3e857b903c011762b1a3a1",
            "200_discrim_params.jl_05.npy": "fa49601f77caf68f96feaf5b00fbc6911dfaa519b8d977228250d94a85a38def",
            "200_discrim_params.jl_06.npy": "8bd21e1b7680fbae4250857acbc20c55e8811a6376f54a3a7d7d11a7103ad87e",
            "200_discrim_params.jl_07.npy": "54301f539d66a982c7ab3af63ba27c74d80d0754c54689a6999b771e80dc2458",
            "200_discrim_params.jl_08.npy": "f7879fd5d2b11bd8357d49cf2d19e1af1186697b9b3fe22e18cba002de8e1cc8",
        }),
}
CHANNEL_ORDERS = ("rgb", "bgr")


def theano_conv_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """A Theano ``dnn_conv`` kernel (true convolution) as a torch ``conv2d`` weight (cross-correlation).

    >>> theano_conv_to_torch(np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)).flatten().tolist()
    [3.0, 2.0, 1.0, 0.0]
    """
    return torch.from_numpy(np.ascontiguousarray(kernel[..., ::-1, ::-1]))


def read_npy(path: Path) -> np.ndarray:
    """One released array, never unpickled; a file that is not a plain numeric ``.npy`` is a one-line error."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        first = " ".join(str(exc).split())[:120]
        raise DataError(f"{path}: not a readable .npy array ({first})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise DataError(f"{path}: expected a float array, found dtype {getattr(array, 'dtype', type(array))}")
    return array


def scan(directory: str | os.PathLike) -> tuple[int, dict[int, Path]]:
    """The epoch and the discriminator's ``.npy`` files (1-based index -> path) found in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected the authors' model folder with "
                        f"EPOCH_discrim_params.jl_NN.npy files)")
    found: dict[int, dict[int, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = FILE_PATTERN.match(path.name)
        if match and match.group(2) == "discrim":
            found.setdefault(int(match.group(1)), {})[int(match.group(3))] = path
    if not found:
        raise DataError(f"{directory}: no EPOCH_discrim_params.jl_NN.npy files (the authors' release format)")
    if len(found) > 1:
        raise DataError(f"{directory}: discriminator files of several epochs ({', '.join(map(str, sorted(found)))}); "
                        f"keep one epoch's files in the folder")
    epoch = next(iter(found))
    return epoch, found[epoch]


def identify(epoch: int, shapes: dict[int, tuple[int, ...]], directory: Path) -> ReleasedModel:
    """The released model whose parameter shapes match ``shapes`` (1-based index -> shape)."""
    best: tuple[int, ReleasedModel, str] | None = None
    for model in MODELS.values():
        mismatch = ""
        for index, shape in sorted(shapes.items()):
            if index > len(model.discriminator):
                mismatch = f"{discrim_file(epoch, index)} is beyond its {len(model.discriminator)} arrays"
                break
            param = model.discriminator[index - 1]
            if tuple(shape) != param.shape:
                mismatch = (f"{discrim_file(epoch, index)} has shape {tuple(shape)}, its {param.name} has "
                            f"{param.shape}")
                break
        if not mismatch:
            return model
        matched = sum(1 for i, s in shapes.items()
                      if i <= len(model.discriminator) and tuple(s) == model.discriminator[i - 1].shape)
        if best is None or matched > best[0]:
            best = (matched, model, mismatch)
    assert best is not None
    raise DataError(f"{directory}: not a released dcgan_code discriminator: closest is {best[1].name} "
                    f"({', '.join(MODELS)} are known), but {best[2]}")


def _missing_note(model: ReleasedModel, missing: list[int], directory: Path) -> dict[str, Any]:
    params = [model.discriminator[i - 1] for i in missing]
    layers = sorted({p.layer for p in params if p.kind != "head"})
    head_missing = any(p.kind == "head" for p in params)
    return {"layers": layers, "head": head_missing or bool(layers),
            "files": [discrim_file(model.epoch, i) for i in missing],
            "params": [p.name for p in params],
            "keys": [p.target for p in params],
            "note": f"not in {directory} when it was converted; never filled in"}


def convert(directory: str | os.PathLike, channel_order: str = "rgb") -> dict[str, Any]:
    """Read a released model folder and return a gan-probe checkpoint state (see :func:`save_converted`)."""
    from ..models import Discriminator, preset_config
    from ..provenance import provenance, sha256_file

    if channel_order not in CHANNEL_ORDERS:
        raise DataError(f"--channel-order {channel_order!r}: expected one of {', '.join(CHANNEL_ORDERS)}")
    directory = Path(directory)
    epoch, files = scan(directory)
    arrays = {index: read_npy(path) for index, path in files.items()}
    model = identify(epoch, {i: a.shape for i, a in arrays.items()}, directory)
    if epoch != model.epoch:
        raise DataError(f"{directory}: files of epoch {epoch}, but the released {model.name} model is epoch "
                        f"{model.epoch}")
    config = preset_config(model.preset)
    weights: dict[str, torch.Tensor] = {}
    for index, array in arrays.items():
        param = model.discriminator[index - 1]
        if param.kind == "conv":
            tensor = theano_conv_to_torch(array)
            if index == 1 and channel_order == "bgr":  # the model reads BGR: permute its input channels
                tensor = tensor.flip(1).contiguous()
        elif param.kind == "head":
            tensor = torch.from_numpy(array.reshape(1, -1, 4, 4).copy())
        else:
            tensor = torch.from_numpy(array.copy())
        weights[param.target] = tensor.float()
    # batch-norm buffers: none were released; the defaults (mean 0, var 1) are placeholders that extract's
    # re-estimation replaces, and --bn checkpoint is refused
    reference = Discriminator(config).state_dict()
    for key, value in reference.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            weights[key] = value.clone()
    missing = [i for i in range(1, len(model.discriminator) + 1) if i not in arrays]
    converted = {
        "from": "dcgan-code", "model": model.name, "repository": REPOSITORY, "commit": COMMIT,
        "path": model.path, "epoch": epoch, "trained_on": model.trained_on,
        "sha256": {path.name: sha256_file(path) for path in files.values()},
        "kernel_flip": "Theano dnn_conv kernels flipped on both spatial axes for torch's cross-correlation",
        "channel_order": channel_order,
        "input_range": "x / 127.5 - 1",
        "batchnorm": "no running statistics released: re-estimate them (extract --bn recompute)",
        "generator": "not converted: the authors' generator (dense projection with per-unit batch norm) is not "
                     "an architecture gan-probe's Generator builds",
    }
    state = {
        "generator": None, "discriminator": weights, "step": None, "epoch": epoch,
        "config": {"model": config.to_dict(), "train": None},
        "data": {"dataset": model.trained_on},
        "converted": converted,
        "provenance": provenance(),
    }
    if missing:
        state["missing"] = _missing_note(model, missing, directory)
    return state


def save_converted(directory: str | os.PathLike, out: str | os.PathLike, channel_order: str = "rgb",
                   download: bool = False, progress: bool = False) -> tuple[Path, dict[str, Any]]:
    """Convert the released model in ``directory`` (fetching its files first with ``download``) into the
    checkpoint ``out``; returns the path and the state written."""
    from ..models.checkpoint import save_checkpoint

    out = Path(out)
    if out.is_dir():
        raise CheckpointError(f"--out {out}: is a directory; expected a checkpoint file name such as svhn.pt")
    if download:
        download_release(directory, progress=progress)
    state = convert(directory, channel_order)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, state)
    return out, state


def _model_for_download(directory: Path) -> ReleasedModel:
    """Which release to fetch into ``directory``: the one named by the folder (as in the authors' repository)
    or by the files already there."""
    for model in MODELS.values():
        if directory.name in (model.name, Path(model.path).name, f"dcgan-code-{model.name}"):
            return model
    if directory.is_dir():
        try:
            epoch, files = scan(directory)
            return identify(epoch, {i: np.load(p, mmap_mode="r", allow_pickle=False).shape
                                    for i, p in files.items()}, directory)
        except (DataError, ValueError, OSError):
            pass
    names = ", ".join(f"{m.name} ({Path(m.path).name})" for m in MODELS.values())
    raise DataError(f"{directory}: cannot tell which release to download; name the folder after one of: {names}")


def download_release(directory: str | os.PathLike, progress: bool = False) -> Path:
    """Fetch the discriminator files of a release into ``directory`` (only those not already there).

    A file whose sha256 we know is checked against it; the others by their ``.npy`` header (shape and dtype).
    Offline, the error names the files and where to put them.
    """
    from ..data.download import fetch

    directory = Path(directory)
    model = _model_for_download(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wanted = [(i, name) for i, name in enumerate(model.files(), start=1) if not (directory / name).is_file()]
    for index, name in wanted:
        url = RAW_URL.format(commit=COMMIT, path=f"{model.path}/{name}")
        expected = model.sha256.get(name)
        shape = model.discriminator[index - 1].shape
        try:
            fetch(url, directory / name, progress=progress, digest=("sha256", expected) if expected else None,
                  verify=None if expected else (lambda tmp, shape=shape, url=url: check_npy_header(tmp, shape, url)))
        except DataError as exc:
            todo = [n for _, n in wanted if not (directory / n).is_file()]
            raise DataError(f"{exc}; still missing in {directory}: {', '.join(todo)} (from "
                            f"{RAW_URL.format(commit=COMMIT, path=model.path)}/)") from None
    return directory


def check_npy_header(path: str | os.PathLike, shape: tuple[int, ...], name: str | None = None) -> None:
    """Raise :class:`DataError` unless ``path`` is a float32 ``.npy`` file of ``shape`` (header only); ``name``:
    what the message calls the file (e.g. the URL it came from)."""
    name = name or str(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            found, fortran, dtype = read(fh)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{name}: not a .npy file ({' '.join(str(exc).split())[:100]})") from None
    if tuple(found) != tuple(shape) or dtype != np.float32 or fortran:
        raise DataError(f"{name}: .npy header says {dtype} {tuple(found)}, expected float32 {tuple(shape)}")
