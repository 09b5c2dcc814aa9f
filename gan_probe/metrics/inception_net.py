"""The TensorFlow Inception graph of 2015-12-05 (the Inception Score / FID reference network) in PyTorch.

The parameter names follow the widely distributed state dict ``pt_inception-2015-12-05-6726825d.pth``
(``Conv2d_1a_3x3.conv.weight``, ``Conv2d_1a_3x3.bn.running_mean``, ..., ``Mixed_7c.branch_pool.bn.bias``,
``fc.weight``, ``fc.bias``: 566 entries), so that file loads with ``load_state_dict`` as is.

Where the 2015 TF graph differs from torchvision's Inception-v3 (and this module follows the graph):

* the average pools inside the Mixed blocks exclude the zero padding from the average
  (``count_include_pad=False``);
* the pooling branch of the last block (``Mixed_7c``) is a 3x3 max pool, not an average pool;
* batch norm uses eps = 0.001 and has no learned scale (the file stores ones);
* the classifier has 1008 outputs; the Inception Score uses the logits *without* the bias
  (``pool @ fc.weight.T``), as the reference TF code reads the ``MatMul`` tensor before the bias add;
* input: uint8 RGB images of any size, resized to 299x299 with TF1's bilinear resize
  (:func:`gan_probe.metrics.resize.tf1_bilinear_resize`) and mapped to [-1, 1) by ``(x - 128) / 128``.

>>> net = InceptionV3TF().eval()                      # random weights; load a file with weights.py
>>> out = net(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
>>> tuple(out.pool.shape), tuple(out.logits.shape)
((2, 2048), (2, 1008))
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .resize import tf1_bilinear_resize

NUM_LOGITS = 1008
POOL_DIM = 2048


class InceptionOutput(NamedTuple):
    pool: torch.Tensor     # (N, 2048) global average of Mixed_7c ("pool_3"), the FID features
    logits: torch.Tensor   # (N, 1008) pool @ fc.weight.T (no bias), the Inception Score logits


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU. Parameters: ``conv.*`` and ``bn.*``."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _seq(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def _avg3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that ignores the zero padding (TF ``SAME`` average pooling)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class Mixed35(nn.Module):
    """35x35 block (Mixed_5b/5c/5d): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avg-pool->1x1."""

    def __init__(self, c_in: int, pool_out: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x),
                          _seq(x, self.branch5x5_1, self.branch5x5_2),
                          _seq(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                          self.branch_pool(_avg3(x))], 1)


class Reduce35(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): 3x3/2 | 1x1->3x3->3x3/2 | max-pool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x),
                          _seq(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                          F.max_pool2d(x, 3, stride=2)], 1)


class Mixed17(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 7x7 convolutions (1x7 and 7x1)."""

    def __init__(self, c_in: int, mid: int):
        super().__init__()
        row = {"kernel": (1, 7), "padding": (0, 3)}
        col = {"kernel": (7, 1), "padding": (3, 0)}
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, **row)
        self.branch7x7_3 = ConvBN(mid, 192, **col)
        self.branch7x7dbl_1 = ConvBN(c_in, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, **col)
        self.branch7x7dbl_3 = ConvBN(mid, mid, **row)
        self.branch7x7dbl_4 = ConvBN(mid, mid, **col)
        self.branch7x7dbl_5 = ConvBN(mid, 192, **row)
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x),
                          _seq(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                          _seq(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                               self.branch7x7dbl_4, self.branch7x7dbl_5),
                          self.branch_pool(_avg3(x))], 1)


class Reduce17(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | max-pool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([_seq(x, self.branch3x3_1, self.branch3x3_2),
                          _seq(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3,
                               self.branch7x7x3_4),
                          F.max_pool2d(x, 3, stride=2)], 1)


class Mixed8(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c) with split 1x3 / 3x1 outputs; ``max_pool`` selects the pool branch."""

    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = _seq(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(pooled)], 1)


class InceptionV3TF(nn.Module):
    """Inception-v3 as in the TF 2015-12-05 graph; ``forward`` takes uint8 (N, 3, H, W) images.

    ``input_size`` is the side the images are resized to (299 for the reference network).
    """

    def __init__(self, input_size: int = 299, num_logits: int = NUM_LOGITS):
        super().__init__()
        self.input_size = input_size
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = Mixed35(192, 32)
        self.Mixed_5c = Mixed35(256, 64)
        self.Mixed_5d = Mixed35(288, 64)
        self.Mixed_6a = Reduce35(288)
        self.Mixed_6b = Mixed17(768, 128)
        self.Mixed_6c = Mixed17(768, 160)
        self.Mixed_6d = Mixed17(768, 160)
        self.Mixed_6e = Mixed17(768, 192)
        self.Mixed_7a = Reduce17(768)
        self.Mixed_7b = Mixed8(1280, max_pool=False)
        self.Mixed_7c = Mixed8(2048, max_pool=True)
        self.fc = nn.Linear(POOL_DIM, num_logits)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 (N, 3, 299, 299) in [-1, 1): TF1 bilinear resize, (x - 128) / 128."""
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {images.dtype}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.to(self.fc.weight.dtype)
        x = tf1_bilinear_resize(x, (self.input_size, self.input_size))
        return (x - 128) / 128

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input -> (N, 2048) spatial mean of the last block's output."""
        x = _seq(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _seq(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _seq(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                 self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> InceptionOutput:
        pool = self.pool_features(self.preprocess(images))
        return InceptionOutput(pool, pool @ self.fc.weight.T)
