"""An interrupted `gan-probe svm` grid resumes at its next C from the fits kept beside its --json output."""
import json

import numpy as np
import pytest
import torch

from gan_probe.cli import main
from gan_probe.features.store import features_path
from gan_probe.probe.resume import GridFits, fits_dir
from gan_probe.probe.svm import TrainingProblem

from feature_stores import make_store

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

GRID = ["--C-grid", "0.001,0.01,0.1,1", "--val-size", "30", "--method", "primal"]


@pytest.fixture
def solves(monkeypatch):
    """Counts TrainingProblem.solve calls (the C of each); ``interrupt_at`` raises KeyboardInterrupt on that call."""
    real = TrainingProblem.solve
    calls: list[float] = []
    state = {"interrupt_at": None}

    def counting(self, C, *args, **kwargs):
        calls.append(C)
        if state["interrupt_at"] == len(calls):
            raise KeyboardInterrupt
        return real(self, C, *args, **kwargs)

    monkeypatch.setattr(TrainingProblem, "solve", counting)
    return calls, state


def test_an_interrupted_grid_resumes_at_its_next_C(tmp_path, solves, capsys):
    calls, state = solves
    store = make_store(tmp_path / "feats", n_train=150, n_test=40, d=8, spread=1.0)
    whole = tmp_path / "whole.json"
    assert main(["svm", "--features", str(store), *GRID, "--json", str(whole)]) == 0
    assert calls == [0.001, 0.01, 0.1, 1.0, calls[-1]] and not fits_dir(whole).exists()
    calls.clear()
    capsys.readouterr()

    out = tmp_path / "resumed.json"
    state["interrupt_at"] = 3
    assert main(["svm", "--features", str(store), *GRID, "--json", str(out)]) == 130
    assert "kept in" in capsys.readouterr().err and not out.exists()
    assert sorted(p.name for p in fits_dir(out).glob("C=*.pt")) == ["C=0.001.pt", "C=0.01.pt"]

    calls.clear()
    state["interrupt_at"] = None
    assert main(["svm", "--features", str(store), *GRID, "--json", str(out)]) == 0
    assert calls[:2] == [0.1, 1.0] and len(calls) == 3           # the two missing C values and the refit
    err = capsys.readouterr().err
    assert err.count("resumed from") == 2 and not fits_dir(out).exists()

    a, b = json.loads(whole.read_text()), json.loads(out.read_text())
    assert b["C"] == a["C"] and b["accuracy"] == a["accuracy"]
    def curve(r):
        return [p["val_accuracy"] for p in r["C_selection"]["curve"]]

    assert curve(b) == curve(a)
    assert [f.get("resumed", False) for f in b["fits"]] == [True, True, False, False, False]
    for fa, fb in zip(a["fits"], b["fits"]):
        assert fb["objective"] == pytest.approx(fa["objective"], rel=1e-6)


def test_fits_of_other_inputs_are_not_reused(tmp_path, solves):
    calls, state = solves
    store = make_store(tmp_path / "feats", n_train=150, n_test=40, d=8, spread=1.0)
    out = tmp_path / "res.json"
    state["interrupt_at"] = 3
    assert main(["svm", "--features", str(store), *GRID, "--json", str(out)]) == 130
    x = np.load(features_path(store, "train"))
    x[5, 3] += 0.5                                                # other features, same shapes and labels
    np.save(features_path(store, "train"), x)
    calls.clear()
    state["interrupt_at"] = None
    assert main(["svm", "--features", str(store), *GRID, "--json", str(out)]) == 0
    assert calls[:4] == [0.001, 0.01, 0.1, 1.0] and len(calls) == 5
    assert not any(f.get("resumed") for f in json.loads(out.read_text())["fits"])


def test_grid_fits_key_and_damaged_files(tmp_path):
    W = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    fits = GridFits(tmp_path / "fits", {"rows": "a"})
    fits.save(0.1, W, {"C": 0.1}, 0.5)
    again = GridFits(tmp_path / "fits", {"rows": "a"})
    assert torch.equal(again.load(0.1)["W"], W) and again.replaced == 0
    (tmp_path / "fits" / "C=0.1.pt").write_bytes(b"not a torch file")
    assert again.load(0.1) is None and not (tmp_path / "fits" / "C=0.1.pt").exists()
    fits.save(0.1, W, {"C": 0.1}, 0.5)
    other = GridFits(tmp_path / "fits", {"rows": "b"})
    assert other.replaced == 1 and other.load(0.1) is None
    assert json.loads((tmp_path / "fits" / "key.json").read_text())["rows"] == "b"


def test_a_key_of_other_inputs_is_replaced_even_without_fits(tmp_path):
    """Fits saved after opening must never be read back by the inputs of the key that was there before."""
    W = torch.ones(3, 2, dtype=torch.float64)
    GridFits(tmp_path / "fits", {"rows": "a"})           # an interrupted run of inputs "a" before its first fit
    GridFits(tmp_path / "fits", {"rows": "b"}).save(0.1, W, {"C": 0.1}, 0.5)
    assert json.loads((tmp_path / "fits" / "key.json").read_text())["rows"] == "b"
    assert GridFits(tmp_path / "fits", {"rows": "a"}).load(0.1) is None
