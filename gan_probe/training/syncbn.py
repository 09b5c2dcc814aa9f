"""Batch norm over the global batch of all ranks (``--sync-bn``).

On CUDA this is PyTorch's :class:`torch.nn.SyncBatchNorm`. That class refuses CPU tensors, so for gloo/CPU
runs :class:`GlobalBatchNorm2d` computes the same statistics with ``torch.distributed.all_reduce`` wrapped as
a differentiable sum (its backward all-reduces the gradients, which is the cross-rank term of batch norm's
gradient; the same construction as ``torch.distributed.nn.functional.all_reduce``, deprecated in recent
releases). Outside a multi-rank process group, and in eval mode, both behave exactly like
:class:`torch.nn.BatchNorm2d`; their ``state_dict`` keys are the same, so checkpoints do not depend on the
option.

>>> from torch import nn
>>> net = convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.device("cpu"))
>>> type(net[1]).__name__
'GlobalBatchNorm2d'
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the union of every rank's batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        dist.all_reduce(count)
        total = float(count)
        mean = _all_reduce_sum(x.sum(dims)) / total
        centred = x - mean.view(1, -1, 1, 1)
        var = _all_reduce_sum((centred * centred).sum(dims)) / total  # biased: used for normalising
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (total / max(total - 1, 1.0))
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward pass sums the incoming gradients over ranks (the adjoint of the forward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum) of ``x`` over the default process group."""
    return _AllReduceSum.apply(x)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d of ``module`` by a global-batch one (SyncBatchNorm on CUDA), keeping state."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm2d):
        out = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats, device=module.running_mean.device
                                if module.running_mean is not None else None)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out
