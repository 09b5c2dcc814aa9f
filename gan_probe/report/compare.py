"""Compare the numbers of two reports: a committed one and the same command rerun (``report.json`` of each).

A CPU run repeats bit for bit on one machine and one software stack: the same processor model and instruction
set, the same torch thread count and library versions (all recorded in each result's provenance). There, every
number must be equal; a difference means the code changed what it computes, and the committed report is stale.
On another machine the last bits of floating-point products differ, a trained model drifts from them, and only
a tolerance can be checked; :func:`compare_reports` says which of the two comparisons it made.

>>> same = {"records": [{"kind": "probe", "path": "r/a.json", "accuracy": 0.9, "provenance": {}}]}
>>> compare_reports(same, same).identical
True
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GanProbeError

#: the record fields compared, per record kind (not the checkpoint's sha256: the file also records when and by which
#: command it was written, so it differs on every run; the trained weights show in every number downstream)
PROBE_NUMBERS = ("accuracy", "accuracy_std", "C", "per_draw", "n_train", "n_test", "n_features")
SAMPLE_NUMBERS = ("inception_score", "inception_score_std", "fid", "n_samples")
#: what must match for the exact comparison (from each record's ``provenance``)
MACHINE_KEYS = (("device", "cpu_model"), ("device", "cpu_capability"), ("device", "torch_threads"),
                ("device", "device"), ("versions", "torch"), ("versions", "numpy"), ("versions", "scipy"),
                ("versions", "scikit-learn"))
#: on another machine: the largest accepted difference of an accuracy (fraction) and relative difference of an FID
#: or Inception Score (a GAN trained with other rounding ends elsewhere; these bound "the same result")
ACCURACY_TOLERANCE = 0.03
SCORE_TOLERANCE = 0.10


@dataclass
class Comparison:
    """What :func:`compare_reports` found: ``differences`` (one line each), ``exact`` (same machine and stack,
    so every number had to be equal), ``machine`` (the fingerprints when they differ) and ``ok``."""

    differences: list[str] = field(default_factory=list)
    beyond_tolerance: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    exact: bool = True
    machine: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences and not self.missing

    @property
    def ok(self) -> bool:
        if self.missing:
            return False
        return self.identical if self.exact else not self.beyond_tolerance

    def summary(self) -> str:
        lines = []
        if self.exact:
            lines.append("same machine and software stack as the committed report: every number must be equal")
        else:
            lines.append("another machine or software stack than the committed report's (" + "; ".join(self.machine)
                         + f"): numbers compared within {ACCURACY_TOLERANCE:.0%} accuracy and "
                           f"{SCORE_TOLERANCE:.0%} relative FID / IS")
        lines += [f"missing: {m}" for m in self.missing]
        lines += [f"differs: {d}" for d in self.differences]
        lines += [f"beyond tolerance: {d}" for d in self.beyond_tolerance]
        lines.append("identical" if self.identical else ("within tolerance" if self.ok else "NOT the same"))
        return "\n".join(lines)


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    """``report.json`` of a report directory (or the file itself)."""
    path = Path(path)
    path = path / "report.json" if path.is_dir() else path
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GanProbeError(f"{path}: not a readable report.json ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("records"), list):
        raise GanProbeError(f"{path}: not a gan-probe report (no 'records' list)")
    return obj


def _numbers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for rec in report["records"]:
        kind = rec.get("kind")
        keys = PROBE_NUMBERS if kind == "probe" else SAMPLE_NUMBERS if kind == "sample_quality" else None
        if keys is None or not rec.get("path"):
            continue
        out[Path(rec["path"]).name] = {k: rec.get(k) for k in keys}
    return out


def _fingerprint(report: dict[str, Any]) -> dict[str, Any]:
    for rec in report["records"]:
        prov = rec.get("provenance") or {}
        if prov.get("device"):
            return {f"{a}.{b}": (prov.get(a) or {}).get(b) for a, b in MACHINE_KEYS}
    return {}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _within(key: str, a: Any, b: Any) -> bool:
    if not isinstance(a, (int, float, list)) or not isinstance(b, (int, float, list)):
        return False  # missing values: no tolerance
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_within(key, x, y) for x, y in zip(a, b)))
    if key in ("n_train", "n_test", "n_features", "n_samples"):
        return a == b
    if key in ("accuracy", "accuracy_std"):
        return abs(a - b) <= ACCURACY_TOLERANCE
    if key == "C":
        return True  # a neighbouring C on the grid is the same result within the accuracy tolerance
    return abs(a - b) <= SCORE_TOLERANCE * max(abs(a), abs(b))


def compare_reports(committed: dict[str, Any] | str | os.PathLike,
                    regenerated: dict[str, Any] | str | os.PathLike) -> Comparison:
    """Compare every number of the committed report with the regenerated one's (records matched by file name)."""
    committed = committed if isinstance(committed, dict) else read_report(committed)
    regenerated = regenerated if isinstance(regenerated, dict) else read_report(regenerated)
    result = Comparison()
    fa, fb = _fingerprint(committed), _fingerprint(regenerated)
    known = fa and all(v is not None for v in fa.values())
    if not known or fa != fb:
        result.exact = False
        result.machine = ([f"{k}: {fa.get(k)} vs {fb.get(k)}" for k in sorted(set(fa) | set(fb))
                           if fa.get(k) != fb.get(k)] or ["the committed report does not record its processor"])
    a, b = _numbers(committed), _numbers(regenerated)
    result.missing = [f"{name}: in one report only" for name in sorted(set(a) ^ set(b))]
    for name in sorted(set(a) & set(b)):
        for key, va in a[name].items():
            vb = b[name].get(key)
            if _equal(va, vb):
                continue
            line = f"{name} {key}: committed {va!r}, regenerated {vb!r}"
            result.differences.append(line)
            if not _within(key, va, vb):
                result.beyond_tolerance.append(line)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m gan_probe.report.compare COMMITTED REGENERATED``: print the comparison; exit 1 unless it holds."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m gan_probe.report.compare",
                                     description="Compare the numbers of a committed report with a regenerated one.")
    parser.add_argument("committed", help="the committed report directory (or its report.json)")
    parser.add_argument("regenerated", help="the report directory the same command wrote again")
    args = parser.parse_args(argv)
    try:
        result = compare_reports(args.committed, args.regenerated)
    except GanProbeError as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
