"""The probe protocols' names: the one spelling that results, pipeline configs and reports use, and the older
spelling still read from result files written before it (no torch or NumPy here, so that reports stay light).

>>> protocol_name("few-labels"), protocol_name("labels-per-class"), protocol_name("full")
('few-labels', 'few-labels', 'full')
"""
from __future__ import annotations

#: all labels; K labels per class over random draws (the paper's Table 1, right column); the SVHN protocol
PROTOCOLS = ("full", "few-labels", "svhn")
FULL, FEW_LABELS, SVHN = PROTOCOLS
#: names written by earlier versions: ``gan-probe svm`` named the few-labels protocol after its flag
LEGACY_NAMES = {"labels-per-class": FEW_LABELS}


def protocol_name(name: str | None) -> str | None:
    """The current name of a protocol named ``name`` (a current or an earlier name); anything else unchanged."""
    return LEGACY_NAMES.get(name, name) if isinstance(name, str) else name
