"""The model families one training loop trains: what the loop asks of a family (the registry that builds
one is :mod:`gan_probe.training.families`).

The loop (:mod:`gan_probe.training.loop`) owns everything that does not depend on the model: data order,
batches, logging, checkpoints, resume, the wall-clock budget, stop requests, ranks. A family owns its modules and
optimisers and answers the loop's few questions:

- ``losses(step, real, rows)``: train one step on this rank's rows of the global batch ``real`` (images in
  [-1, 1]) with the step's noise drawn from ``stream_rng(seed, NOISE, step)``; returns the step's losses (a 1-D
  tensor on the device, one value per ``loss_names``, checked for NaN/inf at the check points) and keeps what
  ``log_stats`` needs;
- ``log_stats()``: the last step's values of ``log_fields`` (a 1-D tensor, averaged over the ranks by the loop);
- ``samples()``: the fixed grid of generated images the run saves (64 images in [-1, 1]);
- ``state()`` / ``load_state(state)``: the checkpoint's entries (modules and optimisers); the loop adds ``family``
  (so that every command can tell what a file holds), the step, the configuration and the provenance;
- ``describe()``: what config.json records about the step (e.g. whether it runs from a CUDA graph).

Families are built after ``torch.manual_seed(config.seed)``, so their initial weights are the seed's.
"""
from __future__ import annotations

from typing import Any

import torch

#: ``gan-probe train --model NAME``
FAMILIES = ("dcgan", "vae")


class ModelFamily:
    """The interface (see the module docstring); subclasses set the class attributes."""

    name: str = ""
    loss_names: tuple[str, ...] = ()
    log_fields: tuple[str, ...] = ()
    postfix_fields: tuple[str, ...] = ()  # the progress bar's values and the summary's
    online_probe = False  # whether --probe-every can score it (a DCGAN discriminator)

    def losses(self, step: int, real: torch.Tensor, rows: slice) -> torch.Tensor:
        raise NotImplementedError

    def log_stats(self) -> torch.Tensor:
        raise NotImplementedError

    def samples(self) -> torch.Tensor:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def prepare_input(self, real: torch.Tensor) -> torch.Tensor:
        """The batch as the modules want it (memory layout)."""
        return real
