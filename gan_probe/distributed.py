"""Multi-process runs on PyTorch's own engine: ``torch.distributed`` process groups started by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every worker;
:func:`init_distributed` reads them (``init_method="env://"``) and starts the default process group with NCCL
when the ranks run on CUDA devices and gloo on CPUs. Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) it does
nothing and returns a single-process context, so the same code path serves ``gan-probe train`` and
``torchrun --nproc_per_node 8 -m gan_probe train``.

The helpers keep every rank in step when something goes wrong: :func:`agree` runs a function on every rank and,
if any rank raised, raises the same one-line error on all of them (instead of leaving the others blocked in
the next collective); :func:`main_first` lets rank 0 fill a cache before the other ranks read it.

>>> ctx = init_distributed("cpu")      # no WORLD_SIZE in the environment: a no-op
>>> ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled
(0, 1, True, False)
>>> shard_batches(10, 3, rank=1, world_size=2)   # batches 1 and 3 of [0:3] [3:6] [6:9] [9:10]
[3, 9]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from .errors import ConfigError, GanProbeError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its node), its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        """True when a process group with more than one rank is running."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes files, logs and shows progress bars."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend, "rank_device": str(self.device)}


def _env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r}: expected an integer (set by torchrun)") from None


def rank_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """The device of one rank: ``auto``/``cuda`` -> ``cuda:LOCAL_RANK`` when CUDA is available.

    With more than one rank an explicit ``cuda:N`` would put every rank on the same GPU, so it is refused.
    """
    from .devices import resolve_device

    if world_size > 1 and name.startswith("cuda:"):
        raise ConfigError(f"--device {name}: under torchrun every rank takes cuda:LOCAL_RANK; pass --device cuda "
                          f"(or auto), and choose GPUs with CUDA_VISIBLE_DEVICES")
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


