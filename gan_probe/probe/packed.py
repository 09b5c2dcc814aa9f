"""Row blocks pre-packed for oneDNN's matrix products: the CPU layout that makes Newton-CG's skinny products fast.

Each conjugate-gradient step of :mod:`gan_probe.probe.newton` reads the bfloat16 copy of the design twice with
about ten columns, ``X~ p`` and ``X~^T r``. torch's general bfloat16 matrix product runs these shapes far below
the memory's speed; oneDNN's inner-product kernel, given the matrix once reordered into its own blocked layout,
runs them about twice as fast (``benchmarks/bench_products.py``: 2,048-row blocks of 28,672 features, 2 cores of
an AMD EPYC with AVX-512 BF16, one step over 20,480 rows with 10 columns in 0.099 s against 0.210 s, with 20
columns 0.149 against 0.260 s; the sketch's 1,040 columns gain only 8%, being compute-bound either way).

A :class:`PackedBlock` keeps one block of rows in two packed layouts -- as the weight of ``X~ p`` (rows out)
and, transposed, as the weight of ``X~^T r`` (features out) -- so it takes twice the memory of a plain copy.
Packing a block costs about as much as twenty-four products with it. Products take and return bfloat16, with
float32 accumulation, exactly like the plain bfloat16 products they replace.
"""
from __future__ import annotations

import functools

import torch

#: the number of columns the layouts are tuned for (one per class of a 10-class problem, rounded up)
EXPECTED_COLUMNS = 16


@functools.lru_cache(maxsize=None)
def packing_available() -> bool:
    """Whether this torch build packs and multiplies bfloat16 blocks with oneDNN (checked once on a small
    block against a plain product; ``False`` on builds without oneDNN or without these operators)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(0)
        block = torch.randn(40, 24, generator=gen).to(torch.bfloat16)
        packed = PackedBlock(block)
        p = torch.randn(3, 24, generator=gen).to(torch.bfloat16)
        r = torch.randn(3, 40, generator=gen).to(torch.bfloat16)
        ok_forward = torch.allclose(packed.forward(p).float(), p.float() @ block.float().T, rtol=2e-2, atol=2e-2)
        ok_backward = torch.allclose(packed.backward(r).float(), r.float() @ block.float(), rtol=2e-2, atol=2e-2)
        return bool(ok_forward and ok_backward and torch.equal(packed.dense(), block))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


@functools.lru_cache(maxsize=None)
def weight_packing_available() -> bool:
    """Whether this torch build runs float32 products ``block @ W^T`` through oneDNN's inner product with ``W``
    packed (checked once on a small product against a plain one)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(0)
        block, WT = torch.randn(40, 24, generator=gen), torch.randn(3, 24, generator=gen)
        out = PackedWeights(WT, 40).forward(block)
        return bool(torch.allclose(out, block @ WT.T, rtol=1e-5, atol=1e-5))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


class PackedWeights:
    """A few columns of weights (``WT``: ``(columns, features)``, float32, CPU) packed once for oneDNN's inner
    product, which then multiplies plain float32 row blocks by them: ``X w`` over a float32 design streamed from
    its file (the margins and the exact ``X~ P`` of the Newton solver) runs 2.3 times as fast as torch's general
    matrix product (``benchmarks/bench_products.py``; 50,000 x 28,672 rows with 10 columns in 0.33 s against
    0.76 s on 2 cores of an AMD EPYC). Packing costs about one product with a block; it is done once a pass."""

    __slots__ = ("_packed",)

    def __init__(self, WT: torch.Tensor, rows_hint: int):
        if WT.dtype != torch.float32 or WT.device.type != "cpu" or WT.dim() != 2:
            raise ValueError("packed weights are 2-D float32 CPU tensors")
        self._packed = torch.ops.mkldnn._reorder_linear_weight(WT.contiguous(), int(rows_hint))

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        """``block @ WT^T`` for a float32 ``block`` of shape ``(rows, features)``: ``(rows, columns)``, float32."""
        return torch.ops.mkldnn._linear_pointwise(block.contiguous(), self._packed, None, "none", [], "")


class PackedBlock:
    """One block of rows (``(rows, features)``, bfloat16, CPU) in the two packed layouts."""

    __slots__ = ("_rows", "_cols", "shape", "dtype")

    def __init__(self, block: torch.Tensor):
        if block.dtype != torch.bfloat16 or block.device.type != "cpu" or block.dim() != 2:
            raise ValueError("packed blocks are 2-D bfloat16 CPU tensors")
        self.shape = tuple(block.shape)
        self.dtype = block.dtype
        reorder = torch.ops.mkldnn._reorder_linear_weight
        self._rows = reorder(block.contiguous(), EXPECTED_COLUMNS)
        self._cols = reorder(block.T.contiguous(), EXPECTED_COLUMNS)

    def forward(self, WT: torch.Tensor) -> torch.Tensor:
        """``(block @ WT^T)^T`` for ``WT`` of shape ``(columns, features)``: ``(columns, rows)``, bfloat16."""
        return torch.ops.mkldnn._linear_pointwise(WT.contiguous(), self._rows, None, "none", [], "")

    def backward(self, RT: torch.Tensor) -> torch.Tensor:
        """``RT @ block`` for ``RT`` of shape ``(columns, rows)``: ``(columns, features)``, bfloat16."""
        return torch.ops.mkldnn._linear_pointwise(RT.contiguous(), self._cols, None, "none", [], "")

    def dense(self) -> torch.Tensor:
        """The block as a plain tensor."""
        return self._rows.to_dense()


class PackedRowsBuilder:
    """Collects rows in order (any number at a time) into :class:`PackedBlock` s of ``block_rows`` rows,
    packing each block as soon as it is full, so a copy is never held in plain and packed form at once."""

    def __init__(self, n_features: int, block_rows: int):
        self.n_features = int(n_features)
        self.block_rows = int(block_rows)
        self.blocks: list[tuple[int, int, PackedBlock]] = []
        self._staging = torch.empty(self.block_rows, self.n_features, dtype=torch.bfloat16)
        self._filled = 0
        self._start = 0

    def add(self, rows: torch.Tensor) -> None:
        """Append ``rows`` (any float dtype; copied)."""
        taken = 0
        while taken < rows.shape[0]:
            count = min(self.block_rows - self._filled, rows.shape[0] - taken)
            self._staging[self._filled:self._filled + count] = rows[taken:taken + count]
            self._filled += count
            taken += count
            if self._filled == self.block_rows:
                self._flush()

    def finish(self) -> list[tuple[int, int, PackedBlock]]:
        """The ``(start, end, block)`` triples of all rows added."""
        if self._filled:
            self._flush()
        self._staging = torch.empty(0, self.n_features, dtype=torch.bfloat16)
        return self.blocks

    def _flush(self) -> None:
        end = self._start + self._filled
        self.blocks.append((self._start, end, PackedBlock(self._staging[:self._filled])))
        self._start, self._filled = end, 0
