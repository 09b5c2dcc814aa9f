"""The paper's probe protocols: all labels, K labels per class over random draws, and the SVHN 1,000-label one.

* ``full`` -- every training row is labelled (CIFAR-10 with 50,000 labels, Table 1 left column).
* ``few-labels`` -- ``K`` labelled rows per class, drawn at random ``draws`` times; test accuracy is
  reported as mean and std over the draws (Table 1 right column: 400 per class, +- over draws).
* ``svhn`` -- a validation set of ``val_size`` images is held out of the training split first; ``labels``
  labelled rows are drawn uniformly across classes from the rest, ``draws`` times; C is chosen on the validation
  images by mean validation error over the draws (as the authors' script did) and the test error is reported
  as mean +- std, with two 95% intervals: ``mean +- 1.96 std`` (the spread of a single draw, the paper's
  convention) and ``mean +- 1.96 std / sqrt(draws)`` (a normal-approximation interval for the mean).

C selection (``C=None``, the default): a stratified, seeded validation split of ``val_size`` training rows is
held out; every C of the grid is fitted (increasing C, warm-started), scored on it, and the C with the best
mean validation accuracy wins (ties go to the smaller C). ``full`` then refits on all training rows with it.
For the draw protocols the validation images are labelled images outside the draws (as in the SVHN protocol);
with a fixed C and no ``val_size`` nothing is held out. The run's settings come checked, as a
:class:`~gan_probe.probe.config.ProbeConfig` (built by :func:`~gan_probe.probe.config.probe_config`).

Standardisation statistics come from every row of the training split (features only, labels unused) in one
chunked float64 pass that also rejects NaN/infinity; the test split never contributes.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(3), 40)
>>> x = (rng.normal(size=(120, 8)) + 4.0 * y[:, None]).astype(np.float32)
>>> cfg = ProbeConfig(labels_per_class=5, draws=3, C=0.1, device="cpu")
>>> out = run_protocol(x, y, x, y, cfg)
>>> out["protocol"], len(out["per_draw"]), out["accuracy"] > 0.8
('few-labels', 3, True)
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..protocol_names import FEW_LABELS, FULL, PROTOCOLS, SVHN
from ..provenance import sha256_array
from .config import DEFAULT_C_GRID, SVHN_VAL_SIZE, ProbeConfig
from .design import standardized_design
from .labels import per_class_draw, spread_draw, stratified_holdout
from .resume import GridFits
from .settle import SETTLE_CATCH_UP, SETTLE_FRACTION, SettledPredictions
from .standardize import Standardizer, fit_standardizer
from .svm import TrainingProblem, predict_from_scores, scores

__all__ = ["ProbeConfig", "DEFAULT_C_GRID", "SVHN_VAL_SIZE", "PROTOCOLS", "run_protocol", "checked_labels",
           "grid_edge"]

def _val_size(config: ProbeConfig, n_train: int) -> tuple[int | None, str | None]:
    """The validation size to hold out (None: nothing) and a note when a default was adapted."""
    if config.val_size is not None:
        return config.val_size, None
    if config.C is not None:
        return None, None
    if config.protocol == SVHN:
        if n_train >= 2 * SVHN_VAL_SIZE:
            return SVHN_VAL_SIZE, None
        size = max(1, n_train // 5)
        return size, (f"the training split has {n_train} rows, too few for the protocol's {SVHN_VAL_SIZE} "
                      f"validation images; held out {size} (20%) instead -- set {config.setting('val_size')} to choose")
    return max(1, int(round(0.1 * n_train))), None


def _accuracy(decision: np.ndarray, classes: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(predict_from_scores(decision, classes) == truth))


def _stack_scores(x: np.ndarray, standardizer: Standardizer, Ws: list[torch.Tensor], rows: np.ndarray | None,
                  config: ProbeConfig, device: torch.device, split: str) -> list[np.ndarray]:
    """Decision values of several models with one read of the rows."""
    widths = [W.shape[1] for W in Ws]
    Z = scores(x, standardizer, torch.cat([W.to(device) for W in Ws], 1), rows, config.intercept_scaling,
               device, split)
    return np.split(Z, np.cumsum(widths)[:-1], axis=1)


def _describe_fit(C: float, res, seconds: float | None = None) -> dict[str, Any]:
    return {"C": C, "objective": float(np.sum(res.objective)), "converged": bool(res.converged),
            "iterations": int(res.newton_iterations), "cg_iterations": int(res.cg_iterations),
            "passes": int(res.passes), "seconds": round(float(res.seconds if seconds is None else seconds), 4),
            **({"preconditioner": res.preconditioner, "hessian_precision": res.hessian_precision,
                "bfloat16_passes": int(res.bfloat16_passes)} if res.preconditioner else {}),
            **({"hessian_layout": res.hessian_layout} if res.hessian_layout else {}),
            **({"max_cg": int(res.max_cg)} if res.max_cg else {}),
            **({"plan": res.plan.to_dict()} if getattr(res, "plan", None) is not None else {}),
            **({"stopped": res.stopped} if getattr(res, "stopped", "") else {})}


def run_protocol(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 config: ProbeConfig, standardizer: Standardizer | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None, resume_dir: str | os.PathLike | None = None
                 ) -> dict[str, Any]:
    """Run one protocol on train/test feature matrices and labels; returns the result fields as a dict.

    With ``resume_dir`` the full-label protocol keeps each C's fit there as it ends and reuses the fits a previous,
    interrupted run on the same inputs left (see :mod:`gan_probe.probe.resume`); :func:`write_result` removes the
    directory once the result is written.

    Accuracies are fractions in [0, 1]. The dict holds ``protocol, accuracy, accuracy_std, error, error_std,
    C, C_selection, n_train, n_val, n_test, n_features, draws, per_draw (= accuracies, one per draw),
    draw_details, seeds, solver (the name), solver_info, standardization, seconds`` (the file around it:
    :mod:`gan_probe.probe.results`).
    """
    start = time.perf_counter()
    y_train, y_test, classes = checked_labels(y_train, y_test, "the SVM")
    if standardizer is None:
        standardizer = fit_standardizer(x_train, split="train", progress=progress)
    val_size, note = _val_size(config, len(y_train))
    rest, val = (np.arange(len(y_train)), None)
    if val_size is not None:
        rest, val = stratified_holdout(y_train, val_size, config.seed)
    grid = sorted(set(config.C_grid)) if config.C is None else [float(config.C)]
    protocol = config.protocol
    if protocol == FULL:
        out = _run_full(x_train, y_train, x_test, y_test, config, standardizer, classes, rest, val, grid, progress,
                        log, resume_dir)
    else:
        out = _run_draws(x_train, y_train, x_test, y_test, config, standardizer, classes, rest, val, grid,
                         progress, log)
    out.update({
        "protocol": protocol,
        "n_val": 0 if val is None else int(len(val)),
        "n_test": int(len(y_test)),
        "n_features": int(x_train.shape[1]),
        "n_classes": int(len(classes)),
        "classes": classes.tolist(),
        "standardization": {"statistics_from": "all rows of the training split (features only, labels unused)",
                            **standardizer.summary()},
        "seconds": round(time.perf_counter() - start, 3),
    })
    if note:
        out["notes"] = [note]
    return out


def checked_labels(y_train, y_test, classifier: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label vectors and the training classes; a one-line error for fewer than two classes or test labels
    the training split never has."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise ConfigError(f"the training split has {len(classes)} class(es); {classifier} needs at least two")
    unknown = np.setdiff1d(np.unique(y_test), classes)
    if len(unknown):
        raise ConfigError(f"the test split has labels {unknown.tolist()[:5]} that never occur in the training split")
    return y_train, y_test, classes


def _selection(grid: list[float], val_acc: np.ndarray, test_acc: np.ndarray | None, fixed: bool, n_val: int,
               n_sel: int) -> dict[str, Any]:
    """``val_acc``: (draws, len(grid)); picks the best mean, ties to the smaller C."""
    if fixed:
        return {"mode": "fixed", "grid": grid, "chosen": grid[0], "curve": [], "val_size": n_val}
    mean = val_acc.mean(0)
    best = int(np.flatnonzero(mean >= mean.max() - 1e-12)[0])
    curve = []
    for i, C in enumerate(grid):
        point = {"C": C, "val_accuracy": float(mean[i]), "val_error": float(1 - mean[i])}
        if val_acc.shape[0] > 1:
            point["val_accuracy_std"] = float(val_acc[:, i].std(ddof=1))
        if test_acc is not None:
            point["test_accuracy"] = float(test_acc[:, i].mean())
        curve.append(point)
    out = {"mode": "auto", "grid": grid, "chosen": grid[best], "curve": curve, "val_size": n_val,
           "selection_draws": n_sel,
           "rule": "highest mean validation accuracy over the selection draws; ties go to the smaller C"}
    edge = grid_edge(grid, best)
    if edge:
        out["at_grid_edge"] = edge
    return out


def grid_edge(grid: list[float], best: int) -> str | None:
    """'smallest' / 'largest' when the chosen C is an end of a grid of two or more values: the best C may lie
    outside the grid, so the grid should be extended that way."""
    if len(grid) < 2:
        return None
    return "smallest" if best == 0 else "largest" if best == len(grid) - 1 else None


def _fit_summary(res) -> str:
    """One line on a fit for the run's log: objective, Newton steps, convergence, time."""
    state = (f", stopped early: {res.stopped}" if getattr(res, "stopped", "") else "" if res.converged
             else ", NOT converged")
    return (f"objective {float(np.sum(res.objective)):.6g}, {res.newton_iterations} Newton steps{state}, "
            f"{res.seconds:.1f} s")


