"""Any torch model's layers as probe features: named submodules' outputs, max-pooled to the grid like D's.

A forward hook on each named submodule (``module.get_submodule(name)``, dotted names such as ``layer2.1``)
keeps its output; a 4-D output ``(B, C, H, W)`` is max-pooled to ``grid x grid`` and flattened in (channel, row,
column) order exactly as :func:`gan_probe.features.pooling.pooled_features` pools a discriminator's layers, a 2-D
output ``(B, C)`` is taken as it is. The forward pass stops at the deepest requested layer. Images go in as the
model expects them: uint8 -> [0, 1] -> ``(x - mean) / std`` per channel (:class:`InputNormalization`; the DCGAN
convention ``x / 127.5 - 1`` is mean = std = 0.5), recorded with the features.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1))
>>> tap = LayerTap(net, ["0", "2"])
>>> tap.dims((3, 16, 16), grid=4)
[64, 32]
>>> tap.features(torch.zeros(5, 3, 16, 16), grid=4).shape
torch.Size([5, 96])
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError

TORCHVISION_PREFIX = "torchvision:"


@dataclass(frozen=True)
class InputNormalization:
    """How uint8 images become a model's input: ``(x / 255 - mean) / std`` per channel."""

    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    source: str = "DCGAN convention: x / 127.5 - 1"

    def apply(self, batch_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = batch_uint8_nhwc.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def to_dict(self) -> dict:
        return asdict(self)


class _Stop(Exception):
    """Raised by the deepest hook: the rest of the forward pass is not needed."""


class LayerTap:
    """Forward hooks on named submodules of ``module``; :meth:`features` runs the model and pools their outputs."""

    def __init__(self, module: nn.Module, layers: Sequence[str], flag: str = "--layers"):
        self.module = module
        names = dict(module.named_modules())
        unknown = [name for name in layers if name not in names or name == ""]
        if unknown or not layers:
            top = [n for n, _ in module.named_children()]
            nested = next((f"{n}.{c}" for n, m in module.named_children() for c, _ in m.named_children()), None)
            raise ConfigError(f"{flag} {','.join(layers)}: unknown layer name(s) {', '.join(unknown) or '(none)'}; "
                              f"valid: {', '.join(top) or '(none)'}"
                              + (f", or a dotted submodule such as {nested}" if nested else ""))
        self.layers = list(dict.fromkeys(layers))

    def _run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        handles = []

        def hook(name):
            def keep(_module, _inputs, output):
                outputs[name] = output[0] if isinstance(output, (tuple, list)) else output
                if len(outputs) == len(self.layers):
                    raise _Stop
            return keep

        for name in self.layers:
            handles.append(self.module.get_submodule(name).register_forward_hook(hook(name)))
        try:
            self.module(x)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        missing = [n for n in self.layers if n not in outputs]
        if missing:
            raise ConfigError(f"--layers: {', '.join(missing)} produced no output in the forward pass (a submodule "
                              f"the model's forward does not call)")
        return outputs

    @torch.no_grad()
    def features(self, x: torch.Tensor, grid: int = 4) -> torch.Tensor:
        """Pooled, flattened, concatenated outputs of the layers (in the order given) for a model input ``x``."""
        outputs = self._run(x)
        pieces = []
        for name in self.layers:
            out = outputs[name].float()
            if out.dim() == 4:
                pieces.append(F.adaptive_max_pool2d(out, grid).flatten(1))
            elif out.dim() == 2:
                pieces.append(out)
            else:
                raise ConfigError(f"--layers {name}: output of shape {tuple(out.shape)}; expected (B, C, H, W) or "
                                  f"(B, C)")
        return torch.cat(pieces, dim=1)

    @torch.no_grad()
    def dims(self, input_shape: tuple[int, int, int], grid: int = 4) -> list[int]:
        """Feature dimensions per layer for inputs of ``input_shape`` (C, H, W), from one forward pass."""
        device = next(iter(self.module.parameters()), torch.zeros(0)).device
        was_training = self.module.training
        self.module.eval()
        try:
            outputs = self._run(torch.zeros(2, *input_shape, device=device))
        finally:
            self.module.train(was_training)
        return [int(outputs[n][0].numel() if outputs[n].dim() == 2 else outputs[n].shape[1] * grid * grid)
                for n in self.layers]


def torchvision_model(spec: str, weights: str | None = None, seed: int = 0
                      ) -> tuple[nn.Module, InputNormalization, dict]:
    """``torchvision:NAME`` -> (model in eval mode, its input normalisation, a description for provenance).

    Without ``weights`` the model has random weights (seeded), so no download happens; with ``weights`` (a state
    dict file, e.g. torchvision's own ``resnet18-f37072fd.pth``) they are loaded with ``weights_only=True``. The
    normalisation is the one torchvision's pretrained weights for the architecture expect (ImageNet mean/std).
    """
    import torchvision

    name = spec[len(TORCHVISION_PREFIX):] if spec.startswith(TORCHVISION_PREFIX) else spec
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ConfigError(f"--model {spec}: unknown torchvision model; "
                          f"expected one of {', '.join(available[:12])}, ...")
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None)
    description = {"source": "torchvision", "model": name, "weights": None, "init_seed": seed}
    if weights is not None:
        from ..provenance import sha256_file

        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError) as exc:
            raise CheckpointError(f"--weights {weights}: not a readable state dict ({str(exc).splitlines()[0][:100]})"
                                  ) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(f"--weights {weights}: does not match torchvision's {name} "
                                  f"({str(exc).splitlines()[0][:120]})") from None
        description.update(weights=str(weights), weights_sha256=sha256_file(weights), init_seed=None)
    normalization = InputNormalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                       "torchvision's ImageNet weights: mean (0.485, 0.456, 0.406), std (0.229, "
                                       "0.224, 0.225) on [0, 1] pixels")
    try:
        transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        normalization = InputNormalization(tuple(transforms.mean), tuple(transforms.std),
                                           f"torchvision's {name} weights' transforms")
    except (ValueError, AttributeError, KeyError):
        pass
    return model.eval(), normalization, description
