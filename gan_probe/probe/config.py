"""What defines a probe run, and the one function that builds it from what a user set.

A probe run is set on the command line (``gan-probe svm --C-grid 1e-4,1e-3``) or in the ``[probe]`` section of a
pipeline config. Both build their :class:`ProbeConfig` with :func:`probe_config`, which reads the values as the
user gave them -- ``"auto"`` or a number for ``C``, a comma-separated string or a list of numbers for ``C_grid``,
``None`` for anything unset -- and :class:`ProbeConfig` checks every value once, when it is built; the protocols
trust it afterwards. Errors name a setting the way the user set it: a table of setting names maps each field to
its spelling, :data:`CLI_NAMES` (``--C-grid``, the default) or :data:`PIPELINE_NAMES` (``[probe].C_grid``).

>>> probe_config(C="auto", C_grid="0.01,1", labels_per_class=5).protocol
'few-labels'
>>> probe_config(C_grid=[0.1, -1.0], names=PIPELINE_NAMES)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
gan_probe.errors.ConfigError: [probe].C_grid value -1.0: C must be a positive number (...)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..protocol_names import FEW_LABELS, FULL, PROTOCOLS, SVHN
from .plan import SolverOptionError, SolverOptions
from .settle import DEFAULT_SETTLE_STEPS
from .svm import check_C

#: the default C grid: decades from 1e-6 to 1
DEFAULT_C_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: the SVHN protocol's validation size (Radford et al. 2016, section 5.2)
SVHN_VAL_SIZE = 10000

#: how ``gan-probe svm`` spells each setting (the default of every error message)
CLI_NAMES: Mapping[str, str] = {
    "C": "--C", "C_grid": "--C-grid", "labels_per_class": "--labels-per-class", "labels": "--labels",
    "val_size": "--val-size", "draws": "--draws", "selection_draws": "--selection-draws",
    "C_patience": "--C-patience", "seed": "--seed", "solver": "--solver", "device": "--device",
    "method": "--method", "tol": "--tol", "settle": "--settle"}
#: how a pipeline config spells them (``seed`` and ``device`` are top-level keys; the rest are the CLI's)
PIPELINE_NAMES: Mapping[str, str] = {
    **CLI_NAMES, "C": "[probe].C", "C_grid": "[probe].C_grid", "labels_per_class": "[probe].labels_per_class",
    "labels": "[probe].svhn_labels", "val_size": "[probe].svhn_val_size", "draws": "[probe].draws",
    "C_patience": "[probe].C_patience", "solver": "[probe].solver", "seed": "seed", "device": "device",
    "settle": "[probe].settle"}


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that defines a probe run (recorded in the result file), checked when built.

    ``names``: how the errors spell the settings (:data:`CLI_NAMES` unless given); not part of the run.
    """

    C: float | None = None                  # None: choose on a validation split
    C_grid: tuple[float, ...] = DEFAULT_C_GRID
    labels_per_class: int | None = None     # -> protocol "few-labels"
    labels: int | None = None               # -> protocol "svhn"
    val_size: int | None = None
    draws: int | None = None                # default 1 (full) or 10
    selection_draws: int | None = None      # draws scored for C selection (default: all)
    C_patience: int | None = None           # full labels: stop the grid after this many C values in a row
    #                                         scored below the best validation accuracy (default: fit all)
    settle: int = DEFAULT_SETTLE_STEPS      # full labels: a grid fit stops once its validation predictions have
    #                                         settled for this many Newton steps (gan_probe.probe.settle; 0: every
    #                                         grid fit runs to the tolerance)
    seed: int = 0
    solver: str = "torch"
    device: str = "auto"
    method: str = "auto"
    intercept_scaling: float = 1.0
    options: SolverOptions = field(default_factory=SolverOptions)
    names: Mapping[str, str] = field(default_factory=lambda: CLI_NAMES, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = self.setting
        if self.labels_per_class is not None and self.labels is not None:
            raise ConfigError(f"{name('labels_per_class')} and {name('labels')} select different protocols; give "
                              f"one of them")
        if self.C is not None:
            object.__setattr__(self, "C", check_C(self.C, name("C")))
        grid = tuple(check_C(c, f"{name('C_grid')} value") for c in self.C_grid)
        if not grid:
            raise ConfigError(f"{name('C_grid')}: give at least one value")
        object.__setattr__(self, "C_grid", grid)
        if self.draws is not None and self.draws < 1:
            raise ConfigError(f"{name('draws')} must be at least 1, got {self.draws}")
        if self.protocol == FULL and self.draws not in (None, 1):
            raise ConfigError(f"{name('draws')} applies to {name('labels_per_class')} and {name('labels')}; the "
                              f"full-label protocol uses every training row once")
        if self.selection_draws is not None and not 1 <= self.selection_draws <= self.n_draws:
            raise ConfigError(f"{name('selection_draws')} must be between 1 and {name('draws')} ({self.n_draws})")
        if self.val_size is not None and self.val_size < 1:
            raise ConfigError(f"{name('val_size')} must be positive, got {self.val_size}")
        if isinstance(self.settle, bool) or not isinstance(self.settle, int) or self.settle < 0:
            raise ConfigError(f"{name('settle')} {self.settle!r}: expected a whole number of Newton steps, 0 or "
                              f"more (0: every grid fit runs to the solver's tolerance)")
        if self.C_patience is not None:
            if self.C_patience < 1:
                raise ConfigError(f"{name('C_patience')} must be at least 1, got {self.C_patience}")
            if self.protocol != FULL:
                raise ConfigError(f"{name('C_patience')} applies to the full-label protocol (the label-draw "
                                  f"protocols fit small problems; their grids are always fitted whole)")

    def setting(self, key: str) -> str:
        """How the user spelled setting ``key`` (``"--C-grid"``, ``"[probe].C_grid"``)."""
        return self.names.get(key, key)

    @property
    def protocol(self) -> str:
        """``full``, ``few-labels`` (``labels_per_class`` set) or ``svhn`` (``labels`` set)."""
        return FEW_LABELS if self.labels_per_class is not None else SVHN if self.labels is not None else FULL

    @property
    def n_draws(self) -> int:
        return self.draws if self.draws is not None else (1 if self.protocol == FULL else 10)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "names"}
        out["C_grid"] = list(self.C_grid)
        out["options"] = dataclasses.asdict(self.options)
        out["protocol"] = self.protocol
        return out