def _grid_fits(resume_dir, problem, config: ProbeConfig, standardizer: Standardizer, y_train, rest, val):
    """The saved fits of this grid (see :mod:`gan_probe.probe.resume`), keyed by all they depend on."""
    if resume_dir is None:
        return None
    key = {"rows": [sha256_array(rest), sha256_array(y_train[rest])],
           "validation": None if val is None else [sha256_array(val), sha256_array(y_train[val])],
           "standardization": [sha256_array(standardizer.mean), sha256_array(standardizer.scale)],
           "n_features": standardizer.dim,
           "solver": config.solver, "method": problem.method, "device": str(problem.device),
           "intercept_scaling": config.intercept_scaling, "options": asdict(config.options),
           "settle": [config.settle, SETTLE_FRACTION, SETTLE_CATCH_UP]}
    return GridFits(resume_dir, key)


def _run_full(x_train, y_train, x_test, y_test, config, standardizer, classes, rest, val, grid, progress, log,
              resume_dir=None):
    fixed = config.C is not None
    fits = []
    warm = None
    if not fixed or val is not None:
        problem = _problem(x_train, y_train, rest, standardizer, classes, config, progress)
        saved_fits = _grid_fits(resume_dir, problem, config, standardizer, y_train, rest, val)
        watch = None if fixed else _settle_monitor(x_train, y_train, standardizer, val, config, problem)
        weights: list = []
        scored: list[float] = []
        patience = config.C_patience if not fixed else None
        below = 0  # C values in a row strictly below the best so far (a value that ties the best ends the run)
        for C in _bar(grid, progress, "C grid"):
            saved = saved_fits.load(C) if saved_fits is not None else None
            if saved is not None:
                W, fit, accuracy = saved["W"], {**saved["fit"], "resumed": True}, saved["val_accuracy"]
                how = f"resumed from {saved_fits.directory}"
            else:
                # from the previous C's weights (the solver's own last solution, or the one read from disk)
                if watch is not None:
                    watch.reset(best_accuracy=max(scored) if scored else None)
                # independent of earlier solves' state, so that a resumed grid repeats this one exactly
                res = problem.solve(C, W0=weights[-1] if weights else None, monitor=watch, independent=True)
                W, fit = res.W, {"rows": "train minus validation", **_describe_fit(C, res)}
                if watch is not None:
                    fit["val_prediction_changes"] = list(watch.changes)
                # scored as the grid goes (one read of the validation rows), to report it and to stop once the
                # curve has turned down
                s = _stack_scores(x_train, standardizer, [W], val, config, problem.device, "train")[0]
                accuracy = _accuracy(s, classes, y_train[val])
                if saved_fits is not None:
                    saved_fits.save(C, W, fit, accuracy)
                how = _fit_summary(res)
            weights.append(W)
            fits.append(fit)
            if log:
                log(f"C={C:g}: validation accuracy {accuracy:.2%}, {how}")
            below = below + 1 if scored and accuracy < max(scored) else 0
            scored.append(accuracy)
            if patience is not None and below >= patience:
                break
        fitted = grid[:len(weights)]
        selection = _selection(fitted, np.array([scored]), None, fixed, len(val), 1)
        if len(fitted) < len(grid):
            selection.update({"grid": grid, "skipped": grid[len(fitted):],
                              "stopped": f"validation accuracy fell below its best for {patience} C values in a "
                                         f"row ({config.setting('C_patience')} {patience}); larger C values were "
                                         f"not fitted"})
        if watch is not None:
            selection["grid_fits"] = (f"each fit on the grid stopped once at most {watch.allowed} of its "
                                      f"{watch.design.n_total} validation predictions changed in each of "
                                      f"{config.settle} Newton steps in a row ({config.setting('settle')}) -- a "
                                      f"fit trailing the best validation accuracy so far by G predictions once at "
                                      f"most G/{watch.catch_up} changed -- or at the solver's tolerance; the fit at "
                                      f"the chosen C on all training rows ran to the solver's tolerance")
        chosen = selection["chosen"]
        warm = weights[fitted.index(chosen)] if problem.method == "primal" else None
        # the refit: the grid's rows, then the validation rows; it takes over the grid's bfloat16 copy and sketch
        # of its rows (extended to the validation rows), else it reuses the sketch (one product with all rows)
        grid_problem = problem
        problem = _problem(x_train, y_train, np.concatenate([rest, val]) if val is not None else None,
                           standardizer, classes, config, progress)
        basis = None if problem.continue_from(grid_problem) else grid_problem.sketch
        del grid_problem
    else:
        selection = _selection(grid, np.zeros((1, 1)), None, True, 0, 1)
        chosen, basis = grid[0], None
        problem = _problem(x_train, y_train, None, standardizer, classes, config, progress)
    res = problem.solve(chosen, W0=warm, basis=basis)
    fits.append({"rows": "all training rows", **_describe_fit(chosen, res)})
    if log:
        log(f"C={chosen:g} on all {len(y_train)} training rows: {_fit_summary(res)}")
    test_scores = _stack_scores(x_test, standardizer, [res.W], None, config, problem.device, "test")[0]
    acc = _accuracy(test_scores, classes, y_test)
    return {
        "accuracy": acc, "accuracy_std": 0.0, "error": 1 - acc, "error_std": 0.0,
        "C": chosen, "C_selection": selection, "n_train": int(len(y_train)), "draws": 1,
        "accuracies": [acc], "per_draw": [acc],
        "draw_details": [{"draw": 0, "n_train": int(len(y_train)), "accuracy": acc,
                          "objective": float(np.sum(res.objective))}],
        "fits": fits, "objective": float(np.sum(res.objective)),
        "seeds": {"seed": config.seed, "holdout": [config.seed, 0] if val is not None else None},
        "solver": config.solver, "solver_info": _solver_info(config, problem, res),
    }