def current() -> DistContext:
    """The context of an already started process group (single-process context when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    backend = dist.get_backend()
    local = _env_int("LOCAL_RANK", 0) or 0
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), local, backend, device)


def init_distributed(device: str = "auto") -> DistContext:
    """Start the default process group from torchrun's environment variables; a no-op without them.

    The backend follows the device: NCCL for CUDA ranks (each on ``cuda:LOCAL_RANK``), gloo for CPU ranks.
    Calling it again returns the running group's context.
    """
    world = _env_int("WORLD_SIZE")
    if world is None or world <= 1:
        return DistContext(device=rank_device(device))
    if dist.is_available() and dist.is_initialized():
        ctx = current()
        if device != "auto" and rank_device(device, ctx.local_rank, ctx.world_size).type != ctx.device.type:
            raise ConfigError(f"--device {device}: the process group already runs on {ctx.device.type} "
                              f"({ctx.backend})")
        return ctx
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE is set but this PyTorch build has no torch.distributed support")
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(f"WORLD_SIZE={world} but {name} is not set; launch with torchrun (it sets both)")
    dev = rank_device(device, local, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        backend = "nccl"
        dist.init_process_group(backend, init_method="env://", device_id=dev)
    else:
        backend = "gloo"
        dist.init_process_group(backend, init_method="env://")
    return DistContext(rank, world, local, backend, dev)


def shutdown(barrier: bool = True) -> None:
    """Wait for every rank (unless ``barrier=False``), then destroy the default process group, if any."""
    if dist.is_available() and dist.is_initialized():
        try:
            if barrier:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def run_command(device: str, body: Callable[[DistContext], int]) -> int:
    """Run a command's body on every rank of a torchrun launch (or once, without torchrun) and tear down.

    Only rank 0 reports a :class:`GanProbeError` (the CLI prints it once); the other ranks return 2 quietly.
    A process group started here is destroyed at the end; one the caller started is left running.
    """
    started = not (dist.is_available() and dist.is_initialized())
    ctx = init_distributed(device)

    def finish(ok: bool) -> None:
        if started:
            shutdown(barrier=ok)
        elif ok and ctx.enabled:
            dist.barrier()

    try:
        code = body(ctx)
    except GanProbeError:
        finish(False)
        if ctx.is_main:
            raise
        return 2
    except BaseException:
        finish(False)
        raise
    finish(True)
    return code


def agree(fn: Callable[[], T], ctx: DistContext | None = None) -> T:
    """Run ``fn`` on every rank; if it raised anywhere, raise one error on all ranks.

    A rank whose own call failed re-raises its exception; the others raise :class:`GanProbeError` carrying the
    lowest failing rank's one-line message (prefixed ``rank N:`` when N > 0). Single-process: just ``fn()``.
    """
    ctx = ctx or current()
    if not ctx.enabled:
        return fn()
    error: BaseException | None = None
    result: Any = None
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - shared with the other ranks, then re-raised
        error = exc
    messages: list[Any] = [None] * ctx.world_size
    message = None if error is None else (" ".join(str(error).split()) or type(error).__name__)
    dist.all_gather_object(messages, message)
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if error is not None:
        raise error
    if failed:
        r, m = failed[0]
        raise GanProbeError(m if r == 0 else f"rank {r}: {m}")
    return result


def main_first(fn: Callable[[], T], ctx: DistContext | None = None) -> T:
    """Run ``fn`` on rank 0, then (if it succeeded) on the other ranks: rank 0 fills caches the others reuse."""
    ctx = ctx or current()
    if not ctx.enabled:
        return fn()
    first = agree(lambda: fn() if ctx.is_main else None, ctx)
    rest = agree(lambda: None if ctx.is_main else fn(), ctx)
    return first if ctx.is_main else rest


def same_on_every_rank(value: Any, what: str, ctx: DistContext | None = None) -> None:
    """Raise one :class:`ConfigError` on every rank unless all ranks hold an equal ``value`` (a small picklable
    description, e.g. of the input files each rank opened); ``what`` names it in the message."""
    ctx = ctx or current()
    if not ctx.enabled:
        return
    values: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    for rank, other in enumerate(values):
        if other != values[0]:
            if isinstance(other, dict) and isinstance(values[0], dict):
                differ = "; ".join(f"{k}: {other.get(k)} against {values[0].get(k)}"
                                   for k in [*values[0], *(k for k in other if k not in values[0])]
                                   if other.get(k) != values[0].get(k))
            else:
                differ = f"{other} against {values[0]}"
            raise ConfigError(f"rank {rank} sees a different {what} than rank 0 ({differ}); every rank must read "
                              f"the same one")


def broadcast_object(obj: Any, ctx: DistContext | None = None, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (pickled; for small values such as paths and configs)."""
    ctx = ctx or current()
    if not ctx.enabled:
        return obj
    box = [obj if ctx.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce(tensor: torch.Tensor, op: str = "sum", ctx: DistContext | None = None) -> torch.Tensor:
    """In-place all-reduce (``sum``, ``mean``, ``max`` or ``min``) across ranks; a no-op in one process."""
    ctx = ctx or current()
    if not ctx.enabled:
        return tensor
    ops = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    dist.all_reduce(tensor, op=ops[op])
    if op == "mean":
        tensor.div_(ctx.world_size)
    return tensor


def shard_batches(n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Start rows of the batches ``[s, s + batch_size)`` of ``range(n)`` that ``rank`` processes.

    Batches are dealt round-robin (batch i goes to rank ``i % world_size``), so every rank sees exactly the
    batches a single process would, and gathering one batch per rank in rank order restores the original
    row order.
    """
    return list(range(0, n, batch_size))[rank::world_size]


def gather_batches(block: torch.Tensor, rows: int, batch_size: int, ctx: DistContext | None = None,
                   ) -> list[torch.Tensor] | None:
    """Collect one (``rows`` <= ``batch_size``, D) block from every rank on rank 0, in rank order.

    Blocks are padded to ``batch_size`` rows for the collective (a rank without a batch in this round passes
    ``rows=0``); rank 0 gets the unpadded blocks, the other ranks ``None``.
    """
    ctx = ctx or current()
    if not ctx.enabled:
        return [block[:rows]]
    dim = block.shape[1]
    padded = block.new_zeros((batch_size, dim))
    padded[:rows] = block[:rows]
    counts = torch.tensor([rows], dtype=torch.int64, device=block.device)
    all_counts = [torch.zeros_like(counts) for _ in range(ctx.world_size)]
    dist.all_gather(all_counts, counts)
    blocks = [torch.empty_like(padded) for _ in range(ctx.world_size)] if ctx.is_main else None
    dist.gather(padded, blocks, dst=0)
    if not ctx.is_main:
        return None
    return [b[:int(c)] for b, c in zip(blocks, all_counts)]


def main_only(fn: Callable[[], T], ctx: DistContext | None = None) -> T:
    """Run ``fn`` on rank 0 only and give its (picklable) result to every rank; errors reach all ranks."""
    ctx = ctx or current()
    if not ctx.enabled:
        return fn()
    return broadcast_object(agree(lambda: fn() if ctx.is_main else None, ctx), ctx)
