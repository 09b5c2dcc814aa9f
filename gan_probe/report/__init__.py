"""Paper-style reports: the DCGAN paper's tables with published and measured rows, figures, provenance.

>>> from gan_probe.report import build_report, load_results, published_rows
>>> [r.model for r in published_rows("svhn")][-2:]
['DCGAN + L2-SVM', 'Supervised CNN, same architecture (validation error)']
>>> report = build_report(["results/", "runs/dcgan"], "reports/example", formats="md,csv")   # doctest: +SKIP
"""
from __future__ import annotations

from .build import FORMATS, FigureRef, Report, build_figures, build_report, parse_formats
from .published import PublishedRow, published_rows
from .results import (ImageInput, ProbeResult, ResultError, Results, RunDir, SampleQualityResult, load_result_file,
                      load_results, load_run_dir)
from .series import label_efficiency_data, published_label_efficiency
from .assemble import build_tables
from .tables import (Table, cifar10_table, format_pm, latex_escape, probe_table, sample_quality_table,
                     svhn_table, to_latex, to_markdown, write_csv)

__all__ = [
    "FORMATS", "FigureRef", "Report", "build_figures", "build_report", "parse_formats",
    "PublishedRow", "published_rows",
    "ImageInput", "ProbeResult", "ResultError", "Results", "RunDir", "SampleQualityResult", "load_result_file",
    "load_results", "load_run_dir",
    "label_efficiency_data", "published_label_efficiency",
    "Table", "build_tables", "cifar10_table", "format_pm", "latex_escape", "probe_table", "sample_quality_table",
    "svhn_table", "to_latex", "to_markdown", "write_csv",
]
