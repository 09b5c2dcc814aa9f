"""`gan-probe svm` end to end on feature stores written in the official format."""
import json

import numpy as np
import pytest

from gan_probe.cli import main
from gan_probe.features.store import features_path

from feature_stores import make_store

REQUIRED = {"dataset", "protocol", "accuracy", "accuracy_std", "error", "C", "n_train", "n_test", "n_features",
            "draws", "solver", "seconds", "C_selection", "accuracies", "per_draw", "features_meta", "seeds",
            "provenance"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_json_result_has_the_documented_fields(tmp_path, capsys):
    store = make_store(tmp_path / "feats")
    out = tmp_path / "res.json"
    assert main(["svm", "--features", str(store), "--C-grid", "0.01,1", "--val-size", "9", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "toyset" in printed and "test accuracy" in printed and f"wrote {out}" in printed
    res = json.loads(out.read_text())
    assert REQUIRED <= set(res)
    assert res["dataset"] == "toyset" and res["protocol"] == "full"
    assert 0.0 <= res["accuracy"] <= 1.0 and res["error"] == pytest.approx(1 - res["accuracy"])
    assert res["features_meta"] == json.loads((store / "meta.json").read_text())
    assert res["C_selection"]["grid"] == [0.01, 1.0] and res["C"] in (0.01, 1.0)
    assert [p["C"] for p in res["C_selection"]["curve"]] == [0.01, 1.0]
    assert res["n_train"] == 60 and res["n_val"] == 9 and res["n_test"] == 20 and res["n_features"] == 12
    assert res["provenance"]["seeds"] == {"seed": 0} and "versions" in res["provenance"]


def test_settle_flag_reaches_the_grid_and_is_recorded(tmp_path):
    store = make_store(tmp_path / "feats")
    results = {}
    for settle in ("0", "1"):
        out = tmp_path / f"settle{settle}.json"
        assert main(["svm", "--features", str(store), "--C-grid", "0.01,1", "--val-size", "9", "--method", "primal",
                     "--settle", settle, "--json", str(out), "--no-progress"]) == 0
        results[settle] = json.loads(out.read_text())
    assert results["0"]["config"]["settle"] == 0 and results["1"]["config"]["settle"] == 1
    assert "grid_fits" not in results["0"]["C_selection"]
    assert "at most 0 of its 9 validation predictions changed in each of 1 Newton steps" in \
        results["1"]["C_selection"]["grid_fits"]
    grid_fits = [f for f in results["1"]["fits"] if f["rows"] == "train minus validation"]
    assert all(len(f["val_prediction_changes"]) == f["iterations"] for f in grid_fits if "stopped" in f)
    assert results["1"]["C"] == results["0"]["C"] and results["1"]["accuracy"] == results["0"]["accuracy"]


def test_each_fit_of_the_grid_is_logged_as_it_ends(tmp_path, capsys):
    """A run whose stderr is a file (a batch job) still says how each C went, with the curve's own numbers."""
    store = make_store(tmp_path / "feats")
    out = tmp_path / "res.json"
    assert main(["svm", "--features", str(store), "--C-grid", "0.001,0.1,10", "--val-size", "9",
                 "--json", str(out), "--no-progress"]) == 0   # the fit lines do not depend on progress bars
    lines = capsys.readouterr().err.strip().splitlines()
    res = json.loads(out.read_text())
    curve = res["C_selection"]["curve"]
    assert len(lines) == 4
    for line, point, fit in zip(lines, curve, res["fits"]):
        assert line.startswith(f"C={point['C']:g}: validation accuracy {point['val_accuracy']:.2%}, ")
        assert f"objective {fit['objective']:.6g}, {fit['iterations']} Newton steps, " in line
    assert lines[3].startswith(f"C={res['C']:g} on all 60 training rows: objective {res['objective']:.6g}")


def test_off_a_terminal_progress_is_plain_lines_and_each_fit_of_a_draw_is_logged(tmp_path, capsys):
    """stderr not a terminal (capsys): svm reports progress like every other command, as whole lines, and a draw
    of several C values says when each fit is done instead of staying silent until the draw ends."""
    store = make_store(tmp_path / "feats")
    assert main(["svm", "--features", str(store), "--labels-per-class", "4", "--draws", "2",
                 "--C-grid", "0.01,1"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert any(line.startswith("draws: ") for line in lines)   # the draws bar, written as a line
    fits = [line for line in lines if " fitted (" in line]
    assert [f.split(" fitted")[0] for f in fits] == ["draw 1/2: C=0.01", "draw 1/2: C=1", "draw 2/2: C=0.01",
                                                    "draw 2/2: C=1"]
    assert lines.index(fits[1]) < lines.index(next(ln for ln in lines if ln.startswith("draw 1/2: C=0.01 test")))


def test_the_first_fit_is_logged_before_the_second_starts(tmp_path, monkeypatch):
    from gan_probe.probe import ProbeConfig, probe_store
    from gan_probe.probe.svm import TrainingProblem

    events = []
    solve = TrainingProblem.solve

    def recording_solve(self, C, *args, **kwargs):
        events.append(f"solve {C:g}")
        return solve(self, C, *args, **kwargs)

    monkeypatch.setattr(TrainingProblem, "solve", recording_solve)
    store = make_store(tmp_path / "feats")
    probe_store(store, ProbeConfig(labels_per_class=4, draws=1, C_grid=(0.01, 1.0)), log=events.append)
    assert events[0] == "solve 0.01" and events[1].startswith("draw 1/1: C=0.01 fitted")
    assert events[2] == "solve 1"


def test_labels_per_class_and_dataset_name(tmp_path):
    store = make_store(tmp_path / "feats", meta={})
    out = tmp_path / "res.json"
    assert main(["svm", "--features", str(store), "--labels-per-class", "4", "--draws", "3", "--C", "0.1",
                 "--seed", "5", "--dataset-name", "named", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["dataset"] == "named" and res["protocol"] == "few-labels"
    assert res["draws"] == 3 and len(res["accuracies"]) == 3 and res["n_train"] == 12
    assert res["seeds"]["draws"] == [[5, 0], [5, 1], [5, 2]]


def test_same_seed_same_numbers(tmp_path):
    store = make_store(tmp_path / "feats")
    results = []
    for name in ("a.json", "b.json"):
        main(["svm", "--features", str(store), "--labels", "9", "--val-size", "15", "--draws", "2",
              "--C-grid", "0.01,1", "--json", str(tmp_path / name)])
        results.append(json.loads((tmp_path / name).read_text()))
    assert results[0]["accuracies"] == results[1]["accuracies"] and results[0]["C"] == results[1]["C"]


def run_error(argv, capsys):
    assert main([*argv, "--no-progress"]) == 2   # progress lines written before the error are not the point here
    err = capsys.readouterr().err
    assert err.startswith("gan-probe svm: error: ") and len(err.strip().splitlines()) == 1
    return err


def test_mismatched_feature_shapes_are_a_clear_error(tmp_path, capsys):
    store = make_store(tmp_path / "feats")
    np.save(features_path(store, "test"), np.zeros((20, 5), np.float32))
    err = run_error(["svm", "--features", str(store), "--C", "1"], capsys)
    assert "12 columns" in err and "5" in err


def test_label_count_mismatch_is_a_clear_error(tmp_path, capsys):
    store = make_store(tmp_path / "feats")
    np.save(store / "train_labels.npy", np.zeros(59, np.int64))
    assert "59 labels" in run_error(["svm", "--features", str(store), "--C", "1"], capsys)


@pytest.mark.parametrize("split", ["train", "test"])
def test_nan_features_name_the_split_and_row(tmp_path, capsys, split):
    store = make_store(tmp_path / "feats")
    x = np.load(features_path(store, split))
    x[13, 2] = np.nan
    np.save(features_path(store, split), x)
    err = run_error(["svm", "--features", str(store), "--C", "1"], capsys)
    assert f"{split} features: non-finite value (nan) in row 13, column 2" in err


@pytest.mark.parametrize("argv,match", [
    (["--C", "0"], "--C 0"),
    (["--C", "-0.5"], "--C -0.5"),
    (["--C", "abc"], "--C 'abc'"),
    (["--C-grid", "0.1,0"], "--C-grid value 0"),
    (["--settle", "-2"], "--settle -2: expected a whole number of Newton steps"),
    (["--labels-per-class", "30", "--C", "1"], "--labels-per-class 30: class"),
])
def test_bad_flags_are_clear_errors(tmp_path, capsys, argv, match):
    store = make_store(tmp_path / "feats")
    assert match in run_error(["svm", "--features", str(store), *argv], capsys)


def test_missing_or_conflicting_feature_sources(tmp_path, capsys):
    assert "no features" in run_error(["svm"], capsys)
    store = make_store(tmp_path / "feats")
    assert "either --features" in run_error(["svm", "--features", str(store), "--checkpoint", "x.pt"], capsys)
    assert "not found" in run_error(["svm", "--features", str(tmp_path / "nope")], capsys)


def test_one_step_form_extracts_then_probes(tmp_path, monkeypatch, capsys):
    extract = pytest.importorskip("gan_probe.features.extract")
    calls = []

    def fake_extract_features(checkpoint, dataset, data_root, out, device, progress, **options):
        calls.append(dict(checkpoint=checkpoint, dataset=dataset, data_root=data_root, out=out, device=device,
                          **options))
        return make_store(tmp_path / "extracted", meta={"dataset": dataset})

    monkeypatch.setattr(extract, "extract_features", fake_extract_features)
    out = tmp_path / "res.json"
    assert main(["svm", "--dataset", "cifar10", "--data-root", "R", "--checkpoint", "G.pt", "--features-dir",
                 str(tmp_path / "fd"), "--device", "cpu", "--C", "1", "--json", str(out)]) == 0
    assert calls == [dict(checkpoint="G.pt", dataset="cifar10", data_root="R", out=str(tmp_path / "fd"),
                          device="cpu", holdout=None, holdout_seed=0)]
    assert json.loads(out.read_text())["dataset"] == "cifar10"
    calls.clear()   # data with no test split: --holdout reaches the extraction, as with `extract --holdout`
    assert main(["svm", "--dataset", "cifar10", "--data-root", "R", "--checkpoint", "G.pt", "--holdout", "7",
                 "--holdout-seed", "3", "--device", "cpu", "--C", "1"]) == 0
    assert calls[0]["holdout"] == 7 and calls[0]["holdout_seed"] == 3


def test_result_file_reads_back_in_the_report(tmp_path):
    report = pytest.importorskip("gan_probe.report.results")
    store = make_store(tmp_path / "feats")
    out = tmp_path / "res.json"
    main(["svm", "--features", str(store), "--labels-per-class", "5", "--draws", "2", "--C-grid", "0.1,1",
          "--val-size", "9", "--json", str(out)])
    res = json.loads(out.read_text())
    parsed = report.parse_probe(res, str(out))
    assert parsed.accuracy == pytest.approx(res["accuracy"]) and parsed.solver == "torch"
    assert parsed.protocol == "few-labels" and parsed.c_chosen == res["C"]
