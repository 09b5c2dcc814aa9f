"""Matrix products into preallocated buffers, with the BLAS picked per device.

On CPU the products go through NumPy's BLAS (OpenBLAS in the NumPy wheels), which ran these tall-and-thin
float32 shapes (thousands x 110 @ 110 x K) 1.4-2x faster than torch's CPU matmul on the AMD EPYC machine the
benchmark was taken on; on CUDA they use ``torch.mm``. Both write into ``out`` without allocating.
``backend="torch"`` forces torch everywhere (see ``benchmarks/bench_kmeans.py`` for the comparison).
"""
from __future__ import annotations

import numpy as np
import torch

BACKENDS = ("auto", "numpy", "torch")


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"gemm backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "numpy" if device.type == "cpu" else "torch"
    if backend == "numpy" and device.type != "cpu":
        raise ValueError("the numpy gemm backend needs CPU tensors")
    return backend


def mm_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, backend: str) -> torch.Tensor:
    """``out = a @ b`` for contiguous float32 tensors; returns ``out``.

    >>> a, b = torch.ones(2, 3), torch.ones(3, 4)
    >>> mm_into(a, b, torch.empty(2, 4), "numpy").tolist()[0]
    [3.0, 3.0, 3.0, 3.0]
    """
    if backend == "numpy":
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    return torch.mm(a, b, out=out)
