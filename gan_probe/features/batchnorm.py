"""Re-estimating a discriminator's batch-norm statistics on a dataset (as the DCGAN authors did)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models import Discriminator, to_model_range


@torch.no_grad()
def recompute_batchnorm(disc: Discriminator, images: np.ndarray, batch_size: int = 256,
                        device: torch.device | str = "cpu", progress: bool = False, depth: int | None = None) -> int:
    """Replace every BatchNorm's running mean/var by the cumulative average over ``images`` (uint8 NHWC).

    Batches are taken in order; the result is the mean of per-batch statistics (momentum=None). With ``depth``
    only the first ``depth`` conv blocks are run (the layers a probe reads); the later blocks' statistics are
    left reset. Returns the number of batches used; the module is left in eval mode.
    """
    norms = [m for m in disc.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return 0
    saved = [(m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    disc.train()
    starts = range(0, len(images), batch_size)
    if progress:
        from ..progress import bar

        starts = bar(starts, desc="batch-norm statistics", unit="batch", dynamic_ncols=True)
    batches = 0
    for start in starts:
        block = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
        if len(block) < 2:
            continue
        x = to_model_range(block).to(device)
        for layer in disc.features[:depth]:
            x = layer(x)
        batches += 1
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    disc.eval()
    return batches
