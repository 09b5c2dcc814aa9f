"""How a primal solve runs: the options a user sets and the plan they resolve to, once, before the Newton loop.

:class:`SolverOptions` holds stopping rules, limits and preferences ("auto" where the machine should decide); it is
validated when it is built. :func:`plan_solve` resolves every "auto" for one design on this machine into a frozen
:class:`SolvePlan` -- the preconditioner, the precision and layout of CG's Hessian-vector products, the CG cap,
when CG works on a copy of the active rows -- reading the machine's facts (available memory, native bfloat16
products, oneDNN packing; :mod:`gan_probe.devices`, :mod:`gan_probe.probe.packed`) in this one place.
:func:`gan_probe.probe.newton.newton_cg` only executes the plan, and its result records it.

What "auto" resolves to on a CPU for designs of at least :data:`LARGE_ELEMENTS` entries: the sketch
preconditioner when its row products fit in half the available memory, with a rank that grows with the design
(:func:`sketch_rank`: 128 up to 2^24 entries, 1,024 from 2^27); CG on a standardised bfloat16 copy of the
rows on processors with bfloat16 instructions when the copy fits there too, in oneDNN's packed layouts where torch
can pack them; at most :data:`LARGE_MAX_CG` CG steps per Newton step on that copy (:data:`MONITORED_MAX_CG` in a
solve a monitor may end early). Everything else: the recycled
Krylov-subspace preconditioner, the data's own precision, :data:`DEFAULT_MAX_CG`.

>>> import torch
>>> from gan_probe.probe.design import dense_design
>>> plan_solve(dense_design(torch.ones(4, 3, dtype=torch.float64)), SolverOptions())  # doctest: +NORMALIZE_WHITESPACE
SolvePlan(preconditioner='subspace', hessian_precision='storage', hessian_layout='', max_cg=250,
          compact_fraction=0.0, subspace_rank=3, sketch_rank=0)
>>> SolverOptions(precondition="jacobi")
Traceback (most recent call last):
...
gan_probe.probe.plan.SolverOptionError: precondition 'jacobi': expected one of auto, sketch, subspace, none
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..devices import available_memory, fast_bfloat16
from ..errors import ConfigError
from .design import Design
from .packed import packing_available

PRECONDITIONERS = ("auto", "sketch", "subspace", "none")
PRECISIONS = ("auto", "storage", "bfloat16")
LAYOUTS = ("auto", "packed", "plain")

#: the smallest design (rows x features) for which the "auto" options use a bfloat16 copy and a sketch. Measured
#: at 3,000 x 3,584 (2^23.4 entries; pooled features of a random paper32 D at half width on real CIFAR-10 images,
#: C = 0.01, one thread): 0.98 s with a rank-128 sketch and CG on the packed bfloat16 copy, 2.0 s with the sketch in
#: float32, 4.7 s with the subspace preconditioner (235 passes), 2.9 s on the kernel route, 61 s for liblinear
LARGE_ELEMENTS = 1 << 23
#: design entries per sketch column when "auto" chooses the rank (rounded to a power of two, from
#: MIN_SKETCH_RANK up to SolverOptions.sketch_rank): a sketch costs about 2.5 products with that many columns, so
#: its rank follows the size of the design (at 3,000 x 3,584 rank 128 took 2.0 s, 256 2.2 s, 512 3.3 s, 1,024 10.7 s
#: in float32)
ENTRIES_PER_SKETCH_COLUMN = 1 << 17
MIN_SKETCH_RANK = 128
#: CG steps per Newton step at most, unless the options say otherwise
DEFAULT_MAX_CG = 250
#: the same on the bfloat16 path. Capping each Newton step's CG lowers the passes needed at large C: on 16,600 x
#: 9,558 real conv features (2 CPU cores), warm-started from the solution for C = 0.01, C = 0.1 took 14 Newton
#: steps and 420 CG passes instead of 14 and 935, ending 4e-6 (relative) above the optimum, and C = 1 took 71
#: steps and 2,130 passes instead of 57 and 6,757; from a cold start at C = 0.01 the cap hardly binds (285
#: passes against 318, the same objective). On 40,000 x 28,672 real features, C = 0.1 warm-started from C = 0.01:
#: 26 steps, 780 passes, 245 s instead of 26 steps, 3,406 passes, 782 s, to a lower objective
LARGE_MAX_CG = 30
#: the same for a solve that a monitor may end early (a fit on the C grid, which stops once its validation
#: predictions settle: :mod:`gan_probe.probe.settle`): cheaper Newton steps let the monitor look more often. On the
#: paper model's 50,000 x 28,672 CIFAR-10 features (2 cores of an Intel Xeon; grid 1e-4, 1e-3, 1e-2, 5,000
#: validation rows) the trailing fits at C = 1e-3 and 1e-2 took 46 and 63 s instead of 57 and 75 s (6 and 9
#: Newton steps instead of 6 and 8), at validation accuracies of 69.58 and 67.04% against 69.58 and 67.12%
MONITORED_MAX_CG = 20
#: with a bfloat16 copy, CG runs on a copy of the rows active for some class when they are at most this share
#: (the copy costs about a third of a pass; each CG step then saves the inactive rows' share of one)
COMPACT_FRACTION = 0.85
#: the same for a packed copy, whose re-packing costs about 60 of its (faster) passes per row: 6.5 s for 23,000 of
#: 50,000 x 28,672 rows on 2 CPU cores, where a pass over all of them takes 0.24 s. With at most LARGE_MAX_CG = 30
#: CG steps a Newton step, a copy of a share f of the rows saves 30 (1 - f) passes and costs 60 f: worth it below
#: a third (at 0.46, with the earlier bound of 0.5, a Newton step took 17 s instead of 11)
PACKED_COMPACT_FRACTION = 0.25


class SolverOptionError(ConfigError, ValueError):
    """A :class:`SolverOptions` value outside its domain."""


@dataclass(frozen=True)
class SolverOptions:
    """Stopping rules, limits and preferences of :func:`gan_probe.probe.newton.newton_cg` (validated here)."""

    tol: float = 1e-6          # stop a class when a Newton step lowers f_k by less than tol * f_k
    grad_tol: float = 1e-6     # ... or when ||g_k|| <= grad_tol * ||g_k|| at the starting point
    cg_tol: float = 0.03       # CG stops at ||r|| <= min(cg_tol, (||g|| / ||g_0||)^cg_power) * ||g||
    #                            (0.03: 458 passes to within 1e-4 of the optimum on 16,600 x 9,558 real conv
    #                            features at C = 0.01, against 692 with 0.1, 1,443 with 0.3)
    cg_power: float = 0.25     # (measured on conv features: 0.25 needs fewer passes than 0.5 or 1)
    max_newton: int = 100
    # conjugate-gradient steps per Newton step at most; None: LARGE_MAX_CG when CG runs on a bfloat16 copy,
    # DEFAULT_MAX_CG otherwise
    max_cg: int | None = None
    # "sketch" (randomized top eigenvectors of the data, see gan_probe.probe.sketch), "subspace" (recycled
    # Krylov subspace), "none"; "auto": see the module docstring
    precondition: str = "auto"
    subspace_rank: int = 256
    sketch_rank: int = 1024
    sketch_power: int = 2           # power iterations of the sketch (each one more read of the data; 2: 21% fewer
    #                                 CG steps than 1 on 16,600 x 9,558 real conv features, 3: 24%)
    # precision of the Hessian-vector products inside CG: "storage" (the data's own, float32 for feature
    # stores), "bfloat16" (a standardised bfloat16 copy of the rows, taken during the first pass) or "auto".
    # The objective and the gradient always use the data's own precision, so the solution is the same; the
    # Newton directions are computed more cheaply.
    hessian_precision: str = "auto"
    # layout of a bfloat16 copy on a CPU: "packed" (oneDNN's blocked layouts, see gan_probe.probe.packed: about
    # twice as fast for CG's products, twice the memory), "plain", or "auto"
    hessian_layout: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (("precondition", PRECONDITIONERS), ("hessian_precision", PRECISIONS),
                              ("hessian_layout", LAYOUTS)):
            if getattr(self, name) not in allowed:
                raise SolverOptionError(f"{name} {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        for name in ("tol", "grad_tol", "cg_tol", "cg_power"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise SolverOptionError(f"{name} {value!r}: expected a positive finite number")
        for name, least in (("max_newton", 1), ("subspace_rank", 0), ("sketch_rank", 1), ("sketch_power", 0)):
            if getattr(self, name) < least:
                raise SolverOptionError(f"{name} {getattr(self, name)}: expected at least {least}")
        if self.max_cg is not None and self.max_cg < 1:
            raise SolverOptionError(f"max_cg must be at least 1, got {self.max_cg}")


@dataclass(frozen=True)
class SolvePlan:
    """What one primal solve does, resolved from :class:`SolverOptions` for its design on this machine."""

    preconditioner: str        # sketch, subspace or none
    hessian_precision: str     # storage or bfloat16: CG's Hessian-vector products
    hessian_layout: str        # packed or plain for a bfloat16 copy; "" without one
    max_cg: int                # CG steps per Newton step at most
    compact_fraction: float    # CG works on a copy of the active rows when they are at most this share (0: never)
    subspace_rank: int         # columns of the recycled Krylov subspace (0 unless that preconditioner)
    sketch_rank: int = 0       # columns of the sketch (0 unless that preconditioner)

    @property
    def low_precision(self) -> bool:
        return self.hessian_precision == "bfloat16"

    @property
    def packed(self) -> bool:
        return self.hessian_layout == "packed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Machine:
    """The facts of the machine a plan depends on (read once per solve by :meth:`probe`; tests pass their own)."""

    available_memory: int | None   # bytes free for new allocations (None: unknown, taken as enough)
    fast_bfloat16: bool            # native bfloat16 matrix products on the device
    packing: bool                  # torch can pack bfloat16 blocks for oneDNN

    @classmethod
    def probe(cls, device: torch.device | str) -> "Machine":
        return cls(available_memory(), fast_bfloat16(device), packing_available())

    def fits_in_half(self, nbytes: float) -> bool:
        return self.available_memory is None or nbytes <= 0.5 * self.available_memory


def _large_on_cpu(design: Design) -> bool:
    # the problem's size over every rank (the memory checks below are per rank: design.n, this rank's rows)
    return design.device.type == "cpu" and design.n_total * design.n_features >= LARGE_ELEMENTS


def sketch_rank(design: Design, opts: SolverOptions) -> int:
    """The sketch's rank under "auto": one column per :data:`ENTRIES_PER_SKETCH_COLUMN` entries of the design
    (over every rank), as a power of two between :data:`MIN_SKETCH_RANK` and ``opts.sketch_rank``; an explicit
    ``precondition="sketch"`` keeps ``opts.sketch_rank``.

    >>> from gan_probe.probe.design import dense_design
    >>> sketch_rank(dense_design(torch.zeros(3000, 3584)), SolverOptions())
    128
    """
    if opts.precondition == "sketch":
        return opts.sketch_rank
    columns = design.n_total * design.n_features / ENTRIES_PER_SKETCH_COLUMN
    scaled = 2 ** round(math.log2(max(columns, 1)))
    return int(min(opts.sketch_rank, max(MIN_SKETCH_RANK, scaled)))


def _preconditioner(design: Design, opts: SolverOptions, machine: Machine) -> str:
    """"auto" picks the sketch on CPUs only (the GPU figures were measured with the subspace preconditioner), when
    its row products (``X~ Q`` in float64 while it is formed, then ``X~ V`` in float32: about 16 bytes per row and
    column) fit."""
    if opts.precondition != "auto":
        return opts.precondition
    sketch_bytes = 16 * design.n * (sketch_rank(design, opts) + 16)
    return "sketch" if _large_on_cpu(design) and machine.fits_in_half(sketch_bytes) else "subspace"


def _holds_copy(design: Design, packed: bool | None = None) -> bool:
    """Whether the design already holds a bfloat16 copy (of that layout): its memory is spent."""
    return (design.shadow is not None and design.shadow_dtype == torch.bfloat16
            and (packed is None or design.shadow_packed == packed))


def _low_precision(design: Design, opts: SolverOptions, machine: Machine) -> bool:
    if opts.hessian_precision != "auto":
        return opts.hessian_precision == "bfloat16"
    if _holds_copy(design) and _large_on_cpu(design) and machine.fast_bfloat16:
        return True
    # the copy (2 bytes an entry) and, at most, CG's copy of the active rows
    copies_bytes = (1 + COMPACT_FRACTION) * 2 * design.n * design.n_features
    return _large_on_cpu(design) and machine.fast_bfloat16 and machine.fits_in_half(copies_bytes)


def _packed(design: Design, opts: SolverOptions, machine: Machine) -> bool:
    if opts.hessian_layout == "plain" or design.device.type != "cpu":
        return False
    if opts.hessian_layout == "packed":
        if not machine.packing:
            raise SolverOptionError("hessian_layout 'packed': this torch build cannot pack bfloat16 blocks (no "
                                    "oneDNN)")
        return True
    if _holds_copy(design, packed=True):
        return True
    # two layouts of 2 bytes an entry, and at most CG's packed copy of the active rows
    copies_bytes = (1 + PACKED_COMPACT_FRACTION) * 4 * design.n * design.n_features
    return machine.packing and machine.fits_in_half(copies_bytes)


def plan_solve(design: Design, options: SolverOptions | None = None, machine: Machine | None = None,
               monitored: bool = False) -> SolvePlan:
    """Resolve ``options`` for ``design`` on ``machine`` (default: this one, :meth:`Machine.probe`; see the
    module docstring); ``monitored``: a monitor may end the solve early (a grid fit, see
    :data:`MONITORED_MAX_CG`)."""
    opts = options or SolverOptions()
    machine = machine or Machine.probe(design.device)
    kind = _preconditioner(design, opts, machine)
    low = _low_precision(design, opts, machine)
    packed = low and _packed(design, opts, machine)
    max_cg = opts.max_cg if opts.max_cg is not None else (
        (MONITORED_MAX_CG if monitored else LARGE_MAX_CG) if low else DEFAULT_MAX_CG)
    rank = min(opts.subspace_rank, design.dim, design.n_total) if kind == "subspace" else 0
    return SolvePlan(preconditioner=kind, hessian_precision="bfloat16" if low else "storage",
                     hessian_layout=("packed" if packed else "plain") if low else "", max_cg=max_cg,
                     compact_fraction=(PACKED_COMPACT_FRACTION if packed else COMPACT_FRACTION) if low else 0.0,
                     subspace_rank=rank, sketch_rank=sketch_rank(design, opts) if kind == "sketch" else 0)