def _run_draws(x_train, y_train, x_test, y_test, config, standardizer, classes, rest, val, grid, progress, log):
    fixed = config.C is not None
    n_draws = config.n_draws
    n_sel = config.selection_draws or n_draws
    protocol = config.protocol
    draw_rows = []
    for d in range(n_draws):
        if protocol == FEW_LABELS:
            draw_rows.append(per_class_draw(y_train, rest, config.labels_per_class, config.seed, d,
                                            config.setting("labels_per_class")))
        else:
            draw_rows.append(spread_draw(y_train, rest, config.labels, config.seed, d, config.setting("labels")))
    val_acc = np.full((n_draws, len(grid)), np.nan)
    test_acc = np.full((n_draws, len(grid)), np.nan)
    per_draw: list[dict[str, Any]] = []
    chosen: float | None = grid[0] if fixed else None
    solver_info = None
    for d in _bar(range(n_draws), progress, "draws"):
        if chosen is None and d == n_sel:
            chosen = _selection(grid, val_acc[:n_sel], None, False, len(val), n_sel)["chosen"]
        draw_grid = grid if chosen is None else [chosen]
        problem = _problem(x_train, y_train, draw_rows[d], standardizer, classes, config)
        results = []
        for C in draw_grid:
            results.append(problem.solve(C))
            if log and len(draw_grid) > 1:  # long draws report each fit as it finishes, not only at their end
                log(f"draw {d + 1}/{n_draws}: C={C:g} fitted ({_fit_summary(results[-1])})")
        Ws = [r.W for r in results]
        cols = [grid.index(C) for C in draw_grid]
        if val is not None:
            for c, s in zip(cols, _stack_scores(x_train, standardizer, Ws, val, config, problem.device, "train")):
                val_acc[d, c] = _accuracy(s, classes, y_train[val])
        for c, s in zip(cols, _stack_scores(x_test, standardizer, Ws, None, config, problem.device, "test")):
            test_acc[d, c] = _accuracy(s, classes, y_test)
        per_draw.append({"draw": d, "seed": [config.seed, d], "n_train": int(len(draw_rows[d])),
                         "fits": [_describe_fit(C, r) for C, r in zip(draw_grid, results)]})
        solver_info = solver_info or _solver_info(config, problem, results[-1])
        if log:
            log(f"draw {d + 1}/{n_draws}: " + ", ".join(f"C={C:g} test {test_acc[d, c]:.4f}"
                                                         for C, c in zip(draw_grid, cols)))
    if chosen is None:
        chosen = _selection(grid, val_acc[:n_sel], None, False, len(val), n_sel)["chosen"]
    selection = _selection(grid, val_acc[:n_sel], test_acc[:n_sel], fixed, 0 if val is None else len(val), n_sel)
    c = grid.index(chosen)
    accs = test_acc[:, c]
    for d, entry in enumerate(per_draw):
        entry["accuracy"] = float(accs[d])
        if val is not None and not np.isnan(val_acc[d, c]):
            entry["val_accuracy"] = float(val_acc[d, c])
        entry["objective"] = next(f["objective"] for f in entry["fits"] if f["C"] == chosen)
    mean = float(accs.mean())
    std = float(accs.std(ddof=1)) if n_draws > 1 else 0.0
    err = 1 - mean
    half_draw, half_mean = 1.96 * std, 1.96 * std / math.sqrt(n_draws)
    return {
        "accuracy": mean, "accuracy_std": std, "error": err, "error_std": std, "std_ddof": 1,
        "error_interval_95": [err - half_draw, err + half_draw],
        "mean_error_interval_95": [err - half_mean, err + half_mean],
        "intervals": "error_interval_95 = mean +- 1.96 std over draws (spread of one draw, the paper's +-); "
                     "mean_error_interval_95 = mean +- 1.96 std / sqrt(draws) (normal approximation for the mean)",
        "C": chosen, "C_selection": selection,
        "n_train": int(len(draw_rows[0])), "draws": n_draws,
        "labels_per_class": config.labels_per_class, "labels": config.labels,
        "accuracies": [float(a) for a in accs], "per_draw": [float(a) for a in accs], "draw_details": per_draw,
        "objective": float(np.mean([e["objective"] for e in per_draw])),
        "seeds": {"seed": config.seed, "holdout": [config.seed, 0] if val is not None else None,
                  "draws": [[config.seed, d] for d in range(n_draws)]},
        "solver": config.solver, "solver_info": solver_info,
    }


