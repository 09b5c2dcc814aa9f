"""The design matrix of the probe as a chunked linear operator: ``X~ = [(X[rows] - mean) / scale, s]``.

The solver touches the data only through the passes below, each of which reads every row once, chunk by chunk:

* :meth:`Design.matmul` -- ``X~ W`` (margins);
* :meth:`Design.fused` -- per chunk ``Z_c = X~_c W``, coefficients ``R_c = fn(Z_c)``, and ``X~_c^T R_c``
  accumulated -- one read of the data gives the loss, the gradient and the margins (or a Hessian-vector product);
* :meth:`Design.rmatmul` -- ``X~^T R``.

No standardised copy of a large matrix is made in the storage precision. Rows that fit a cache budget are
standardised once and kept (on the GPU when there is one); larger matrices are streamed raw from their
(memory-mapped) file and the standardisation is folded into the products: ``X~ w = X (w / scale) - mean . (w /
scale)`` and ``X~^T r = (X^T r - mean * sum(r)) / scale``, with the corrections in float64. On request
(:meth:`Design.request_shadow`) the first pass also keeps a standardised bfloat16 copy -- half the float32 size,
or on a CPU the float32 size in oneDNN's two packed layouts (:class:`PackedDesign`) -- for the solver's
approximate products.

The appended constant column ``s`` (``intercept_scaling``, 1 by default) makes the last row of ``W`` the bias,
penalised like any weight -- exactly liblinear's treatment of the intercept. Products run in the storage
precision (float32 for feature stores) and every reduction across chunks, the bias column and all results are
float64. ``passes`` counts full reads of the data.

Under torchrun a design holds one rank's share of the rows (``n`` of ``n_total``) and its ``reducer``
(:class:`~gan_probe.probe.rows.RowReducer`) sums every product ``X~^T R`` over the ranks, in the same all-reduce as
whatever else the pass accumulated (``reduce_with``); the margins ``X~ W`` stay with the rank that owns the rows.

>>> import numpy as np, torch
>>> from gan_probe.probe.standardize import fit_standardizer
>>> x = np.arange(12, dtype=np.float32).reshape(4, 3)
>>> d = standardized_design(x, fit_standardizer(x))
>>> [round(v, 4) for v in d.matmul(torch.ones(4, 1, dtype=torch.float64)).flatten().tolist()]  # row sum + bias
[-3.0249, -0.3416, 2.3416, 5.0249]
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterator

import numpy as np
import torch

from .. import linalg
from .packed import PackedBlock, PackedRowsBuilder, PackedWeights, weight_packing_available
from .rows import LOCAL, RowReducer
from .standardize import Standardizer

#: default bytes per streamed chunk (large enough for efficient skinny matrix products on a CPU)
STREAM_CHUNK_BYTES = 64 << 20
#: rows per chunk of a low-precision copy (see :meth:`Design.request_shadow`)
SHADOW_CHUNK_ROWS = 2048
#: a streamed chunk of increasing rows is read as the span of the source from its first row to its last when it
#: holds at least this share of that span's rows (see :class:`_RowReader`)
SPAN_DENSITY = 0.5
#: products ``X~ W`` of float32 rows on a CPU with at most this many columns use weights packed for oneDNN
#: (:class:`~gan_probe.probe.packed.PackedWeights`)
PACKED_WEIGHT_COLUMNS = 64

CoefFn = Callable[[int, int, torch.Tensor], "torch.Tensor | None"]
#: what a pass reads: ``(start, end, block, take)`` -- the design's rows ``start:end`` are ``block[take]``, or
#: ``block`` itself where ``take`` is None (see :meth:`_RowReader.spans`)
Span = tuple[int, int, torch.Tensor, "torch.Tensor | None"]


class Design:
    """A row-chunked matrix with an optional constant column; see the module docstring.

    Build one with :func:`standardized_design` (a NumPy / memory-mapped feature matrix) or
    :func:`dense_design` (an in-memory tensor, e.g. the kernel factor of :mod:`gan_probe.probe.kernel`).
    """

    #: the precision in which a pass sums its chunks' products ``X~_c^T R_c`` (its results are float64 either way)
    accumulate = torch.float64

    def __init__(self, chunks: Callable[[], Iterator[tuple[int, int, torch.Tensor]]], n: int, n_features: int,
                 device: torch.device, intercept_scaling: float | None = 1.0,
                 resident: list[torch.Tensor] | None = None,
                 fold: tuple[torch.Tensor, torch.Tensor] | None = None, reducer: RowReducer | None = None,
                 n_total: int | None = None, transient: bool = False,
                 spans: Callable[[], Iterator[Span]] | None = None):
        self._chunks = chunks
        # the passes' reads: chunks, or (streamed rows) spans of the source that hold a chunk's rows among others
        self._spans = spans
        # transient: a chunk from ``chunks`` is only valid until the next one is requested (a reused buffer)
        self.transient = transient
        # this rank's rows are n of n_total; the reducer sums row reductions over the ranks (identity: one process)
        self.reducer = reducer or LOCAL
        self.n_total = int(n if n_total is None else n_total)
        # fold = (mean, 1/scale) in float64: chunks are raw and the products absorb the standardisation
        self.fold = fold
        self.n = int(n)
        self.n_features = int(n_features)
        self.device = torch.device(device)
        self.intercept_scaling = None if intercept_scaling is None else float(intercept_scaling)
        self.resident = resident
        self.passes = 0
        self.row_sq: torch.Tensor | None = None  # ||x~_i||^2, filled by the first fused pass
        self._fold_weights: tuple[torch.Tensor, torch.Tensor] | None = None
        self._standardise_buffer: torch.Tensor | None = None
        self.shadow_dtype: torch.dtype | None = None
        self.shadow_packed = False
        self.shadow: "Design | None" = None    # a low-precision standardised copy, see :meth:`request_shadow`

    def request_shadow(self, dtype: torch.dtype = torch.bfloat16, packed: bool = False) -> None:
        """Keep a standardised copy of the rows in ``dtype`` (e.g. bfloat16: half the memory of float32 and,
        on processors with bfloat16 dot-product instructions, passes about 3-4 times faster), taken during the
        first pass that computes the row norms (or by :meth:`ensure_shadow`). Available as :attr:`shadow`, a
        resident :class:`Design` with the same rows, columns and constant column, whose passes are counted
        separately. Meant for approximate products (Hessian-vector products of Newton-CG), never for the
        objective or the gradient.

        ``packed`` (bfloat16 on a CPU, see :mod:`gan_probe.probe.packed`) keeps the copy in oneDNN's packed
        layouts instead: twice the memory, about twice as fast for products with few columns.
        """
        if self.shadow is not None and (self.shadow_dtype != dtype or self.shadow_packed != packed):
            self.shadow = None
        if packed and (dtype != torch.bfloat16 or self.device.type != "cpu"):
            raise ValueError("packed copies are bfloat16 copies on a CPU")
        self.shadow_dtype = dtype
        self.shadow_packed = bool(packed)

    def ensure_shadow(self) -> "Design":
        """The low-precision copy requested by :meth:`request_shadow`, reading the data once if not yet taken."""
        if self.shadow_dtype is None:
            raise ValueError("no shadow precision requested (call request_shadow first)")
        if self.shadow is None:
            # a pass without products takes the copy (and the row norms, if not yet known) like any first pass
            self.fused(torch.zeros(self.dim, 0, dtype=torch.float64, device=self.device), None)
        return self.shadow

    def adopt_shadow(self, parts: list["Design"]) -> None:
        """Take the low-precision copies of ``parts`` -- designs over consecutive groups of this design's rows, in
        order, each holding its copy (and the rows' norms) -- as this design's copy, without reading the data."""
        if sum(p.n for p in parts) != self.n or any(p.shadow is None for p in parts):
            raise ValueError("the parts must hold copies of all this design's rows, in order")
        dtype, packed = parts[0].shadow_dtype, parts[0].shadow_packed
        if any(p.shadow_dtype != dtype or p.shadow_packed != packed for p in parts):
            raise ValueError("the parts' copies differ in precision or layout")
        row_sq = torch.cat([p.row_sq for p in parts])
        if packed:
            blocks, offset = [], 0
            for p in parts:
                blocks += [(start + offset, end + offset, block) for start, end, block in p.shadow.blocks]
                offset += p.n
            shadow: Design = PackedDesign(blocks, self.n, self.n_features, self.intercept_scaling, row_sq)
        else:
            shadow = dense_design(torch.cat([p.shadow.resident[0] for p in parts]), self.intercept_scaling,
                                  SHADOW_CHUNK_ROWS)
        self.row_sq = row_sq
        self.shadow_dtype, self.shadow_packed = dtype, packed
        self._set_shadow(shadow)

    def subset(self, rows: torch.Tensor) -> "Design":
        """A resident design over a copy of ``rows`` (sorted indices) of this one, which must hold all its rows in
        one resident tensor (a low-precision copy does)."""
        if self.resident is None or len(self.resident) != 1 or self.resident[0].shape[0] != self.n:
            raise ValueError("subset needs a design whose rows are one resident tensor")
        taken = self.resident[0].index_select(0, rows.to(self.device))
        return self._inherit(dense_design(taken, self.intercept_scaling, SHADOW_CHUNK_ROWS))

    def _inherit(self, other: "Design") -> "Design":
        """``other`` (a copy of some of these rows) reducing over the same ranks."""
        other.reducer = self.reducer
        return other

    def _shadow_capture(self) -> "_ShadowCapture":
        return _ShadowCapture(self.n, self.n_features, self.shadow_dtype, self.device, self.shadow_packed)

    def _set_shadow(self, shadow: "Design") -> None:
        self.shadow = self._inherit(shadow)
        self.shadow.n_total = self.n_total
        self._standardise_buffer = None

    @property
    def dim(self) -> int:
        """Number of weights per class (features, plus one for the bias column)."""
        return self.n_features + (self.intercept_scaling is not None)

    def chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield ``(start, end, block)`` with the standardised rows ``start:end`` (without the constant column);
        each block is the caller's to keep."""
        if self.fold is None:
            if self.transient:
                return ((s, e, b.clone()) for s, e, b in self._chunks())
            return self._chunks()
        mean, inv = self.fold
        return ((s, e, ((b.to(torch.float64) - mean) * inv).to(b.dtype)) for s, e, b in self._chunks())

    def dense(self) -> torch.Tensor:
        """All rows as one tensor (small designs only: kernel factors, tests)."""
        return torch.cat([block for _, _, block in self.chunks()])

    def _read(self) -> Iterator[Span]:
        """A pass's reads (raw rows where the design is folded), see :data:`Span`."""
        if self._spans is not None:
            return self._spans()
        return ((s, e, b, None) for s, e, b in self._chunks())

    # -- passes ---------------------------------------------------------------------------------------------
    def fused(self, W: torch.Tensor, coef_fn: CoefFn | None, reduce_with: tuple[torch.Tensor, ...] = ()):
        """One read of the data: returns ``(Z, G)`` with ``Z = X~ W`` and ``G = X~^T R``, ``R`` stacked from
        ``coef_fn(start, end, Z[start:end])`` (float64 ``(rows, K)``; ``None`` skips the chunk's product).

        ``reduce_with``: tensors ``coef_fn`` accumulates over rows, summed over the ranks (in place) together with
        ``G``. Without ``coef_fn`` nothing is reduced (``Z`` belongs to this rank's rows).

        Where ``X~^T R`` would go through NumPy's BLAS (:meth:`rmatmul`) and the pass takes nothing else (the row
        norms and any copy already taken), it reads the data twice instead, ``Z`` first and then ``G`` with
        ``coef_fn`` called once on all rows: two reads with the faster kernels beat one with torch's (45,000 x
        28,672 memory-mapped float32 rows, 10 columns, 2 CPU cores: 0.85 s against 1.25 s; resident 20,000 x
        9,558 rows: 0.13 s against 0.18-0.24 s). ``passes`` then counts two.
        """
        K = W.shape[1]
        if (coef_fn is not None and self.row_sq is not None and (self.shadow_dtype is None or self.shadow is not None)
                and K <= PACKED_WEIGHT_COLUMNS and self._numpy_backward(K)):
            return self._fused_in_two_reads(W, coef_fn, reduce_with)
        W = W.to(self.device, torch.float64)
        Wx, wb = self._split(W)
        if self.fold is not None:
            # X~ w = X (w / scale) - mean . (w / scale): standardisation folded into the weights
            mean, inv = self.fold
            Wx = Wx * inv[:, None]
            shift = -(mean @ Wx)
            wb = shift if wb is None else wb + shift
        Z = torch.empty(self.n, K, dtype=torch.float64, device=self.device)
        GT = torch.zeros(K, self.n_features, dtype=self.accumulate, device=self.device)
        rsum = torch.zeros(K, dtype=torch.float64, device=self.device)
        row_sq = (torch.empty(self.n, dtype=torch.float64, device=self.device) if self.row_sq is None
                  else None)
        capture = self._shadow_capture() if self.shadow_dtype is not None and self.shadow is None else None
        Wc = None
        for start, end, block, take in self._read():
            if Wc is None or Wc.dtype != block.dtype:
                Wc = Wx.to(block.dtype)
                WcT = self._forward_weights(Wc.T.contiguous(), block.shape[0])
            Zc = self._forward(block, WcT)
            if take is not None:
                Zc = Zc[take]
            if wb is not None:
                Zc += wb
            Z[start:end] = Zc
            if row_sq is not None or capture is not None:
                standardised = self._standardised(block if take is None else block[take])
                if row_sq is not None:
                    row_sq[start:end] = torch.linalg.vector_norm(standardised, dim=1).to(torch.float64) ** 2
                if capture is not None:
                    capture.add(start, end, standardised)
            if coef_fn is None:
                continue
            Rc = coef_fn(start, end, Zc)
            if Rc is None:
                continue
            GT += self._backward(block, _spread(Rc.T.to(block.dtype), take, block.shape[0]))
            rsum += Rc.sum(0)
        self.passes += 1
        if row_sq is not None:
            self.row_sq = row_sq + (self.intercept_scaling or 0.0) ** 2
            self._standardise_buffer = None
        if capture is not None:
            self._set_shadow(capture.design(self.intercept_scaling, self.row_sq))
        GT = GT.to(torch.float64)
        if coef_fn is not None:
            self.reducer.sum(GT, rsum, *reduce_with)
        GT = self._unfold(GT, rsum)
        return Z, self._join(GT.T, rsum)

    def _fused_in_two_reads(self, W: torch.Tensor, coef_fn: CoefFn, reduce_with: tuple[torch.Tensor, ...]):
        Z = self.matmul(W)
        R = coef_fn(0, self.n, Z)
        if R is None:
            R = torch.zeros_like(Z)
        return Z, self.rmatmul(R, reduce_with)

    def matmul(self, W: torch.Tensor) -> torch.Tensor:
        """``X~ W`` for a ``(dim, K)`` weight matrix; float64 ``(n, K)``."""
        return self.fused(W, None)[0]

    def rmatmul(self, R: torch.Tensor, reduce_with: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """``X~^T R`` for an ``(n, K)`` coefficient matrix; float64 ``(dim, K)``. ``reduce_with``: other row sums
        to add up over the ranks in the same all-reduce (as :meth:`fused`'s).

        On a CPU the chunks' products go through NumPy's BLAS where :func:`gan_probe.linalg.use_numpy_flat` says
        so: for these wide, flat products (10 x rows @ rows x 28,672 in float32) OpenBLAS ran a pass over 50,000
        rows in 0.60 s where torch took 1.18 s on 2 cores of an AMD EPYC (on an Intel Xeon torch was the faster,
        and keeps them). A pass with nothing else in it keeps the two libraries' thread pools from taking turns
        chunk by chunk; small products (below ``linalg.SMALL_WORK`` multiply-adds in all) stay with torch, for
        which switching pools would cost more than they gain.
        """
        R = R.to(self.device, torch.float64)
        K = R.shape[1]
        if self._numpy_backward(K):
            GT = torch.from_numpy(self._rmatmul_numpy(R))
        else:
            GT = torch.zeros(K, self.n_features, dtype=self.accumulate, device=self.device)
            for start, end, block, take in self._read():
                GT += self._backward(block, _spread(R[start:end].T.to(block.dtype), take, block.shape[0]))
            GT = GT.to(torch.float64)
        self.passes += 1
        rsum = R.sum(0)
        self.reducer.sum(GT, rsum, *reduce_with)
        return self._join(self._unfold(GT, rsum).T, rsum)

    def _numpy_backward(self, columns: int) -> bool:
        # the resident rows' dtype decides too: a plain bfloat16 copy keeps torch's products
        return (self.device.type == "cpu" and type(self)._backward is Design._backward
                and linalg.use_numpy_flat(*(self.resident or ()), work=self.n * self.n_features * columns))

    def _rmatmul_numpy(self, R: torch.Tensor) -> np.ndarray:
        GT = np.zeros((R.shape[1], self.n_features))
        RT = None
        for start, end, block, take in self._read():
            rows = block.numpy()
            if RT is None or RT.dtype != rows.dtype:
                RT = np.ascontiguousarray(R.T.numpy(), dtype=rows.dtype)
            RTc = RT[:, start:end]
            if take is not None:
                RTc = _spread(torch.from_numpy(RTc), take, rows.shape[0]).numpy()
            GT += RTc @ rows
        return GT

    # -- the two products, per chunk ------------------------------------------------------------------------
    def _forward_weights(self, WT: torch.Tensor, rows: int) -> "torch.Tensor | PackedWeights":
        """What :meth:`_forward` multiplies a pass's blocks by: ``WT`` itself, or packed once for oneDNN
        (float32 on a CPU, 1 to ``PACKED_WEIGHT_COLUMNS`` columns)."""
        if (WT.dtype == torch.float32 and WT.device.type == "cpu" and 0 < WT.shape[0] <= PACKED_WEIGHT_COLUMNS
                and weight_packing_available()):
            return PackedWeights(WT, rows)
        return WT

    def _forward(self, block: torch.Tensor, WT: "torch.Tensor | PackedWeights") -> torch.Tensor:
        """``block @ WT^T`` in float64 (``WT``: ``(K, features)`` in the block's dtype, or packed)."""
        if isinstance(WT, PackedWeights):
            return WT.forward(block).to(torch.float64)
        return (WT @ block.T).T.to(torch.float64)  # this orientation is markedly faster on CPUs

    def _backward(self, block: torch.Tensor, RT: torch.Tensor) -> torch.Tensor:
        """``RT @ block`` in float64 (``RT``: ``(K, rows)`` in the block's dtype)."""
        return (RT.contiguous() @ block).to(torch.float64)

    # -- helpers --------------------------------------------------------------------------------------------
    def _standardised(self, block: torch.Tensor) -> torch.Tensor:
        """A chunk's standardised rows in the storage precision (resident chunks already are).

        Folded (raw) chunks are standardised in the storage precision, as resident designs are (a float64 copy
        of every chunk would cost more than the pass itself), into a reused buffer: valid until the next call.
        """
        if self.fold is not None:
            if self._fold_weights is None:
                mean, inv = self.fold
                self._fold_weights = ((-mean * inv).to(block.dtype), inv.to(block.dtype))
            shift, scale = self._fold_weights
            # into a reused buffer: a fresh chunk-sized allocation per chunk costs more than the arithmetic
            if self._standardise_buffer is None or self._standardise_buffer.shape[0] < block.shape[0]:
                self._standardise_buffer = torch.empty_like(block)
            block = torch.addcmul(shift, block, scale, out=self._standardise_buffer[:block.shape[0]])
        return block

    def _split(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if W.shape[0] != self.dim:
            raise ValueError(f"weights have {W.shape[0]} rows, the design has {self.dim} columns")
        if self.intercept_scaling is None:
            return W, None
        return W[:-1], W[-1] * self.intercept_scaling

    def _unfold(self, GT: torch.Tensor, rsum: torch.Tensor) -> torch.Tensor:
        """``X~^T R`` from the raw ``X^T R``: ``(X^T R - mean sum(R)) / scale`` (rows of ``GT`` are classes)."""
        if self.fold is None:
            return GT
        mean, inv = self.fold
        return (GT - rsum[:, None] * mean) * inv

    def _join(self, G: torch.Tensor, gb: torch.Tensor | None) -> torch.Tensor:
        if self.intercept_scaling is None:
            return G.contiguous()
        return torch.cat([G, (gb * self.intercept_scaling)[None]], 0)


def _spread(RT: torch.Tensor, take: torch.Tensor | None, rows: int) -> torch.Tensor:
    """``RT`` (``(K, chunk rows)``) as coefficients of a span's ``rows`` rows: zero where the span holds rows
    of no chunk (see :data:`Span`)."""
    if take is None:
        return RT
    full = torch.zeros(RT.shape[0], rows, dtype=RT.dtype, device=RT.device)
    full[:, take] = RT
    return full


def _as_tensor(block: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only memory maps: we never write through these views
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(block))


def _shared_tensor(x: np.ndarray) -> torch.Tensor:
    """``x`` as a tensor sharing its memory (strided as it is; read-only memory maps included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(x)


def standardized_design(x: np.ndarray, standardizer: Standardizer | None, rows: np.ndarray | None = None,
                        intercept_scaling: float | None = 1.0, device: str | torch.device = "cpu",
                        chunk_rows: int | None = None, cache_bytes: int | None = None,
                        reducer: RowReducer | None = None) -> Design:
    """A :class:`Design` over ``x[rows]`` (float32, possibly memory-mapped) standardised by ``standardizer``.

    With a ``reducer`` of several ranks, ``rows`` are this rank's share and the design's row reductions are summed
    over the ranks (see :mod:`gan_probe.probe.rows`).

    When the standardised rows take at most ``cache_bytes`` (default: 1 GiB on a CPU, 60% of the free memory
    of a GPU) they are computed once and kept on ``device``; otherwise every pass streams the rows from ``x``
    (a GPU then receives one chunk at a time).
    """
    device = torch.device(device)
    dim = x.shape[1]
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
    dtype = torch.float32 if x.dtype != np.float64 else torch.float64
    itemsize = 4 if dtype == torch.float32 else 8
    step = chunk_rows or max(1, STREAM_CHUNK_BYTES // max(1, dim * itemsize))
    reader = _RowReader(x, rows, dtype, device, step)
    n = reader.n
    if standardizer is not None:
        mean = torch.as_tensor(standardizer.mean, dtype=torch.float64, device=device)
        inv = torch.as_tensor(1.0 / standardizer.scale, dtype=torch.float64, device=device)
        shift, scale = (-mean * inv).to(dtype), inv.to(dtype)
    else:
        mean = inv = shift = scale = None

    n_total = (reducer or LOCAL).count(n)
    if cache_bytes is None:
        cache_bytes = _default_cache_bytes(device)
    if n * dim * itemsize <= cache_bytes:
        resident = [(s, e, b.clone() if scale is None else torch.addcmul(shift, b, scale))
                    for s, e, b in reader.chunks()]
        return Design(lambda: iter(resident), n, dim, device, intercept_scaling,
                      resident=[b for _, _, b in resident], reducer=reducer, n_total=n_total)
    # streamed: raw chunks, standardisation folded into the products (no standardised copy, no extra sweep)
    return Design(reader.chunks, n, dim, device, intercept_scaling, fold=None if mean is None else (mean, inv),
                  reducer=reducer, n_total=n_total, transient=True,
                  spans=reader.spans if device.type == "cpu" else None)


class _RowReader:
    """The rows ``x[rows]`` chunk by chunk, read with as few copies as the rows allow.

    A chunk of consecutive rows is a view of ``x`` (of its memory map: no copy at all); other chunks are gathered
    by ``torch.index_select`` into one buffer per pass, on the pass's threads. A chunk is therefore valid until
    the next one is requested. Measured on 45,000 of 50,000 rows x 28,672 float32 features memory-mapped from
    the page cache (2 CPU cores), a pass's reads: NumPy's fancy indexing into fresh arrays 0.5-0.9 s, the gather
    into one buffer 0.2 s, views of consecutive rows nothing (the products themselves take about 0.6 s).

    The passes of a streamed design on a CPU read :meth:`spans` instead: where a chunk's rows are increasing and
    fill at least :data:`SPAN_DENSITY` of the source rows from its first to its last (a training split minus a
    validation split), the products run on that span itself, a view, and keep the chunk's rows of the result
    (``Z``) or give the other rows zero coefficients (``X^T R``). Copying the rows costs more than multiplying
    the few others: on 36,000 of 40,000 rows x 28,672 memory-mapped float32 features (2 cores of an Intel Xeon),
    ``X^T R`` with 10 columns through NumPy's BLAS took 1.4-1.6 s gathered (the gather alone 0.31 s; torch's
    threads and OpenBLAS's take turns) and 0.70 s on the spans.
    """

    def __init__(self, x: np.ndarray, rows: np.ndarray | None, dtype: torch.dtype, device: torch.device,
                 step: int):
        self.x, self.rows, self.dtype, self.device, self.step = x, rows, dtype, device, step
        self.np_dtype = np.float32 if dtype == torch.float32 else np.float64
        self._source: torch.Tensor | None = None
        # views and the gather take row numbers as they are; negative ones (from the end) go through NumPy
        self._plain_rows = rows is None or len(rows) == 0 or int(np.min(rows)) >= 0

    @property
    def n(self) -> int:
        return len(self.rows) if self.rows is not None else self.x.shape[0]

    def _view(self, start: int, end: int) -> np.ndarray | None:
        """``x[rows[start:end]]`` as a view when those rows are consecutive, else None."""
        if self.rows is None:
            return self.x[start:end]
        if not self._plain_rows:
            return None
        r = self.rows[start:end]
        first = int(r[0])
        if int(r[-1]) - first == len(r) - 1 and bool(np.all(np.diff(r) == 1)):
            return self.x[first:first + len(r)]
        return None

    def _gatherable(self) -> bool:
        return (self._plain_rows and isinstance(self.x, np.ndarray) and self.x.dtype == self.np_dtype
                and self.x.ndim == 2 and all(stride >= 0 for stride in self.x.strides))

    def _bounds(self) -> Iterator[tuple[int, int]]:
        """Each chunk's first and past-the-last position in ``rows``."""
        for start in range(0, self.n, self.step):
            yield start, min(self.n, start + self.step)

    def chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        buffer: list[torch.Tensor] = []
        for start, end in self._bounds():
            yield start, end, self._chunk(start, end, buffer)

    def spans(self) -> Iterator[Span]:
        """The chunks as :data:`Span` s: a chunk whose rows are increasing and fill at least
        :data:`SPAN_DENSITY` of the source rows from its first to its last is that span of ``x`` (a view) with the
        rows' positions in it; every other chunk is :meth:`chunks`' block as it is."""
        buffer: list[torch.Tensor] = []
        for start, end in self._bounds():
            take = self._span(start, end)
            if take is None:
                yield start, end, self._chunk(start, end, buffer), None
                continue
            first = int(self.rows[start])
            span = self.x[first:first + int(take[-1]) + 1]
            yield start, end, _as_tensor(np.asarray(span, dtype=self.np_dtype)).to(self.device), take

    def _span(self, start: int, end: int) -> torch.Tensor | None:
        """The positions of ``rows[start:end]`` in the span of ``x`` from the first to the last of them, when they
        are increasing (and not consecutive) and fill at least :data:`SPAN_DENSITY` of it, in a source the spans
        are views of (what a gather takes); else None."""
        if self.rows is None or not self._gatherable():
            return None
        r = self.rows[start:end]
        first, width = int(r[0]), int(r[-1]) - int(r[0]) + 1
        if width == len(r) or len(r) < SPAN_DENSITY * width or not bool(np.all(np.diff(r) > 0)):
            return None
        return torch.from_numpy(r - first)

    def _chunk(self, start: int, end: int, buffer: list[torch.Tensor]) -> torch.Tensor:
        """The rows ``rows[start:end]``: a view where they are consecutive, else gathered into ``buffer``'s one
        tensor (made on first use)."""
        view = self._view(start, end)
        if view is not None:
            block = _as_tensor(np.asarray(view, dtype=self.np_dtype))
        elif self._gatherable():
            if self._source is None:
                self._source = _shared_tensor(self.x)
            if not buffer:
                buffer.append(torch.empty(min(self.step, self.n), self.x.shape[1], dtype=self.dtype))
            index = torch.from_numpy(np.ascontiguousarray(self.rows[start:end]))
            block = torch.index_select(self._source, 0, index, out=buffer[0][:end - start])
        else:
            block = _as_tensor(np.asarray(self.x[self.rows[start:end]], dtype=self.np_dtype))
        return block.to(self.device, non_blocking=False)


def dense_design(matrix: torch.Tensor, intercept_scaling: float | None = None,
                 chunk_rows: int | None = None) -> Design:
    """A :class:`Design` over an in-memory tensor (no standardisation)."""
    n, dim = matrix.shape
    itemsize = matrix.element_size()
    step = chunk_rows or max(1, STREAM_CHUNK_BYTES // max(1, dim * itemsize))
    blocks = [(s, min(n, s + step), matrix[s:s + step]) for s in range(0, n, step)]
    return Design(lambda: iter(blocks), n, dim, matrix.device, intercept_scaling, resident=[matrix])


class PackedDesign(Design):
    """A resident bfloat16 :class:`Design` whose row blocks are :class:`~gan_probe.probe.packed.PackedBlock` s
    (oneDNN's packed layouts, CPU only): the same passes, about twice as fast with few columns. Build one with
    :func:`packed_design`."""

    def __init__(self, blocks: list[tuple[int, int, PackedBlock]], n: int, n_features: int,
                 intercept_scaling: float | None, row_sq: torch.Tensor | None):
        super().__init__(lambda: iter(blocks), n, n_features, "cpu", intercept_scaling)
        self.blocks = blocks
        self.row_sq = row_sq

    def fused(self, W: torch.Tensor, coef_fn: CoefFn | None):
        if self.row_sq is None:
            raise ValueError("a packed design needs the row norms of its source")
        return super().fused(W, coef_fn)

    def chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        return ((s, e, b.dense()) for s, e, b in self.blocks)

    def subset(self, rows: torch.Tensor) -> "PackedDesign":
        """A packed design over ``rows`` (sorted indices) of this one."""
        rows = rows.cpu()
        if len(rows) > 1 and bool((rows[1:] <= rows[:-1]).any()):
            raise ValueError("the rows of a subset must be sorted and distinct")
        builder = PackedRowsBuilder(self.n_features, SHADOW_CHUNK_ROWS)
        for start, end, block in self.blocks:
            lo, hi = torch.searchsorted(rows, torch.tensor([start, end])).tolist()
            if hi > lo:
                builder.add(block.dense().index_select(0, rows[lo:hi] - start))
        return self._inherit(PackedDesign(builder.finish(), len(rows), self.n_features, self.intercept_scaling,
                                          self.row_sq.index_select(0, rows)))

    def _forward(self, block: PackedBlock, WT: torch.Tensor) -> torch.Tensor:
        return block.forward(WT).T.to(torch.float64)

    #: the blocks' products come rounded to bfloat16: summing them in float32 adds nothing to that rounding and
    #: spares a float64 copy of every block's product (for the sketch's 1,040 columns, 238 MB per 2,048 rows: a
    #: pass over 20,480 x 28,672 rows took 2.3 s instead of 2.6-2.9 s on 2 cores of an Intel Xeon; with 10
    #: columns no difference)
    accumulate = torch.float32

    def _backward(self, block: PackedBlock, RT: torch.Tensor) -> torch.Tensor:
        return block.backward(RT)     # bfloat16, added into the float32 sum


def packed_design(matrix: torch.Tensor, intercept_scaling: float | None = None,
                  block_rows: int = SHADOW_CHUNK_ROWS) -> PackedDesign:
    """A :class:`PackedDesign` over an in-memory bfloat16 CPU tensor (no standardisation)."""
    builder = PackedRowsBuilder(matrix.shape[1], block_rows)
    builder.add(matrix)
    norms = torch.linalg.vector_norm(matrix, dim=1, dtype=torch.float32).to(torch.float64)
    row_sq = norms ** 2 + (intercept_scaling or 0.0) ** 2
    return PackedDesign(builder.finish(), matrix.shape[0], matrix.shape[1], intercept_scaling, row_sq)


class _ShadowCapture:
    """Receives a design's standardised rows chunk by chunk during one pass and becomes its low-precision copy:
    one plain tensor, or packed blocks built as the rows arrive."""

    def __init__(self, n: int, n_features: int, dtype: torch.dtype, device: torch.device, packed: bool):
        self._packed = PackedRowsBuilder(n_features, SHADOW_CHUNK_ROWS) if packed else None
        self._rows = None if packed else torch.empty(n, n_features, dtype=dtype, device=device)
        self._n, self._n_features = n, n_features

    def add(self, start: int, end: int, rows: torch.Tensor) -> None:
        if self._packed is not None:
            self._packed.add(rows)
        else:
            self._rows[start:end] = rows

    def design(self, intercept_scaling: float | None, row_sq: torch.Tensor | None) -> Design:
        if self._packed is not None:
            return PackedDesign(self._packed.finish(), self._n, self._n_features, intercept_scaling, row_sq)
        # one tensor, cut into chunks of SHADOW_CHUNK_ROWS rows: fewer, larger products than the source's chunks
        # (the per-chunk work around each product is a tenth of a bfloat16 pass at 585-row chunks)
        return dense_design(self._rows, intercept_scaling, SHADOW_CHUNK_ROWS)


def _default_cache_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.6 * free)
    return 1 << 30
