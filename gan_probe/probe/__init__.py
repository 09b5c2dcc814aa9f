"""The linear L2-SVM probe: scikit-learn's ``LinearSVC`` objective, solved in torch at the paper's scale.

>>> from gan_probe.probe import fit_svm, LinearL2SVM, run_protocol, probe_store, ProbeConfig   # doctest: +SKIP
>>> model = fit_svm(train_x, train_y, C=0.01)                                    # doctest: +SKIP
>>> model.score(test_x, test_y)                                                  # doctest: +SKIP
>>> result = probe_store("feats/", ProbeConfig(labels_per_class=400, draws=10))  # doctest: +SKIP

Modules: :mod:`.svm` (estimator, training problems), :mod:`.newton` (Newton-CG for many rows),
:mod:`.kernel` (exact Newton on the Gram matrix for few rows), :mod:`.design` (the chunked, standardised data
operator), :mod:`.standardize`, :mod:`.labels` (seeded draws), :mod:`.config` (a probe run's settings, built
and checked once), :mod:`.protocols`, :mod:`.results` (the result file), :mod:`.liblinear` (the scikit-learn
reference).
"""
from .config import DEFAULT_C_GRID, PROTOCOLS, ProbeConfig, probe_config
from .labels import per_class_draw, spread_draw, stratified_holdout
from .plan import SolvePlan, SolverOptions
from .protocols import run_protocol
from .results import probe_store, run_probe, summary_lines, write_result
from .standardize import Standardizer, fit_standardizer
from .svm import LinearL2SVM, TrainingProblem, fit_svm

__all__ = ["LinearL2SVM", "fit_svm", "TrainingProblem", "SolverOptions", "SolvePlan", "ProbeConfig", "probe_config",
           "run_protocol", "probe_store", "run_probe", "write_result", "summary_lines", "DEFAULT_C_GRID", "PROTOCOLS",
           "Standardizer", "fit_standardizer", "stratified_holdout", "per_class_draw", "spread_draw"]