def probe_config(*, C: float | str | None = "auto", C_grid: str | Sequence[float] | None = None,
                 labels_per_class: int | None = None, labels: int | None = None, val_size: int | None = None,
                 draws: int | None = None, selection_draws: int | None = None, C_patience: int | None = None,
                 seed: int = 0, solver: str = "torch", device: str = "auto", method: str = "auto",
                 tol: float | None = None, settle: int | None = None,
                 names: Mapping[str, str] = CLI_NAMES) -> ProbeConfig:
    """The :class:`ProbeConfig` of a probe run from the values a user set (``None``: unset, the default applies).

    ``C``: ``"auto"`` (or None) to choose it on a validation split, else a number (or its text); ``C_grid``: the
    values ``C="auto"`` tries, comma-separated text or a sequence (None: :data:`DEFAULT_C_GRID`); ``tol``: the
    solver's stopping tolerance; ``settle``: see :class:`ProbeConfig` (None: :data:`DEFAULT_SETTLE_STEPS`). Errors
    name each setting as ``names`` spells it.
    """
    spell = {**CLI_NAMES, **names}
    if C is None or (isinstance(C, str) and C.strip().lower() == "auto"):
        C = None
    if isinstance(C_grid, str):
        C_grid = [part for part in C_grid.replace(" ", "").split(",") if part]
        if not C_grid:
            raise ConfigError(f"{spell['C_grid']}: expected comma-separated positive numbers, e.g. 1e-4,1e-3,1e-2")
    try:
        options = SolverOptions() if tol is None else SolverOptions(tol=tol)
    except SolverOptionError as exc:
        raise ConfigError(f"{spell['tol']} {tol}: expected a positive finite number (a fraction of the "
                          f"objective)") from exc
    return ProbeConfig(C=C, C_grid=DEFAULT_C_GRID if C_grid is None else tuple(C_grid),
                       labels_per_class=labels_per_class, labels=labels, val_size=val_size, draws=draws,
                       selection_draws=selection_draws, C_patience=C_patience, seed=seed, solver=solver,
                       device=device, method=method, options=options, names=spell,
                       settle=DEFAULT_SETTLE_STEPS if settle is None else settle)


__all__ = ["ProbeConfig", "probe_config", "CLI_NAMES", "PIPELINE_NAMES", "DEFAULT_C_GRID", "SVHN_VAL_SIZE",
           "PROTOCOLS"]
