"""CPU parallelism for the k-means baseline: independent worker threads, each running single-threaded kernels.

Torch (and NumPy's BLAS) parallelise every operation over all cores and meet at a barrier after each one. The
encoder issues many medium-sized operations, so on a machine shared with other jobs a single descheduled
thread stalls every barrier (measured: 2 intra-op threads ran 2-3x *slower* than 1 on a busy 2-core machine).
Here ``workers`` Python threads instead take whole pieces of work (a few images, a chunk of patches) and run
them with one kernel thread each; torch and NumPy release the GIL inside their kernels, so the threads run in
parallel and only meet once per batch.

>>> with WorkerPool(2) as pool:
...     pool.map(lambda x: x * x, range(5))
[0, 1, 4, 9, 16]
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def default_workers(device: torch.device) -> int:
    """Worker threads to use: torch's intra-op thread count on CPU, 1 on GPUs."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


@contextlib.contextmanager
def single_threaded_kernels() -> Iterator[None]:
    """Run torch and BLAS kernels with one thread each inside the block; restore the settings afterwards."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


class WorkerPool:
    """A context manager: ``workers`` threads (none when 1) running single-threaded kernels while open.

    ``map`` is eager and ordered; ``local`` is per-thread storage (e.g. one encoder buffer per worker).
    """

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self.local = threading.local()
        self._stack = contextlib.ExitStack()
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> "WorkerPool":
        from ..linalg import prefer_numpy

        # the baseline's products go to NumPy's BLAS at every size, with any number of workers (gan_probe.linalg)
        self._stack.enter_context(prefer_numpy())
        if self.workers > 1:
            self._stack.enter_context(single_threaded_kernels())
            self._pool = self._stack.enter_context(ThreadPoolExecutor(max_workers=self.workers))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._pool = None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        if self._pool is None:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))
