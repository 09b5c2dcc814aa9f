"""The paper's published numbers, with citations, read from the bundled ``published.csv``.

Values are kept exactly as printed (``decimals`` records the printed precision, so 82.0 stays "82.0%").
Percentages are in percent (80.6 means 80.6 %); Inception Scores are plain numbers.

>>> rows = published_rows("cifar10")
>>> [(r.model, r.protocol, r.value, r.std) for r in rows][:2]
[('1 Layer K-means', 'full', 80.6, None), ('1 Layer K-means', 'few-labels', 63.7, 0.7)]
>>> rows[0].citation
'Radford, Metz & Chintala, ICLR 2016, Table 1'
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources

TABLES = ("cifar10", "svhn", "sample_quality")
FIELDS = ("table", "order", "model", "dataset", "protocol", "labels_per_class", "metric", "value", "std",
          "max_feature_units", "citation", "original", "note")


@dataclass(frozen=True)
class PublishedRow:
    """One published number: ``value`` (and ``std``) as printed in ``citation``."""

    table: str
    order: int
    model: str
    dataset: str
    protocol: str | None
    labels_per_class: int | None
    metric: str  # "accuracy" | "error" (percent) | "inception_score" | "fid"
    value: float
    std: float | None
    decimals: int
    std_decimals: int | None
    max_feature_units: int | None
    citation: str
    original: str | None  # the work the number comes from, when the paper quotes it
    note: str | None

    @property
    def reference(self) -> str:
        """The citation, plus the original work when the paper quotes someone else's number."""
        return self.citation + (f"; {self.original}" if self.original else "")

    def to_dict(self) -> dict:
        return asdict(self)


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _parse(text: str) -> list[PublishedRow]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != FIELDS:
        raise ValueError(f"published.csv: expected columns {FIELDS}, got {reader.fieldnames}")
    rows = []
    for rec in reader:
        def opt(key: str) -> str | None:
            return rec[key].strip() or None

        std = opt("std")
        lpc, units = opt("labels_per_class"), opt("max_feature_units")
        rows.append(PublishedRow(
            table=rec["table"], order=int(rec["order"]), model=rec["model"], dataset=rec["dataset"],
            protocol=opt("protocol"), labels_per_class=None if lpc is None else int(lpc), metric=rec["metric"],
            value=float(rec["value"]), std=None if std is None else float(std), decimals=_decimals(rec["value"]),
            std_decimals=None if std is None else _decimals(std),
            max_feature_units=None if units is None else int(units), citation=rec["citation"],
            original=opt("original"), note=opt("note")))
    return rows


@lru_cache(maxsize=1)
def _all_rows() -> tuple[PublishedRow, ...]:
    text = resources.files(__package__).joinpath("published.csv").read_text(encoding="utf-8")
    return tuple(_parse(text))


def published_rows(table: str | None = None) -> list[PublishedRow]:
    """The published rows of one table ("cifar10", "svhn", "sample_quality"), or of all tables."""
    if table is not None and table not in TABLES:
        raise ValueError(f"unknown published table {table!r}; expected one of {', '.join(TABLES)}")
    return [r for r in _all_rows() if table is None or r.table == table]
