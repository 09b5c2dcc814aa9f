"""`gan-probe report`: paper-style tables and figures from result files."""
from __future__ import annotations

import argparse
import shlex
import sys

HELP = "paper-style tables and figures from result files"
DESCRIPTION = (
    "Build a report directory from result files: the DCGAN paper's CIFAR-10 table (accuracy with all labels / "
    "400 per class / max # of feature units), its SVHN table (test error with 1,000 labels) and a sample-quality "
    "table (IS, FID), each with the paper's published rows (cited) beside the measured ones; figures (label "
    "efficiency, C selection, training curves, sample grids); and a provenance section (commits, seeds, devices, "
    "data checksums, wall times, exact commands). RESULT is a result JSON (gan-probe svm / inception-score / fid "
    "--json), a training run directory, a directory holding them, or a PNG figure to include. DIR receives "
    "report.md, report.json, tables/*.tex, tables/*.csv and figures/*.png; it is replaced as a whole.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULT",
                   help="result JSON, run directory, directory of results, or PNG figure")
    p.add_argument("--out", required=True, metavar="DIR", help="report directory (created or replaced)")
    p.add_argument("--format", default="md,tex,csv", metavar="LIST",
                   help="comma-separated outputs: md (report.md), tex (tables/*.tex), csv (tables/*.csv)")
    p.add_argument("--title", default="gan-probe report", help="report title")
    p.add_argument("--no-published", action="store_true", help="leave the paper's published rows out of the tables")
    p.add_argument("--no-interpolation", action="store_true",
                   help="do not draw latent interpolations from run checkpoints")
    p.add_argument("--force", action="store_true",
                   help="rebuild an earlier report even when files were added to its directory (they are deleted)")


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_overwrite
    from ..report import build_report, parse_formats

    check_overwrite(args.out, "gan-probe-report", args.force)
    formats = parse_formats(args.format)
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        command = "gan-probe " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    else:  # called as a function (e.g. gan_probe.cli.main([...])): rebuild the command from the arguments
        flags = [f"--out {shlex.quote(args.out)}", f"--format {shlex.quote(args.format)}",
                 f"--title {shlex.quote(args.title)}"]
        flags += [f for f, on in (("--no-published", args.no_published),
                                  ("--no-interpolation", args.no_interpolation)) if on]
        command = "gan-probe report " + " ".join([*(shlex.quote(r) for r in args.results), *flags])
    report = build_report(args.results, args.out, formats=formats, title=args.title,
                          published=not args.no_published, interpolation=not args.no_interpolation, command=command)
    res = report.results
    print(f"report: {report.out_dir}/ ({len(res.probes)} probe, {len(res.samples)} sample-quality, "
          f"{len(res.runs)} run, {len(res.images)} image inputs; {len(report.tables)} tables, "
          f"{len(report.figures)} figures)")
    if "md" in formats:
        print(f"markdown: {report.markdown_path}")
    for note in report.notes:
        print(f"note: {note}")
    return 0
