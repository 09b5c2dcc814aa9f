"""Committed reports stay true: the numbers of a rerun are compared with the committed report's, exactly on the
same machine and software stack, within a stated tolerance elsewhere."""
import copy
import json

from gan_probe.report.compare import compare_reports, main

DEVICE = {"cpu_model": "AMD EPYC", "cpu_capability": "AVX512", "torch_threads": 2, "device": "cpu"}
VERSIONS = {"torch": "2.14.1", "numpy": "2.4.6", "scipy": "1.17.1", "scikit-learn": "1.9.1"}


def _report(accuracy=0.9356, fid=273.86, device=DEVICE):
    prov = {"device": dict(device), "versions": dict(VERSIONS)}
    return {"records": [
        {"kind": "probe", "path": "runs/x/results/svm-dcgan-full.json", "accuracy": accuracy, "accuracy_std": 0.0,
         "C": 0.001, "per_draw": [accuracy], "n_train": 1347, "n_test": 450, "n_features": 1792,
         "checkpoint_sha256": "ab" * 32, "provenance": prov},
        {"kind": "sample_quality", "path": "runs/x/results/fid.json", "fid": fid, "inception_score": None,
         "inception_score_std": None, "n_samples": 300, "provenance": prov},
        {"kind": "run", "path": "runs/x/train"}]}


def test_same_machine_every_number_must_be_equal():
    a = _report()
    assert compare_reports(a, copy.deepcopy(a)).ok
    b = _report(accuracy=0.9356 + 1e-12)
    result = compare_reports(a, b)
    assert result.exact and not result.ok
    assert result.differences == ["svm-dcgan-full.json accuracy: committed 0.9356, regenerated 0.935600000001",
                                  "svm-dcgan-full.json per_draw: committed [0.9356], regenerated [0.935600000001]"]
    assert result.summary().endswith("NOT the same")


def test_another_machine_is_compared_within_the_tolerance_and_says_so():
    other = {**DEVICE, "cpu_capability": "AVX2"}
    near = compare_reports(_report(), _report(accuracy=0.92, fid=290.0, device=other))
    assert not near.exact and near.ok and len(near.differences) == 3
    assert near.machine == ["device.cpu_capability: AVX512 vs AVX2"] and "within tolerance" in near.summary()
    far = compare_reports(_report(), _report(accuracy=0.85, device=other))
    assert not far.ok and far.beyond_tolerance[0].startswith("svm-dcgan-full.json accuracy")
    # a report that does not record its processor can only be compared within the tolerance
    old = _report(device={"device": "cpu", "torch_threads": 2})
    assert not compare_reports(old, _report()).exact


def test_row_counts_and_missing_results_have_no_tolerance(tmp_path, capsys):
    other = {**DEVICE, "cpu_model": "Intel Xeon"}
    b = _report(device=other)
    b["records"][0]["n_test"] = 449
    assert not compare_reports(_report(), b).ok
    # a checkpoint file records when and by which command it was written: its sha256 is not a result
    b = _report()
    b["records"][0]["checkpoint_sha256"] = "cd" * 32
    assert compare_reports(_report(), b).identical
    c = _report()
    del c["records"][1]
    result = compare_reports(_report(), c)
    assert result.missing == ["fid.json: in one report only"] and not result.ok
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps(_report()))
    (tmp_path / "b.json").write_text(json.dumps(c))
    assert main([str(tmp_path / "a"), str(tmp_path / "b.json")]) == 1
    assert "missing: fid.json" in capsys.readouterr().out
    assert main([str(tmp_path / "a"), str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("compare: error: ")
