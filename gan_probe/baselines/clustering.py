"""Plain (Lloyd) k-means in torch, on CPU or CUDA: the clustering step of the single-layer baseline.

Each iteration assigns every point to its nearest centroid (``argmin ||c||^2 - 2 x.c``, one matrix product
``[x, 1] @ [-2 C^T; ||c||^2]`` per chunk of rows, routed by :mod:`gan_probe.linalg`) and moves every centroid to
the mean of its points (sums accumulated in float64). It is the algorithm of Coates & Ng's ``run_kmeans.m`` (50
full-batch iterations) and of scikit-learn's ``KMeans(algorithm="lloyd")``, with scikit-learn's conventions
where the original differs:

* initialisation: ``k`` distinct data points drawn at random (scikit-learn's ``init="random"``; the original's
  code draws ``0.1 * randn`` centroids, with the random-sample line commented out). k-means++ is not used:
  the published numbers come from a random initialisation, and its ``k`` dependent seeding steps are a
  sequential loop over all points (timed against the Lloyd iterations in ``benchmarks/bench_kmeans.py``).
* an empty cluster is moved onto the point farthest from its centroid (scikit-learn's rule) instead of being
  zeroed (the original's rule, which leaves dead all-zero centroids).
* iterations stop early only when no assignment changed (the centroids would not move any more).

Given the same initial centroids it follows scikit-learn's ``KMeans(init=C0, n_init=1, algorithm="lloyd",
tol=0)`` iteration for iteration (see the tests).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..linalg import check_backend, mm
from .parallel import WorkerPool, default_workers

TASK_ROWS = 32_768  # rows per unit of work; fixed, so results do not depend on the number of workers

@dataclass
class KMeansResult:
    """Centroids (float32, (k, d)) and a summary of the run."""

    centroids: np.ndarray
    n_iter: int
    converged: bool
    relocated: int
    inertia: list[float] = field(default_factory=list)  # sum of squared distances at each assignment step


def random_init(n: int, k: int, seed: int) -> np.ndarray:
    """Indices of ``k`` distinct points out of ``n`` (seeded; independent of the device)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator)[:k].numpy()


def lloyd_kmeans(x: np.ndarray | torch.Tensor, k: int, iterations: int = 50, seed: int = 0,
                 init: np.ndarray | None = None, device: str | torch.device = "cpu", chunk: int = 4096,
                 progress: bool = False, gemm: str = "auto", workers: int | None = None) -> KMeansResult:
    """Cluster the rows of ``x`` (float32 (n, d)) into ``k`` groups with ``iterations`` Lloyd iterations.

    ``init`` gives the initial centroids; by default ``k`` random distinct rows (``seed``). On CPU the rows are
    processed in fixed tasks of ``TASK_ROWS`` by ``workers`` threads (see :mod:`.parallel`); partial sums are
    added in task order, so the result does not depend on the number of workers.

    >>> x = np.array([[0.0], [0.2], [10.0], [10.4]], np.float32)
    >>> lloyd_kmeans(x, k=2, iterations=5, init=np.array([[0.0], [1.0]], np.float32)).centroids.ravel().tolist()
    [0.10000000149011612, 10.199999809265137]
    """
    dev = torch.device(device)
    data = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x,
                           dtype=torch.float32).to(dev)
    n, d = data.shape
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} centroids need 1 <= k <= {n} points")
    if init is None:
        centroids = data[torch.as_tensor(random_init(n, k, seed), device=dev)].clone()
    else:
        centroids = torch.as_tensor(np.asarray(init, dtype=np.float32), device=dev).clone()
    backend = check_backend(gemm, dev)
    sq_norms = data.square().sum(dim=1)
    augmented = torch.cat([data, torch.ones(n, 1, device=dev)], dim=1)   # [x, 1] @ [-2 C^T; ||c||^2]
    labels = torch.full((n,), -1, dtype=torch.long, device=dev)
    nearest = torch.empty(n, dtype=torch.float32, device=dev)
    result = KMeansResult(centroids=np.empty(0), n_iter=0, converged=False, relocated=0)
    steps = range(iterations)
    if progress:
        from ..progress import bar

        steps = bar(steps, desc="k-means", unit="it", dynamic_ncols=True)
    task_rows = TASK_ROWS if dev.type == "cpu" else n
    tasks = [(lo, min(lo + task_rows, n)) for lo in range(0, n, task_rows)]
    with WorkerPool(default_workers(dev) if workers is None else workers) as pool:
        def assign(task: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
            """Assign rows lo:hi; return their per-cluster sums (float64), counts and changed labels."""
            buffer = getattr(pool.local, "buffer", None)
            if buffer is None or buffer.shape[0] < min(chunk, n):
                buffer = pool.local.buffer = torch.empty(min(chunk, n), k, device=dev)
            sums = torch.zeros(k, d, dtype=torch.float64, device=dev)
            counts = torch.zeros(k, dtype=torch.long, device=dev)
            changed = 0
            for start in range(task[0], task[1], chunk):
                stop = min(start + chunk, task[1])
                dist = mm(augmented[start:stop], caug, out=buffer[:stop - start], backend=backend)
                best, lab = dist.min(dim=1)                              # min_k ||c_k||^2 - 2 x.c_k
                nearest[start:stop] = best + sq_norms[start:stop]
                changed += int((lab != labels[start:stop]).sum())
                labels[start:stop] = lab
                sums.index_add_(0, lab, data[start:stop].to(torch.float64))
                counts += torch.bincount(lab, minlength=k)
            return sums, counts, changed

        for _ in steps:
            caug = torch.cat([-2.0 * centroids.T, centroids.square().sum(dim=1)[None]]).contiguous()
            parts = pool.map(assign, tasks)
            sums, counts = parts[0][0], parts[0][1]
            for part in parts[1:]:
                sums += part[0]
                counts += part[1]
            changed = sum(part[2] for part in parts)
            result.inertia.append(float(nearest.clamp_min(0).sum(dtype=torch.float64)))
            result.relocated += _relocate_empty(data, labels, nearest, sums, counts)
            result.n_iter += 1
            alive = counts > 0
            new = centroids.clone()
            new[alive] = (sums[alive] / counts[alive, None]).to(torch.float32)
            centroids = new
            if changed == 0:
                result.converged = True
                break
    result.centroids = centroids.cpu().numpy()
    return result


def _relocate_empty(data: torch.Tensor, labels: torch.Tensor, nearest: torch.Tensor, sums: torch.Tensor,
                    counts: torch.Tensor) -> int:
    """Give each empty cluster the point farthest from its centroid (in place); returns how many were empty."""
    empty = torch.nonzero(counts == 0).flatten()
    if len(empty) == 0:
        return 0
    far = torch.argsort(nearest, descending=True, stable=True)[:len(empty)]
    for cluster, point in zip(empty.tolist(), far.tolist()):
        old = int(labels[point])
        if counts[old] > 1:
            sums[old] -= data[point].to(torch.float64)
            counts[old] -= 1
            sums[cluster] = data[point].to(torch.float64)
            counts[cluster] = 1
            labels[point] = cluster
    return len(empty)
