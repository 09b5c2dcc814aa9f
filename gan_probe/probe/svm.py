"""The linear L2-SVM probe: one-vs-rest, squared hinge, L2 penalty -- scikit-learn's ``LinearSVC`` objective.

For every class ``k`` (a single problem for two classes, as liblinear does)::

    minimise  0.5 * (||w_k||^2 + b_k^2) + C * sum_i max(0, 1 - y_ik * (w_k . x_i + b_k))^2

over standardised features ``x_i`` (training statistics only), with ``y_ik = +1`` for class ``k`` and ``-1``
otherwise. The bias is penalised like a weight because liblinear appends a constant feature of value
``intercept_scaling`` (1 by default) and regularises its weight; with ``intercept_scaling = s`` the bias is
``b = s * w_last`` and the penalty is on ``w_last``. Objectives from both solvers are therefore directly
comparable, and ``C`` means exactly what it means for ``LinearSVC(loss="squared_hinge", penalty="l2",
fit_intercept=True, intercept_scaling=1)``.

Solvers: ``"torch"`` (default; :mod:`gan_probe.probe.newton`, CPU or CUDA, float32 data with float64
reductions, all classes at once) and ``"liblinear"`` (the reference, :mod:`gan_probe.probe.liblinear`).
The torch solver works on the rows directly (``method="primal"``) or, when there are fewer rows than features,
on the factor of their Gram matrix (``method="kernel"``, :mod:`gan_probe.probe.kernel`); ``"auto"`` picks.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(-1, 1, (50, 5)), rng.normal(1, 1, (50, 5))]).astype(np.float32)
>>> y = np.repeat([0, 1], 50)
>>> model = fit_svm(X, y, C=0.1, device="cpu")
>>> model.score(X, y) > 0.9
True
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import ConfigError, FeatureStoreError
from .design import Design, standardized_design
from .kernel import KernelNewton
from .loss import SolveResult, class_targets, objective
from .newton import newton_cg
from .plan import SolverOptions
from .preconditioners import SketchPreconditioner
from .rows import active as active_reducer
from .standardize import Standardizer, fit_standardizer

SOLVERS = ("torch", "liblinear")
METHODS = ("auto", "primal", "kernel")
#: the kernel route keeps an (n, n) float64 Gram factor; beyond this many rows the primal route is used
KERNEL_MAX_ROWS = 12000


def check_C(C: float, flag: str = "--C") -> float:
    """Validate a regularisation constant (positive and finite)."""
    try:
        value = float(C)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} {C!r}: expected a positive number or 'auto'") from None
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} {C}: C must be a positive number (it weighs the squared hinge loss against "
                          f"the L2 penalty)")
    return value


def choose_method(n_rows: int, n_features: int, method: str = "auto") -> str:
    """``kernel`` when the rows are at most half the features (and at most ``KERNEL_MAX_ROWS``), else ``primal``.

    >>> choose_method(4000, 28672), choose_method(50000, 28672), choose_method(10, 8, "kernel")
    ('kernel', 'primal', 'kernel')
    """
    if method not in METHODS:
        raise ConfigError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    return "kernel" if n_rows <= min(n_features // 2, KERNEL_MAX_ROWS) else "primal"


class TrainingProblem:
    """One set of training rows, prepared once and solved for any number of C values (warm-started).

    The design (and for the kernel route the Gram factor) is shared by every :meth:`solve`; each solve starts
    from the previous solution, so solving a grid of increasing C costs little more than its largest C.

    Inside :func:`gan_probe.probe.rows.sharded_rows` (``svm`` under torchrun) each rank's design holds a contiguous
    share of the training rows and every solve is the one-process primal solve with its row sums reduced over the
    ranks; the kernel route and liblinear, which need every row in one place, are refused there.
    """

    def __init__(self, x: np.ndarray, labels: np.ndarray, *, rows: np.ndarray | None = None,
                 standardizer: Standardizer | None = None, classes: np.ndarray | None = None,
                 solver: str = "torch", device: str | torch.device = "auto", method: str = "auto",
                 intercept_scaling: float = 1.0, options: SolverOptions | None = None,
                 liblinear_options: dict[str, Any] | None = None, split: str = "train", progress: bool = False):
        if solver not in SOLVERS:
            raise ConfigError(f"--solver {solver!r}: expected one of {', '.join(SOLVERS)}")
        labels = np.asarray(labels)
        self.x, self.labels = x, labels
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        y = labels if self.rows is None else labels[self.rows]
        self.classes = np.unique(y) if classes is None else np.asarray(classes)
        if len(np.unique(y)) < 2:
            raise ConfigError(f"{split}: the SVM needs training rows from at least two classes, got "
                              f"{len(np.unique(y))}")
        self.solver = solver
        self.reducer = reducer = active_reducer()
        if reducer.enabled and solver != "torch":
            raise ConfigError(f"--solver {solver} runs in one process; under torchrun use --solver torch")
        if reducer.enabled and method == "kernel":
            raise ConfigError("--method kernel needs every training row in one process; under torchrun the probe "
                              "solves the primal problem (--method primal or auto)")
        self.device = (reducer.ctx.device if reducer.enabled else resolve_device(str(device)) if solver == "torch"
                       else torch.device("cpu"))
        self.standardizer = standardizer if standardizer is not None else fit_standardizer(x, self.rows, split)
        self.intercept_scaling = float(intercept_scaling)
        self.options = options or SolverOptions()
        self.liblinear_options = dict(liblinear_options or {})
        n = len(y)
        self.method = ("primal" if reducer.enabled else choose_method(n, x.shape[1], method) if solver == "torch"
                       else "liblinear")
        mine = reducer.my_rows(self.rows, n)   # this rank's contiguous share of the training rows
        if reducer.enabled:
            y = labels[mine]
        # the kernel route re-reads its (few) rows block by block for the Gram matrix: keep them standardised
        self.design: Design = standardized_design(x, self.standardizer, mine, self.intercept_scaling,
                                                  self.device, cache_bytes=(1 << 62) if self.method == "kernel"
                                                  else None, reducer=reducer)
        self.Y = class_targets(y, self.classes, self.device)
        self._kernel: KernelNewton | None = None
        self._warm: torch.Tensor | None = None
        self._warm_beta: torch.Tensor | None = None
        self._subspace = None
        self.setup_seconds = 0.0
        self.progress = progress

    @property
    def n_rows(self) -> int:
        return self.design.n_total

    @property
    def sketch(self):
        """The sketch of the data the last primal solve was preconditioned with (None without one): another
        problem on the same standardised features can start from it (``solve(..., basis=...)``)."""
        return getattr(self._subspace, "spectrum", None)

    def continue_from(self, grid: "TrainingProblem") -> bool:
        """Take over what ``grid`` holds if it is a problem over the first rows of this one (the C grid's training
        rows, to which the refit adds the validation rows): its low-precision copy of those rows and its sketch of
        the data, extended to the other rows -- a copy of those rows only, and a product of the sketch's basis with
        them only. The next solve starts from them; the solution is the same either way. Returns whether anything
        was taken (nothing on the kernel route, under torchrun, or when ``grid`` holds no copy)."""
        n = len(grid.rows) if grid.rows is not None else 0
        if (self.method != "primal" or grid.method != "primal" or self.reducer.enabled or grid.design.shadow is None
                or self.rows is None or not 0 < n < len(self.rows) or not np.array_equal(self.rows[:n], grid.rows)
                or self.standardizer is not grid.standardizer or self.intercept_scaling != grid.intercept_scaling
                or self.device != grid.device):
            return False
        extra = standardized_design(self.x, self.standardizer, self.rows[n:], self.intercept_scaling, self.device,
                                    cache_bytes=0)
        extra.request_shadow(grid.design.shadow_dtype, packed=grid.design.shadow_packed)
        extra.ensure_shadow()
        self.design.adopt_shadow([grid.design, extra])
        if grid.sketch is not None:
            self._subspace = SketchPreconditioner(grid.sketch.stacked(extra.shadow))
        return True

    def solve(self, C: float, warm_start: bool = True, W0: torch.Tensor | None = None, *,
              basis: Any = None, monitor: Any = None, independent: bool = False) -> SolveResult:
        """Fit for one C; the result's ``W`` is over the standardised features (bias row last).

        The previous solution warm-starts the solve unless ``warm_start`` is False; ``W0`` (primal route only,
        e.g. the solution on a subset of these rows) replaces it. Primal route only: ``basis``, the sketch of
        another problem on the same features, replaces a new sketch; ``monitor`` may end the solve early (see
        :func:`~gan_probe.probe.newton.newton_cg`). ``independent``: the solve depends only on C, its starting
        weights and the data -- no preconditioner state is carried over from earlier solves (a sketch of the data,
        which depends on the data alone, is kept; its per-class state is rebuilt), so that a grid resumed from saved
        weights repeats the uninterrupted grid step for step.
        """
        C = check_C(C)
        if self.solver == "liblinear":
            return self._solve_liblinear(C)
        warm = self._warm if warm_start else None
        if W0 is not None and self.method == "primal":
            warm = W0
        if self.method == "primal":
            bar = _newton_bar(self.progress, C)
            carried = self._subspace if warm_start else None
            if independent:
                carried = SketchPreconditioner(carried.spectrum) if isinstance(carried, SketchPreconditioner) else None
            result = newton_cg(self.design, self.Y, C, warm, self.options,
                               subspace=carried, basis=basis, monitor=monitor,
                               callback=None if bar is None else lambda e: _advance(bar, e))
            if bar is not None:
                bar.close()
            self._warm, self._subspace = result.W, result.subspace
            return result
        start = time.perf_counter()
        if self._kernel is None:
            self._kernel = KernelNewton(self.design)
            self.setup_seconds += time.perf_counter() - start
        passes_before = self.design.passes
        ks = self._kernel.solve(self.Y, C, self._warm_beta if warm_start else None)
        self._warm_beta = ks.beta
        W = self.design.rmatmul(ks.beta)
        obj = objective(self.design, W, self.Y, C)
        return SolveResult(W=W, objective=obj, margins=ks.margins, newton_iterations=ks.iterations,
                           cg_iterations=0, passes=self.design.passes - passes_before, converged=ks.converged,
                           seconds=time.perf_counter() - start, history=ks.history)

    def _solve_liblinear(self, C: float) -> SolveResult:
        from .liblinear import fit_liblinear

        start = time.perf_counter()
        W, classes, info = fit_liblinear(self.x, self.labels, C, self.standardizer, self.rows,
                                         self.intercept_scaling, **self.liblinear_options)
        if not np.array_equal(classes, self.classes):
            raise ConfigError("liblinear saw a different set of classes than the problem declares")
        W = torch.as_tensor(W, dtype=torch.float64)
        obj = objective(self.design, W, self.Y, C)
        return SolveResult(W=W, objective=obj, margins=torch.empty(0), newton_iterations=info["n_iter"],
                           cg_iterations=0, passes=0, converged=info["converged"],
                           seconds=time.perf_counter() - start, history=[info])


def _newton_bar(enabled: bool, C: float):
    if not enabled:
        return None
    from ..progress import bar

    return bar(desc=f"Newton (C={C:g})", unit="step", leave=False, start_line=False)


def _advance(bar, entry: dict) -> None:
    extra = {"bf16_passes": entry["bfloat16_passes"]} if "bfloat16_passes" in entry else {}
    bar.set_postfix(objective=f"{entry['objective']:.6g}", passes=entry["passes"], **extra)
    bar.update(1)


def scores(x: np.ndarray, standardizer: Standardizer, W: torch.Tensor, rows: np.ndarray | None = None,
           intercept_scaling: float = 1.0, device: str | torch.device = "cpu", split: str = "test") -> np.ndarray:
    """Decision values ``X~ W`` (float64 ``(n, K)``) of several stacked models in one read of ``x[rows]``.

    A NaN or infinity in the features raises :class:`~gan_probe.errors.FeatureStoreError` naming ``split``
    and the row (it makes the row's scores non-finite, which is checked here).

    With rows shared among ranks (:func:`gan_probe.probe.rows.sharded_rows`) each rank scores its contiguous share
    and every rank receives all the decision values.
    """
    reducer = active_reducer()
    if not reducer.enabled:
        return _scores(x, standardizer, W, rows, intercept_scaling, device, split)
    n = len(rows) if rows is not None else x.shape[0]
    mine = reducer.my_rows(rows, n)
    local = reducer.agree(lambda: _scores(x, standardizer, W, mine, intercept_scaling, reducer.ctx.device, split)
                          if len(mine) else np.zeros((0, W.shape[1])))
    return reducer.gather_rows(torch.as_tensor(local, dtype=torch.float64), n).numpy()


def _scores(x: np.ndarray, standardizer: Standardizer, W: torch.Tensor, rows: np.ndarray | None,
            intercept_scaling: float, device: str | torch.device, split: str) -> np.ndarray:
    design = standardized_design(x, standardizer, rows, intercept_scaling, device, cache_bytes=0)
    Z = design.matmul(W)
    bad = ~torch.isfinite(Z).all(dim=1)
    if bool(bad.any()):
        local = int(bad.nonzero()[0, 0])
        row = int(rows[local]) if rows is not None else local
        raw = np.asarray(x[row])
        cols = np.flatnonzero(~np.isfinite(raw))
        where = f"column {int(cols[0])} ({raw[cols[0]]})" if len(cols) else "a value that overflows"
        raise FeatureStoreError(f"{split} features: non-finite value in row {row}, {where}")
    return Z.cpu().numpy()


def predict_from_scores(decision: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class labels from decision values (argmax; the sign for a single two-class column).

    >>> predict_from_scores(np.array([[0.2, 0.5], [1.0, -1.0]]), np.array([3, 7])).tolist()
    [7, 3]
    >>> predict_from_scores(np.array([[-0.3], [0.1]]), np.array([3, 7])).tolist()
    [3, 7]
    """
    if decision.shape[1] == 1:
        return np.where(decision[:, 0] > 0, classes[1], classes[0])
    return classes[np.argmax(decision, axis=1)]


class LinearL2SVM:
    """Estimator API: ``fit(X, y)``, ``decision_function``, ``predict``, ``score``.

    ``X`` is a float32 ``(n, D)`` array (memory-mapped is fine; it is read chunk by chunk). The fitted model
    keeps the standardisation statistics of its training rows; ``coef_`` ``(K, D)`` and ``intercept_`` ``(K,)``
    act on standardised features, :meth:`raw_weights` folds the standardisation into weights for raw features.

    >>> import numpy as np
    >>> X = np.array([[0, 0], [0, 1], [3, 3], [3, 4], [6, 0], [6, 1]], dtype=np.float32)
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> LinearL2SVM(C=1.0, device="cpu").fit(X, y).predict(X).tolist()
    [0, 0, 1, 1, 2, 2]
    """

    def __init__(self, C: float = 1.0, *, solver: str = "torch", device: str = "auto", method: str = "auto",
                 intercept_scaling: float = 1.0, options: SolverOptions | None = None):
        self.C = check_C(C, "C")
        self.solver, self.device, self.method = solver, device, method
        self.intercept_scaling = float(intercept_scaling)
        self.options = options

    def fit(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None,
            standardizer: Standardizer | None = None) -> "LinearL2SVM":
        """Fit on ``X[rows]`` (all rows by default); statistics come from those rows unless given."""
        problem = TrainingProblem(X, y, rows=rows, standardizer=standardizer, solver=self.solver,
                                  device=self.device, method=self.method, intercept_scaling=self.intercept_scaling,
                                  options=self.options)
        result = problem.solve(self.C)
        self.classes_ = problem.classes
        self.standardizer_ = problem.standardizer
        self.W_ = result.W.cpu()
        self.objective_ = result.objective
        self.result_ = result
        self.method_ = problem.method
        self.device_ = problem.device
        return self

    @property
    def coef_(self) -> np.ndarray:
        return self.W_[:-1].T.numpy()

    @property
    def intercept_(self) -> np.ndarray:
        return (self.W_[-1] * self.intercept_scaling).numpy()

    def raw_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(coef, intercept)`` acting on raw (unstandardised) features."""
        coef = self.coef_ / self.standardizer_.scale
        return coef, self.intercept_ - coef @ self.standardizer_.mean

    def decision_function(self, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return scores(X, self.standardizer_, self.W_, rows, self.intercept_scaling, self.device_)

    def predict(self, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return predict_from_scores(self.decision_function(X, rows), self.classes_)

    def score(self, X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None) -> float:
        """Accuracy as a fraction in [0, 1]."""
        y = np.asarray(y) if rows is None else np.asarray(y)[rows]
        return float(np.mean(self.predict(X, rows) == y))


def fit_svm(X: np.ndarray, y: np.ndarray, C: float = 1.0, **kwargs: Any) -> LinearL2SVM:
    """Fit a :class:`LinearL2SVM` (keyword arguments go to its constructor)."""
    return LinearL2SVM(C, **kwargs).fit(X, y)
