"""The report's provenance section: per-result commit, seeds, device and versions, data and checkpoint
checksums, wall time per stage and the exact commands, all read from the result files' ``provenance`` blocks.

>>> device_summary({"device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3"})
'cuda:0 (NVIDIA H100 80GB HBM3)'
>>> seeds_summary({"seed": 0, "draw_seed": 1})
'seed=0, draw_seed=1'
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..provenance import sha256_file, sha256_json
from .results import ProbeResult, Results

MISSING = "-"


def device_summary(device: Any) -> str:
    if isinstance(device, str):
        return device or MISSING
    if not isinstance(device, dict) or not device:
        return MISSING
    name = str(device.get("device") or "?")
    if device.get("gpu"):
        return f"{name} ({device['gpu']})"
    bits = []
    if device.get("torch_threads") is not None:
        bits.append(f"{device['torch_threads']} threads")
    if device.get("cpu_count") is not None:
        bits.append(f"{device['cpu_count']} CPUs")
    return name + (f" ({', '.join(bits)})" if bits else "")


def seeds_summary(seeds: Any) -> str:
    if isinstance(seeds, dict) and seeds:
        return ", ".join(f"{k}={v}" for k, v in seeds.items())
    if isinstance(seeds, (int, str)):
        return str(seeds)
    return MISSING


def _prov(record: Any) -> dict:
    return record.provenance if isinstance(getattr(record, "provenance", None), dict) else {}


def _feature_prov(r: ProbeResult) -> dict:
    p = r.features_meta.get("provenance")
    return p if isinstance(p, dict) else {}


def _run_device(config: dict) -> str:
    """The device a training run used: its recorded provenance, else the rank device (runs written before
    config.json carried provenance), else the configured value (which may be "auto")."""
    prov = config.get("provenance")
    if isinstance(prov, dict) and prov.get("device"):
        return device_summary(prov["device"])
    dist = config.get("distributed")
    if isinstance(dist, dict) and dist.get("rank_device"):
        return str(dist["rank_device"])
    return str((config.get("train") or {}).get("device", MISSING))


def results_frame(results: Results) -> pd.DataFrame:
    """One row per result: file, kind, label, created, gan-probe commit, device, seeds."""
    rows = []
    for r in [*results.probes, *results.samples]:
        p = _prov(r)
        rows.append({"File": r.path, "Kind": "linear probe" if r.kind == "probe" else "sample quality",
                     "Model": r.label, "Created": p.get("created") or MISSING,
                     "gan-probe commit": str(p.get("gan_probe_commit") or MISSING),
                     "Device": device_summary(p.get("device")), "Seeds": seeds_summary(p.get("seeds"))})
    for run in results.runs:
        rows.append({"File": run.path, "Kind": "training run", "Model": run.label, "Created": MISSING,
                     "gan-probe commit": MISSING, "Device": _run_device(run.config),
                     "Seeds": seeds_summary({"seed": run.seed} if run.seed is not None else None)})
    return pd.DataFrame(rows, columns=["File", "Kind", "Model", "Created", "gan-probe commit", "Device", "Seeds"])


def checksums_frame(results: Results) -> pd.DataFrame:
    """Data splits, checkpoints and input files with their full sha256, de-duplicated."""
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()

    def add(item: str, sha: Any, used_by: str) -> None:
        if not sha:
            return
        key = (item, str(sha))
        if key in seen:
            for row in rows:
                if (row["Item"], row["sha256"]) == key and used_by not in row["Used by"]:
                    row["Used by"] += f", {used_by}"
            return
        seen.add(key)
        rows.append({"Item": item, "sha256": str(sha), "Used by": used_by})

    for r in results.probes:
        for split, info in r.data.items():
            n = f", n={info['n']}" if info.get("n") is not None else ""
            add(f"data: {info.get('dataset') or r.dataset or '?'} {split}{n}", info.get("sha256"), r.path)
        if r.checkpoint_sha256:
            add(f"checkpoint: {r.checkpoint or '?'}", r.checkpoint_sha256, r.path)
        for name, sha in (_prov(r).get("sha256") or {}).items():
            add(f"file: {name}", sha, r.path)
    for run in results.runs:
        data = run.config.get("data")
        if isinstance(data, dict) and data.get("sha256"):
            n = f", n={data['n']}" if data.get("n") is not None else ""
            add(f"data: {data.get('dataset') or '?'} {data.get('split') or ''}{n}".replace(" ,", ","), data["sha256"],
                run.path)
        if run.checkpoint:
            add(f"checkpoint: {run.checkpoint}", sha256_file(run.checkpoint), run.path)
    for s in results.samples:
        for name, sha in (_prov(s).get("sha256") or {}).items():
            add(f"file: {name}", sha, s.path)
        if isinstance(s.source, dict) and s.source.get("sha256"):
            kind = s.source.get("kind")
            what = f"checkpoint: {s.source.get('path')}" if kind == "checkpoint" and s.source.get("path") \
                else f"samples: {s.label}"
            add(what, s.source.get("sha256"), s.path)
    return pd.DataFrame(rows, columns=["Item", "sha256", "Used by"])


def stage_times_frame(results: Results) -> pd.DataFrame:
    """Wall time per stage from the ``seconds`` fields (training: the last log.csv row)."""
    rows = []
    for run in results.runs:
        if run.seconds is not None:
            rows.append({"Stage": "train", "Model": run.label, "Seconds": run.seconds, "File": f"{run.path}/log.csv"})
    done_features: set[str] = set()
    for r in results.probes:
        fsec = r.features_meta.get("seconds")
        fkey = str(r.features_meta.get("key") or sha256_json(r.features_meta))
        if fkey not in done_features:
            done_features.add(fkey)
            parts = fsec.items() if isinstance(fsec, dict) else [(None, fsec)]  # k-means: {"dictionary", "encode"}
            for part, value in parts:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    stage = f"features ({r.family}{f': {part}' if part else ''})"
                    rows.append({"Stage": stage, "Model": r.label, "Seconds": float(value), "File": r.path})
        if r.seconds is not None:
            rows.append({"Stage": f"svm ({r.protocol})", "Model": r.label, "Seconds": r.seconds, "File": r.path})
    for s in results.samples:
        if s.seconds is not None:
            stage = " + ".join(m for m, v in (("inception score", s.inception_score), ("fid", s.fid)) if v is not None)
            rows.append({"Stage": stage, "Model": s.label, "Seconds": s.seconds, "File": s.path})
    return pd.DataFrame(rows, columns=["Stage", "Model", "Seconds", "File"])


def commands(results: Results) -> list[tuple[str, str]]:
    """(file, command) for every recorded command: feature extraction first, then the result's own."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for r in results.probes:
        for where, p in ((f"{r.path} (features)", _feature_prov(r)), (r.path, _prov(r))):
            cmd = p.get("command")
            if isinstance(cmd, str) and cmd and cmd not in seen:
                seen.add(cmd)
                out.append((where, cmd))
    for s in results.samples:
        cmd = _prov(s).get("command")
        if isinstance(cmd, str) and cmd and cmd not in seen:
            seen.add(cmd)
            out.append((s.path, cmd))
    return out


