"""What every step reads, as a function of the seed alone: the data order and the random streams.

The data order of an epoch comes from ``(seed, epoch)`` and a step's noise from ``(seed, step)``, so a run resumed
from any checkpoint follows the trajectory of an uninterrupted one, and every world size draws the same global
batch (rank r keeps its rows of it).

>>> epoch_order(5, seed=0, epoch=0).tolist() == epoch_order(5, seed=0, epoch=0).tolist()
True
"""
from __future__ import annotations

import torch

#: stream numbers of :func:`stream_rng`
ORDER, NOISE, FIXED_SAMPLES = 1, 2, 3


def stream_rng(seed: int, stream: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from (seed, stream, index): independent, reproducible streams."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + stream * 7_919 + index) % (2 ** 63 - 1))
    return g


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of the training images in one epoch."""
    return torch.randperm(n, generator=stream_rng(seed, ORDER, epoch))


def rank_rows(rank: int, world_size: int, batch_size: int) -> slice:
    """The rows of every global batch that ``rank`` trains on (``batch_size`` is the global batch)."""
    local = batch_size // world_size
    return slice(rank * local, (rank + 1) * local)
