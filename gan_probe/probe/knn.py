"""The k-nearest-neighbour probe: cosine similarity, majority or temperature-weighted votes, as the
self-supervised literature evaluates representations (and as the DCGAN paper's SVHN table reports KNN on pixels).

Data contract: rows are standardised with the training split's statistics (the same statistics as the SVM probe:
every training row, features only), then scaled to unit length, so the dot product of two rows is their cosine
similarity. For a block of query rows, one product with the labelled bank gives their similarities, and
``torch.topk`` keeps the ``max(k)`` nearest; the block size bounds the memory (``block_rows x n_bank`` floats).
Equal similarities go to the earlier bank row. Under ``torchrun -m gan_probe knn`` each rank holds a contiguous
share of the bank rows and the ranks merge their nearest rows per query block (:class:`KnnBank`): the one-process
neighbours, predictions, chosen ``k`` and ``T`` and accuracies.
Every ``k`` of the grid and every temperature ``T`` are scored from those same neighbours:

- ``majority``: the most frequent label among the ``k`` nearest; a tie goes to the smallest label (as
  scikit-learn's ``KNeighborsClassifier``);
- ``weighted``: each of the ``k`` nearest votes ``exp(similarity / T)`` for its label; the largest sum wins.

Protocols and splits are those of :mod:`gan_probe.probe.protocols` (all labels, ``labels_per_class`` draws, the
SVHN ``labels`` draws), with ``k`` and ``T`` chosen on the same validation rows the SVM would choose ``C`` on.

>>> import numpy as np
>>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
>>> y = np.array([0, 0, 1, 1])
>>> bank = KnnBank(x, y, standardizer=None, device="cpu")
>>> bank.predict(np.array([[1.0, 0.2]], np.float32), ks=[1], temperatures=[], vote="majority")[(1, None)].tolist()
[0]
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import ConfigError
from ..protocol_names import FEW_LABELS, FULL, SVHN
from .labels import per_class_draw, spread_draw, stratified_holdout
from . import rows as row_sharing
from .standardize import Standardizer, fit_standardizer

VOTES = ("weighted", "majority")
DEFAULT_K_GRID = (1, 5, 10, 20, 50, 100, 200)
DEFAULT_T_GRID = (0.03, 0.07, 0.1, 0.3)
#: the most similarity entries (query rows x bank rows) one block computes
BLOCK_ENTRIES = 1 << 25


@dataclass
class KnnConfig:
    """Everything that defines a kNN probe run (recorded in the result file)."""

    vote: str = "weighted"
    k_grid: tuple[int, ...] = DEFAULT_K_GRID
    T_grid: tuple[float, ...] = DEFAULT_T_GRID
    k: int | None = None                    # fix k (and T) instead of choosing them
    T: float | None = None
    labels_per_class: int | None = None
    labels: int | None = None
    val_size: int | None = None
    draws: int | None = None
    selection_draws: int | None = None
    seed: int = 0
    device: str = "auto"
    standardize: bool = True

    @property
    def protocol(self) -> str:
        if self.labels_per_class is not None and self.labels is not None:
            raise ConfigError("--labels-per-class and --labels select different protocols; give one of them")
        return FEW_LABELS if self.labels_per_class is not None else SVHN if self.labels is not None else FULL

    @property
    def n_draws(self) -> int:
        return self.draws if self.draws is not None else (1 if self.protocol == "full" else 10)

    @property
    def fixed(self) -> bool:
        return self.k is not None and (self.vote == "majority" or self.T is not None)

    def ks(self) -> list[int]:
        return [self.k] if self.k is not None else sorted(set(self.k_grid))

    def temperatures(self) -> list[float | None]:
        if self.vote == "majority":
            return [None]
        return [self.T] if self.T is not None else sorted(set(self.T_grid))

    def validate(self) -> None:
        if self.vote not in VOTES:
            raise ConfigError(f"--vote {self.vote!r}: expected one of {', '.join(VOTES)}")
        for k in self.ks():
            if k < 1:
                raise ConfigError(f"--k {k}: the number of neighbours must be at least 1")
        for T in self.temperatures():
            if T is not None and not (math.isfinite(T) and T > 0):
                raise ConfigError(f"--T {T}: the temperature must be a positive number")
        if self.draws is not None and self.draws < 1:
            raise ConfigError(f"--draws must be at least 1, got {self.draws}")
        if self.protocol == "full" and self.draws not in (None, 1):
            raise ConfigError("--draws applies to --labels-per-class and --labels")
        if self.selection_draws is not None and not 1 <= self.selection_draws <= self.n_draws:
            raise ConfigError(f"--selection-draws must be between 1 and --draws ({self.n_draws})")
        if self.val_size is not None and self.val_size < 1:
            raise ConfigError(f"--val-size must be positive, got {self.val_size}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(k_grid=list(self.k_grid), T_grid=list(self.T_grid), protocol=self.protocol)
        return out


class KnnBank:
    """Labelled rows (standardised, unit length) that queries are compared with.

    Bank rows are ordered as ``rows`` lists them (all of ``x`` when None); equal similarities go to the earlier
    bank row. Within a :func:`~gan_probe.probe.rows.sharded_rows` block each rank embeds only its contiguous share
    of the bank rows, finds its own nearest rows for every query block and the ranks merge their candidates (one
    all-gather of similarities and bank positions per block), so the neighbours are the one-process ones.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, standardizer: Standardizer | None, device: str | torch.device,
                 rows: np.ndarray | None = None):
        self.device = resolve_device(device)
        self.standardizer = standardizer
        self.reducer = row_sharing.active()
        labels = np.asarray(y) if rows is None else np.asarray(y)[np.asarray(rows)]
        self.n = len(labels)
        self.start, end = self.reducer.share(self.n)
        # every label on every rank (small): classes and the labels of merged neighbours
        self.y = torch.as_tensor(labels, device=self.device)
        self.classes = torch.unique(self.y)
        self.label_index = torch.searchsorted(self.classes, self.y)
        span = slice(self.start, end)
        self.x = self._embed(x, span if rows is None else np.asarray(rows)[span])

    def _embed(self, x: np.ndarray, rows: np.ndarray | slice | None) -> torch.Tensor:
        """Standardised, unit-length float32 rows (read in chunks from a memory map); ``rows`` an index array,
        a contiguous slice, or None for every row."""
        if rows is None:
            rows = slice(0, len(x))
        n = len(rows) if not isinstance(rows, slice) else rows.stop - rows.start
        out = torch.empty(n, x.shape[1], dtype=torch.float32, device=self.device)
        for start in range(0, n, 4096):
            if isinstance(rows, slice):
                idx = slice(rows.start + start, min(rows.stop, rows.start + start + 4096))
            else:
                idx = np.asarray(rows[start:start + 4096])
            block = torch.as_tensor(np.array(x[idx], dtype=np.float32), device=self.device)
            if self.standardizer is not None:
                mean = torch.as_tensor(self.standardizer.mean, device=self.device, dtype=torch.float32)
                scale = torch.as_tensor(self.standardizer.scale, device=self.device, dtype=torch.float32)
                block = (block - mean) / scale
            out[start:start + len(block)] = torch.nn.functional.normalize(block, dim=1)
        return out

    def neighbours(self, queries: torch.Tensor, k: int, block_rows: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Similarities and bank positions of the ``k`` nearest bank rows of every query (most similar first;
        equal similarities in bank order)."""
        k = min(k, self.n)
        # the block depends on the whole bank, so that every rank makes the same blocks (one merge each)
        block = block_rows or max(1, BLOCK_ENTRIES // max(1, self.n))
        sims, idx = [], []
        for start in range(0, len(queries), block):
            s, i = _top(queries[start:start + block] @ self.x.T, min(k, len(self.x)))
            if self.reducer.enabled:
                s, i = self._merge(s, i + self.start, k)
            sims.append(s)
            idx.append(i)
        return torch.cat(sims), torch.cat(idx)

    def _merge(self, sims: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best of every rank's candidates: ranks hold ascending bank positions, so a stable sort of
        the candidates in rank order keeps equal similarities in bank order, as one process does."""
        missing = k - sims.shape[1]          # a share with fewer than k rows: padding that is never chosen
        if missing:
            sims = torch.cat([sims, sims.new_full((len(sims), missing), -math.inf)], 1)
            idx = torch.cat([idx, idx.new_full((len(idx), missing), self.n)], 1)
        all_sims = self.reducer.stack(sims).permute(1, 0, 2).reshape(len(sims), -1)
        all_idx = self.reducer.stack(idx).permute(1, 0, 2).reshape(len(idx), -1)
        order = torch.sort(all_sims, dim=1, descending=True, stable=True).indices[:, :k]
        return all_sims.gather(1, order), all_idx.gather(1, order)

    def predict(self, x: np.ndarray, ks: Sequence[int], temperatures: Sequence[float | None], vote: str,
                rows: np.ndarray | None = None, block_rows: int | None = None) -> dict[tuple, np.ndarray]:
        """Predicted labels of the rows of ``x`` for every ``(k, T)`` (``T`` None for the majority vote)."""
        queries = self._embed(x, rows)
        kmax = min(max(ks), self.n)
        sims, idx = self.neighbours(queries, kmax, block_rows)
        labels = self.label_index[idx]                                   # (q, kmax) class positions
        n_classes = len(self.classes)
        out: dict[tuple, np.ndarray] = {}
        for k in ks:
            kk = min(k, kmax)
            onehot = torch.nn.functional.one_hot(labels[:, :kk], n_classes).to(torch.float64)   # (q, k, classes)
            if vote == "majority":
                votes = onehot.sum(1)
                # ties go to the smallest label: argmax returns the first maximum
                out[(k, None)] = self.classes[votes.argmax(1)].cpu().numpy()
                continue
            for T in temperatures:
                weights = torch.exp(sims[:, :kk].to(torch.float64) / T)
                votes = (onehot * weights[:, :, None]).sum(1)
                out[(k, T)] = self.classes[votes.argmax(1)].cpu().numpy()
        return out


def _top(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of every row of ``s`` and their columns, largest first; equal entries in column
    order (``torch.topk`` leaves the order of equal values, and which of them make the cut, unspecified)."""
    if k == 0:
        return s[:, :0], torch.zeros((len(s), 0), dtype=torch.int64, device=s.device)
    top = torch.topk(s, k, dim=1)
    vals, cols = top.values, top.indices
    kth = vals[:, -1:]
    # rows with more entries equal to the k-th largest than topk kept: the first ones (by column) fill the places
    cut = torch.nonzero((s == kth).sum(1) > (vals == kth).sum(1))[:, 0]
    if len(cut):
        part, level = s[cut], s[cut] == kth[cut]
        room = k - (part > kth[cut]).sum(1, keepdim=True)
        keep = (part > kth[cut]) | (level & (torch.cumsum(level, 1, dtype=torch.int32) <= room))
        cols[cut] = torch.nonzero(keep)[:, 1].view(len(cut), k)
        vals[cut] = part.gather(1, cols[cut])
    cols, by_column = torch.sort(cols, dim=1)
    vals = vals.gather(1, by_column)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return vals.gather(1, order), cols.gather(1, order)


def _val_size(config: KnnConfig, n_train: int) -> int | None:
    from .protocols import SVHN_VAL_SIZE

    if config.val_size is not None:
        return config.val_size
    if config.fixed:
        return None
    if config.protocol == "svhn":
        return SVHN_VAL_SIZE if n_train >= 2 * SVHN_VAL_SIZE else max(1, n_train // 5)
    return max(1, int(round(0.1 * n_train)))


def run_knn_protocol(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                     config: KnnConfig, standardizer: Standardizer | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one protocol with the kNN classifier; returns the result fields (the SVM result's keys, with
    ``classifier: "knn"`` and the chosen ``k``/``T`` and ``knn_selection`` in place of ``C``)."""
    config.validate()
    start = time.perf_counter()
    from .protocols import checked_labels

    y_train, y_test, classes = checked_labels(y_train, y_test, "the kNN classifier")
    if config.standardize and standardizer is None:
        standardizer = fit_standardizer(x_train, split="train")
    if not config.standardize:
        standardizer = None
    val_size = _val_size(config, len(y_train))
    rest, val = (np.arange(len(y_train)), None)
    if val_size is not None:
        rest, val = stratified_holdout(y_train, val_size, config.seed)
    settings = [(k, T) for k in config.ks() for T in config.temperatures()]
    protocol = config.protocol
    n_draws, n_sel = config.n_draws, config.selection_draws or config.n_draws
    if protocol == "full":
        draws = [rest]
    elif protocol == FEW_LABELS:
        draws = [per_class_draw(y_train, rest, config.labels_per_class, config.seed, d) for d in range(n_draws)]
    else:
        draws = [spread_draw(y_train, rest, config.labels, config.seed, d) for d in range(n_draws)]
    val_acc = np.full((len(draws), len(settings)), np.nan)
    test_acc = np.full((len(draws), len(settings)), np.nan)
    ks, Ts = config.ks(), config.temperatures()
    chosen: tuple | None = settings[0] if config.fixed else None
    for d, rows in enumerate(draws):
        if chosen is None and d == n_sel:
            chosen = settings[_best(val_acc[:n_sel])]
        # the full protocol chooses on the bank minus the validation rows, then predicts with every training row
        bank = KnnBank(x_train, y_train, standardizer, config.device, rows)
        if val is not None and (chosen is None or protocol != "full"):
            for (k, T), pred in bank.predict(x_train, ks, Ts, config.vote, rows=val).items():
                val_acc[d, settings.index((k, T))] = float(np.mean(pred == y_train[val]))
        if protocol == "full":
            chosen = chosen or settings[_best(val_acc[:1])]
            bank = KnnBank(x_train, y_train, standardizer, config.device)
            k, T = chosen
            pred = bank.predict(x_test, [k], [T], config.vote)[(k, T)]
            test_acc[d, settings.index(chosen)] = float(np.mean(pred == y_test))
        else:
            for (k, T), pred in bank.predict(x_test, ks, Ts, config.vote).items():
                test_acc[d, settings.index((k, T))] = float(np.mean(pred == y_test))
        if log:
            where = settings.index(chosen) if chosen is not None else int(np.nanargmax(test_acc[d]))
            log(f"draw {d + 1}/{len(draws)}: test accuracy {test_acc[d, where]:.4f} at k={settings[where][0]}"
                + (f", T={settings[where][1]:g}" if settings[where][1] is not None else ""))
    if chosen is None:
        chosen = settings[_best(val_acc[:n_sel])]
    c = settings.index(chosen)
    accs = test_acc[:, c]
    mean = float(accs.mean())
    std = float(accs.std(ddof=1)) if len(accs) > 1 else 0.0
    curve = [{"k": k, "T": T, "val_accuracy": float(np.nanmean(val_acc[:n_sel, i]))}
             for i, (k, T) in enumerate(settings)] if val is not None else []
    err = 1 - mean
    return {
        "classifier": "knn", "protocol": protocol, "accuracy": mean, "accuracy_std": std, "error": err,
        "error_std": std, "std_ddof": 1,
        "error_interval_95": [err - 1.96 * std, err + 1.96 * std],
        "mean_error_interval_95": [err - 1.96 * std / math.sqrt(len(accs)), err + 1.96 * std / math.sqrt(len(accs))],
        "C": None, "k": chosen[0], "T": chosen[1], "vote": config.vote,
        "knn_selection": {"mode": "fixed" if config.fixed else "auto", "chosen": {"k": chosen[0], "T": chosen[1]},
                          "curve": curve, "val_size": 0 if val is None else int(len(val)), "selection_draws": n_sel,
                          "rule": "highest mean validation accuracy; ties go to the smaller k, then the smaller T"},
        "n_train": int(len(draws[0])) if protocol != "full" else int(len(y_train)), "n_val": 0 if val is None
        else int(len(val)), "n_test": int(len(y_test)), "n_features": int(x_train.shape[1]),
        "n_classes": int(len(classes)), "classes": classes.tolist(), "draws": len(draws),
        "labels_per_class": config.labels_per_class, "labels": config.labels,
        "accuracies": [float(a) for a in accs], "per_draw": [float(a) for a in accs],
        "seeds": {"seed": config.seed, "draws": [[config.seed, d] for d in range(len(draws))]},
        "solver": "knn", "solver_info": {"name": "knn", "device": str(resolve_device(config.device)),
                                         "similarity": "cosine of standardised rows" if config.standardize
                                         else "cosine", "vote": config.vote},
        "standardization": standardizer.summary() if standardizer is not None else None,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _best(val_acc: np.ndarray) -> int:
    """The setting with the best mean validation accuracy (settings are ordered by k, then T: ties go to the
    smaller)."""
    mean = np.nanmean(val_acc, axis=0)
    return int(np.flatnonzero(mean >= np.nanmax(mean) - 1e-12)[0])


def knn_store(features, config: KnnConfig, dataset_name: str | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """:func:`run_knn_protocol` on a feature store (a directory or a loaded store); the result file's object,
    in the SVM result's format (``gan-probe-svm`` with ``classifier: "knn"``) so reports read both alike."""
    from ..features.store import FeatureStore, check_finite, load_store
    from .results import result_object

    store = features if isinstance(features, FeatureStore) else load_store(features)
    standardizer = fit_standardizer(store.train_features, split="train") if config.standardize else None
    check_finite(store.test_features, "test features")
    out = run_knn_protocol(store.train_features, store.train_labels, store.test_features, store.test_labels, config,
                           standardizer=standardizer, log=log)
    out["dataset"] = dataset_name or store.meta.get("dataset") or store.root.name
    return result_object(out, store, config.to_dict(), config.seed)