def versions_summary(results: Results) -> list[tuple[str, str]]:
    """Distinct version sets: [(which results, "python 3.12, torch 2.x, ...")]."""
    groups: dict[str, list[str]] = {}
    for r in [*results.probes, *results.samples]:
        v = _prov(r).get("versions")
        if isinstance(v, dict) and v:
            text = ", ".join(f"{k} {val}" for k, val in v.items())
            groups.setdefault(text, []).append(r.path)
    return [(", ".join(files), text) for text, files in groups.items()]


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none recorded_\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def provenance_markdown(results: Results, report: dict[str, Any]) -> str:
    """The Markdown provenance section (``report``: this report's own created/commit/command/versions)."""
    out = ["## Provenance", "",
           f"This report: created {report.get('created', MISSING)} with gan-probe "
           f"{report.get('version', MISSING)} (commit {report.get('gan_probe_commit') or MISSING}).", "",
           "Command:", "", "```", str(report.get("command") or MISSING), "```", "",
           "### Results", "", _md_table(results_frame(results)),
           "### Data and checkpoint checksums (sha256)", "", _md_table(checksums_frame(results)),
           "### Wall time per stage", "", _md_table(stage_times_frame(results)),
           "### Software versions", ""]
    versions = versions_summary(results)
    if versions:
        out += [f"- {text} ({files})" if len(versions) > 1 else f"- {text}" for files, text in versions]
    else:
        out.append("_none recorded_")
    out += ["", "### Commands", ""]
    cmds = commands(results)
    if cmds:
        out.append("```")
        for where, cmd in cmds:
            out += [f"# {where}", cmd]
        out.append("```")
    else:
        out.append("_none recorded_")
    if results.runs:
        out += ["", "Training runs record their options in config.json (not the command line): "
                + ", ".join(f"{r.path}/config.json" for r in results.runs) + "."]
    return "\n".join(out) + "\n"


def provenance_dict(results: Results) -> dict[str, Any]:
    """The same information as plain data for report.json."""
    return {"results": results_frame(results).to_dict(orient="records"),
            "checksums": checksums_frame(results).to_dict(orient="records"),
            "stage_seconds": stage_times_frame(results).to_dict(orient="records"),
            "commands": [{"file": f, "command": c} for f, c in commands(results)],
            "versions": [{"files": f, "versions": v} for f, v in versions_summary(results)]}