def _settle_monitor(x, y, standardizer, val, config: ProbeConfig, problem: TrainingProblem):
    """The monitor that ends grid fits once the validation predictions settle (primal route, ``settle`` > 0)."""
    if not config.settle or val is None or problem.method != "primal":
        return None
    reducer = problem.reducer
    mine = reducer.my_rows(np.asarray(val), len(val))   # this rank's contiguous share of the validation rows
    design = standardized_design(x, standardizer, mine, config.intercept_scaling, problem.device, reducer=reducer)
    # the rows' classes as the monitor's prediction columns (one column: 1 for the second class)
    labels = torch.as_tensor(np.searchsorted(problem.classes, np.asarray(y)[mine]))
    return SettledPredictions(design, config.settle, labels=labels)


def _problem(x, y, rows, standardizer, classes, config: ProbeConfig, progress: bool = False) -> TrainingProblem:
    return TrainingProblem(x, y, rows=rows, standardizer=standardizer, classes=classes, solver=config.solver,
                           device=config.device, method=config.method, intercept_scaling=config.intercept_scaling,
                           options=config.options, progress=progress)


def _solver_info(config: ProbeConfig, problem: TrainingProblem, res) -> dict[str, Any]:
    info: dict[str, Any] = {"name": config.solver, "device": str(problem.device)}
    if config.solver == "torch":
        info.update({"method": problem.method, "options": asdict(config.options)})
    else:
        info.update(res.history[0] if res.history else {})
    info["intercept_scaling"] = config.intercept_scaling
    return info


def _bar(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from ..progress import bar

    return bar(items, desc=desc, leave=False)
