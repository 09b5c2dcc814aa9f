"""The report's tables in report order: the paper-style tables, the representation comparison, the per-layer
profile, sample quality, every probe result and the online probe (each module builds its own; this one puts them
together, so that none of them imports another's)."""
from __future__ import annotations

from typing import Mapping, Sequence

from .comparison import comparison_table
from .layers import layer_profile_table, layer_profiles, profile_members
from .results import ProbeResult, RunDir, SampleQualityResult
from .tables import Table, cifar10_table, probe_curve_table, probe_table, sample_quality_table, svhn_table


def build_tables(probes: Sequence[ProbeResult], samples: Sequence[SampleQualityResult],
                 published: bool = True, runs: Sequence[RunDir] = (),
                 skipped: Mapping[str, str] | None = None) -> list[Table]:
    """All tables that have at least one measured row, in report order. The results of a per-layer profile
    (:mod:`gan_probe.report.layers`) get their own table instead of rows in the paper-style ones. Published
    sample-quality rows appear only for the datasets the results are about; ``skipped``: see
    :func:`sample_quality_table`."""
    profiles = layer_profiles(probes)
    members = profile_members(profiles)
    paper = [r for r in probes if id(r) not in members]
    datasets = {r.dataset for r in probes if r.dataset} | {s.dataset for s in samples if s.dataset}
    candidates = [cifar10_table(paper, published), svhn_table(paper, published), comparison_table(probes),
                  layer_profile_table(profiles),
                  sample_quality_table(samples, published, datasets or None, skipped), probe_table(probes),
                  probe_curve_table(runs)]
    return [t for t in candidates if t is not None]
