"""Training: one loop (:mod:`.loop`) for the model families of :mod:`.family` (a DCGAN, a VAE).

=================  ===========================================================================================
``config``         :class:`TrainConfig` (validated options), resume merging, the number of steps
``loop``           :func:`train`: plan the run, build the family, open the run directory, run the steps
``family``         what the loop asks of a model family (``families``: :func:`build_family`, the registry)
``gan``            the DCGAN family (G and D, their optimisers, DDP / compile / CUDA-graph wrapping)
``vae``            the VAE family (encoder with D's layout, G as decoder, the negative ELBO, one optimiser)
``step``           one DCGAN step (D's update, then G's), eager or replayed from a CUDA graph
``syncbn``         batch norm over the global batch of all ranks (``--sync-bn``)
``schedule``       the data order and random streams of every step
``log``            log.csv; ``rundir``: checkpoints, resume start, sample grids
``control``        stop requests and the non-finite-loss check
``probe``          the online linear probe of ``--probe-every`` and the best checkpoint it keeps
=================  ===========================================================================================

>>> from gan_probe.training import TrainConfig, train          # doctest: +SKIP
>>> train(TrainConfig(dataset="digits", preset="small32", max_steps=20), "runs/digits")   # doctest: +SKIP
"""
from .config import TrainConfig, merge_resume_config
from .control import TrainingStopped
from .log import read_log
from .loop import TrainResult, train
from .rundir import latest_checkpoint

__all__ = ["TrainConfig", "TrainResult", "TrainingStopped", "latest_checkpoint", "merge_resume_config", "read_log",
           "train"]
