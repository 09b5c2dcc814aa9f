import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from gan_probe.cli import main
from gan_probe.report import build_report, load_results
from report_synthetic import fid, inception, probe, run_dir, write


@pytest.fixture(autouse=True)
def _no_viz(monkeypatch):
    monkeypatch.setitem(sys.modules, "gan_probe.viz", None)


def _inputs(tmp_path):
    res = tmp_path / "results"
    write(res / "dcgan_full.json", probe("dcgan", "full", 0.8283, None))
    write(res / "dcgan_400.json", probe("dcgan", "few-labels", 0.738, 0.004))
    write(res / "dcgan_100.json", probe("dcgan", "few-labels", 0.69, 0.006, labels_per_class=100))
    write(res / "kmeans_400.json", probe("kmeans", "few-labels", 0.66, 0.007))
    write(res / "random_400.json", probe("random-d", "few-labels", 0.51, 0.009))
    write(res / "pixels_400.json", probe("pixels", "few-labels", 0.33, 0.01))
    write(res / "svhn" / "dcgan.json", probe("dcgan", "svhn", 0.769, 0.0071, labels_per_class=None, dataset="svhn",
                                             n_train=1000))
    write(res / "is.json", inception())
    write(res / "fid.json", fid())
    write(res / "notes.json", {"comment": "not a result"})  # skipped with a note
    feats = res / "feats"  # a feature store inside the results directory is not read
    write(feats / "meta.json", {"source": "dcgan"})
    np.save(feats / "train_features.npy", np.zeros((2, 2), np.float32))
    run = run_dir(tmp_path / "runs" / "dcgan_digits")
    return res, run


def test_end_to_end_report(tmp_path, capsys):
    res, run = _inputs(tmp_path)
    out = tmp_path / "report"
    assert main(["report", str(res), str(run), "--out", str(out), "--title", "Test report"]) == 0
    printed = capsys.readouterr().out
    assert "7 probe, 2 sample-quality, 1 run" in printed and "notes.json: skipped (not a result file)" in printed
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted([
        "report.md", "report.json",
        *(f"tables/{n}.{ext}" for n in ("cifar10", "svhn", "sample_quality", "probes") for ext in ("tex", "csv")),
        "figures/label_efficiency_cifar10.png", "figures/c_selection_cifar10.png", "figures/c_selection_svhn.png",
        "figures/training_curves.png", "figures/samples_dcgan_digits.png"])
    md = (out / "report.md").read_text()
    assert md.startswith("# Test report\n")
    for link in re.findall(r"\]\(([^)]+)\)", md):  # every relative link resolves
        assert (out / link).is_file(), link
    assert "| DCGAN + L2-SVM | 82.8% | 73.8% (±0.4%) | - | 512 | published |" in md
    assert "| DCGAN (paper32) + L2-SVM | 82.8% | 73.8% (±0.4%) | - | 512 | measured | [a] |" in md
    assert "| Random-weight D (paper32) + L2-SVM | - | 51.0% (±0.9%) | - | 512 | measured |" in md
    # provenance: commands of every result, data checksums, wall time per stage, seeds
    prov = md.split("## Provenance", 1)[1]
    for text in ("gan-probe svm feats/dcgan --protocol full", "gan-probe extract --checkpoint runs/a/checkpoint.pt",
                 "gan-probe inception-score runs/a/checkpoint.pt", "gan-probe fid runs/a/checkpoint.pt", "a" * 64,
                 "c" * 64, "| svm (full) |", "| train |", "seed=0", "seed=3", "gan-probe report ",
                 "| data: digits train, n=1347 | " + "d" * 64):
        assert text in prov, text
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "gan-probe-report" and report["title"] == "Test report"
    kinds = [r["kind"] for r in report["records"]]
    assert kinds.count("probe") == 7 and kinds.count("sample_quality") == 2 and kinds.count("run") == 1
    assert [t["name"] for t in report["tables"]] == ["cifar10", "svhn", "sample_quality", "probes"]
    back = pd.read_csv(out / "tables" / "cifar10.csv")
    assert back["source"].tolist() == ["published"] * 5 + ["measured"] * 4
    assert "\\toprule" in (out / "tables" / "cifar10.tex").read_text()


def test_formats_and_clean_overwrite(tmp_path):
    res, run = _inputs(tmp_path)
    out = tmp_path / "report"
    build_report([res / "dcgan_400.json", res / "is.json", run], out)
    assert (out / "figures" / "samples_dcgan_digits.png").is_file()
    assert (out / "tables" / "sample_quality.tex").is_file()
    (out / "figures" / "stale.png").write_bytes(b"old")
    report = build_report([res / "dcgan_400.json"], out, formats="csv", published=False)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["figures/c_selection_cifar10.png", "report.json", "tables/cifar10.csv", "tables/probes.csv"]
    assert report.out_dir == out and not list(tmp_path.glob(".report*"))  # no staging directories left
    assert pd.read_csv(out / "tables" / "cifar10.csv")["source"].tolist() == ["measured"]
    build_report([res / "dcgan_400.json"], out, formats=["md"])
    assert (out / "report.md").is_file() and not (out / "tables").exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o755), (0o027, 0o750)])
