"""The kNN probe: scikit-learn parity for the majority vote, the weighted vote by hand, invariances, protocols."""
import json

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from gan_probe.cli import main
from gan_probe.features import save_store
from gan_probe.probe.knn import KnnBank, KnnConfig, run_knn_protocol


def _blobs(n=300, d=12, classes=4, seed=0, spread=1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d)) * spread
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("k", [1, 4, 7, 15])
def test_the_majority_vote_equals_scikit_learns(k):
    x, y = _blobs(seed=1, spread=0.6)   # overlapping classes: many close votes and ties
    train, test = slice(0, 200), slice(200, None)
    bank = KnnBank(x[train], y[train], standardizer=None, device="cpu")
    ours = bank.predict(x[test], [k], [], "majority")[(k, None)]
    ref = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(x[train], y[train])
    np.testing.assert_array_equal(ours, ref.predict(x[test]))


def test_the_weighted_vote_by_hand():
    # bank: two rows of class 0 at 60 degrees from the query, one row of class 1 at 0 degrees
    bank = KnnBank(np.array([[1, 0], [0.5, np.sqrt(0.75)], [0.5, -np.sqrt(0.75)]], np.float32),
                   np.array([1, 0, 0]), standardizer=None, device="cpu")
    q = np.array([[1, 0]], np.float32)
    # class 1: exp(1 / T); class 0: 2 exp(0.5 / T). T = 1: 2.718 < 3.297 -> class 0; T = 0.5: 7.39 > 5.44 -> class 1
    out = bank.predict(q, [3], [1.0, 0.5], "weighted")
    assert out[(3, 1.0)].tolist() == [0] and out[(3, 0.5)].tolist() == [1]
    assert bank.predict(q, [3], [], "majority")[(3, None)].tolist() == [0]
    assert bank.predict(q, [1], [], "majority")[(1, None)].tolist() == [1]


def test_blocks_and_devices_do_not_change_the_neighbours():
    x, y = _blobs(seed=2)
    bank = KnnBank(x[:250], y[:250], standardizer=None, device="cpu")
    q = torch.nn.functional.normalize(torch.as_tensor(x[250:]), dim=1)
    s1, i1 = bank.neighbours(q, 9, block_rows=7)
    s2, i2 = bank.neighbours(q, 9, block_rows=1000)
    assert torch.equal(i1, i2) and torch.allclose(s1, s2)
    # the nearest neighbours are the largest cosine similarities, in order
    full = q @ torch.nn.functional.normalize(torch.as_tensor(x[:250]), dim=1).T
    np.testing.assert_allclose(s1.numpy(), torch.sort(full, dim=1, descending=True).values[:, :9].numpy(),
                               rtol=1e-5, atol=1e-6)


def test_k_and_T_are_chosen_on_validation_rows_and_draws_are_reproducible():
    x, y = _blobs(n=600, seed=3)
    cfg = KnnConfig(labels_per_class=20, draws=3, k_grid=(1, 5, 25), T_grid=(0.05, 0.5), device="cpu")
    a = run_knn_protocol(x[:500], y[:500], x[500:], y[500:], cfg)
    b = run_knn_protocol(x[:500], y[:500], x[500:], y[500:], cfg)
    assert a["per_draw"] == b["per_draw"] and a["protocol"] == "few-labels" and a["n_train"] == 80
    curve = a["knn_selection"]["curve"]
    best = max(p["val_accuracy"] for p in curve)
    chosen = next(p for p in curve if (p["k"], p["T"]) == (a["k"], a["T"]))
    assert chosen["val_accuracy"] == best and a["knn_selection"]["val_size"] == 50
    assert 0.5 < a["accuracy"] <= 1 and len(a["per_draw"]) == 3
    full = run_knn_protocol(x[:500], y[:500], x[500:], y[500:], KnnConfig(vote="majority", k_grid=(1, 9),
                                                                          device="cpu"))
    assert full["protocol"] == "full" and full["n_train"] == 500 and full["T"] is None


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    x, y = _blobs(n=60, seed=4)
    root = save_store(tmp_path / "s", x, y, x, y, {"dataset": "toy"})
    for argv, message in ((["--k", "0"], "--k 0: the number of neighbours must be at least 1"),
                          (["--T-grid", "0.1,-1"], "--T -1.0: the temperature must be a positive number"),
                          (["--k-grid", "a"], "--k-grid 'a': expected comma-separated numbers")):
        assert main(["knn", "--features", str(root), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_the_command_writes_an_svm_like_result_the_report_reads(tmp_path, capsys):
    from gan_probe.report.results import load_results

    x, y = _blobs(n=200, seed=5)
    root = save_store(tmp_path / "s", x[:150], y[:150], x[150:], y[150:], {"dataset": "toy", "source": "pixels"})
    out = tmp_path / "knn.json"
    assert main(["knn", "--features", str(root), "--labels-per-class", "10", "--draws", "2", "--val-size", "20",
                 "--json", str(out)]) == 0
    assert "weighted k = " in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["format"] == "gan-probe-svm" and result["classifier"] == "knn" and result["C"] is None
    probe = load_results([out]).probes[0]
    assert probe.label == "Raw pixels + kNN (weighted vote)" and probe.accuracy == result["accuracy"]
