"""Paper-style reports: the DCGAN paper's tables with published and measured rows, figures, provenance.

>>> from gan_probe.report import load_results, published_rows
>>> [r.model for r in published_rows("svhn")][-2:]
['DCGAN + L2-SVM', 'Supervised CNN, same architecture (validation error)']
"""
from __future__ import annotations

from .published import PublishedRow, published_rows
from .results import (ImageInput, ProbeResult, ResultError, Results, RunDir, SampleQualityResult, load_result_file,
                      load_results, load_run_dir)
from .tables import (Table, build_tables, cifar10_table, format_pm, latex_escape, probe_table, sample_quality_table,
                     svhn_table, to_latex, to_markdown, write_csv)

__all__ = [
    "PublishedRow", "published_rows",
    "ImageInput", "ProbeResult", "ResultError", "Results", "RunDir", "SampleQualityResult", "load_result_file",
    "load_results", "load_run_dir",
    "Table", "build_tables", "cifar10_table", "format_pm", "latex_escape", "probe_table", "sample_quality_table",
    "svhn_table", "to_latex", "to_markdown", "write_csv",
]