def test_the_report_directory_gets_the_usual_permissions_not_mkdtemps(tmp_path, umask, mode):
    import os
    import stat

    res, _ = _inputs(tmp_path)
    before = os.umask(umask)
    try:
        build_report([res / "dcgan_400.json"], tmp_path / "report", formats="csv")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "report").stat().st_mode) == mode


def test_a_killed_builds_staging_directories_are_removed_by_the_next_build(tmp_path):
    res, _ = _inputs(tmp_path)
    out = tmp_path / "report"
    for name in (".report.tmp-abc123", ".report.old-def456"):   # what a build killed mid-way leaves
        (tmp_path / name / "figures").mkdir(parents=True)
        (tmp_path / name / "figures" / "x.png").write_bytes(b"partial")
    other = tmp_path / ".report2.tmp-xyz"                          # another report's: not ours to remove
    other.mkdir()
    build_report([res / "dcgan_400.json"], out, formats="csv")
    assert sorted(p.name for p in tmp_path.glob(".report*")) == [".report2.tmp-xyz"]
    assert (out / "report.json").is_file()


def test_refuses_to_replace_a_foreign_directory(tmp_path, capsys):
    res, _ = _inputs(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert main(["report", str(res), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-probe report: error: --out ") and "not a gan-probe report" in err
    assert len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    assert main(["report", str(res), "--out", str(res)]) == 2  # would replace its own input
    assert "would be replaced" in capsys.readouterr().err


@pytest.mark.parametrize("name, content, message", [
    ("broken.json", "{not json", "not valid JSON"),
    ("list.json", "[1, 2]", "expected a JSON object, got a list"),
    ("other.json", json.dumps({"foo": 1, "bar": 2}), "not a gan-probe result"),
    ("percent.json", json.dumps({"protocol": "full", "accuracy": 82.8}), "outside [0, 1]"),
    ("metric.json", json.dumps({"metric": "kid", "value": 0.1}), "not a gan-probe result"),
    ("badfid.json", json.dumps({"metric": "fid", "value": "low"}), "must be a finite number"),
    ("notes.txt", "hello", "unsupported input"),
    ("fake.png", "not a png", "not a PNG image"),
])
def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "out"
    assert main(["report", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"gan-probe report: error: {path}") and message in err, err
    assert not out.exists()


def test_other_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no result JSONs or run directories found" in capsys.readouterr().err
    write(tmp_path / "ok.json", probe())
    assert main(["report", str(tmp_path / "ok.json"), "--out", str(tmp_path / "o"), "--format", "md,pdf"]) == 2
    assert "--format" in capsys.readouterr().err
    run = run_dir(tmp_path / "run")
    with open(run / "log.csv", "a") as fh:
        fh.write("21,2.1,oops,1,1,1,1,1\n22,2.2,1.0,1.0,0.5,0.5,100,11\n")
    assert main(["report", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'log.csv'}: line 22 holds a non-numeric value" in err
    assert not (tmp_path / "o").exists()


def test_incomplete_last_log_line_is_left_out(tmp_path):
    run = run_dir(tmp_path / "run", with_samples=False)
    with open(run / "log.csv", "a") as fh:
        fh.write("21,2.1,0.8,1.")  # a run still writing its log
    res = load_results([run])
    assert len(res.runs[0].log) == 20 and res.runs[0].log[-1]["step"] == 20.0
    assert res.notes == [f"{run / 'log.csv'}: line 22 is incomplete (a run still writing?); left out"]


def test_python_api(tmp_path):
    import gan_probe.report as api

    assert {"build_report", "load_results", "published_rows", "label_efficiency_data"} <= set(api.__all__)
    write(tmp_path / "r" / "a.json", probe())
    results = load_results([tmp_path / "r"])
    report = build_report(results, tmp_path / "out", formats=("md",), command="custom command")
    assert report.markdown_path.is_file() and "custom command" in report.markdown_path.read_text()
    assert [t.name for t in report.tables] == ["cifar10", "probes"]


def test_training_runs_report_the_device_they_used_not_the_configured_auto(tmp_path):
    from gan_probe.report.provenance_block import results_frame

    runs = []
    for name, extra in (("recorded", {"provenance": {"device": {"device": "cuda:0", "gpu": "NVIDIA H200"}}}),
                        ("older", {"distributed": {"rank_device": "cuda:0"}}),
                        ("oldest", {})):
        run = run_dir(tmp_path / name, with_samples=False)
        config = json.loads((run / "config.json").read_text())
        config["train"]["device"] = "auto"
        (run / "config.json").write_text(json.dumps({**config, **extra}))
        runs.append(run)
    frame = results_frame(load_results(runs))
    devices = {model.split(" ")[0]: device for model, device in zip(frame["Model"], frame["Device"])}
    assert devices == {"recorded": "cuda:0 (NVIDIA H200)", "older": "cuda:0", "oldest": "auto"}
