"""`gan-probe inception-score` and `gan-probe fid` end to end on tiny files (random Inception weights)."""
import json

import numpy as np
import pytest
import torch

from gan_probe.cli import main
from gan_probe.metrics.fid import FeatureStats
from gan_probe.metrics.weights import random_reference_state_dict


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics_cli")
    torch.save(random_reference_state_dict(0, logit_scale=30.0), root / "w.pth")
    rng = np.random.default_rng(0)
    np.savez(root / "imgs.npz", images=rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8),
             labels=np.array([0, 1, 0, 1, 0, 1]))
    np.save(root / "bad.npy", rng.random((4, 16, 16, 3)).astype(np.float32))
    return root


def test_inception_score_json(files, capsys):
    out = files / "is.json"
    rc = main(["inception-score", "--images", str(files / "imgs.npz"), "--weights", str(files / "w.pth"),
               "--splits", "2", "--no-split-shuffle", "--std-ddof", "1", "--per-class", "--batch-size", "4",
               "--device", "cpu", "--json", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Inception Score:" in printed and "not comparable" in printed  # random weights are flagged
    result = json.loads(out.read_text())
    assert result["metric"] == "inception_score" and result["n"] == 6
    assert result["conventions"]["splits"] == 2 and result["conventions"]["shuffle"] is False
    assert result["conventions"]["std_ddof"] == 1 and result["conventions"]["dtype"] == "float64"
    assert len(result["split_scores"]) == 2 and result["inception_score_mean"] >= 1.0
    assert result["extractor"]["reference"] is False
    assert result["extractor"]["preprocessing"]["normalise"] == "(x - 128) / 128 on uint8 values"
    assert result["per_class"]["grouping"] == "dataset labels"
    assert {k: v["n"] for k, v in result["per_class"]["classes"].items()} == {"0": 3, "1": 3}
    assert result["source"]["format"] == "npz" and "provenance" in result


def test_inception_score_errors(files, tmp_path, monkeypatch, capsys):
    rc = main(["inception-score", "--images", str(files / "bad.npy"), "--weights", str(files / "w.pth")])
    assert rc == 2 and "expected a uint8 image array" in capsys.readouterr().err
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GAN_PROBE_OFFLINE", "1")
    rc = main(["inception-score", "--images", str(files / "imgs.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "weights-inception-2015-12-05-6726825d.pth" in err and str(tmp_path / "cache") in err
    np.save(tmp_path / "nolabels.npy", np.zeros((4, 8, 8, 3), np.uint8))
    rc = main(["inception-score", "--images", str(tmp_path / "nolabels.npy"), "--weights", str(files / "w.pth"),
               "--splits", "2", "--per-class", "--no-progress"])
    assert rc == 2 and "--classifier" in capsys.readouterr().err


def test_a_torchscript_file_as_weights_is_one_clean_line(files, tmp_path, capsys):
    """torch.load warns (two lines) and then fails with a long message; the user gets one line saying what the
    file is and what was expected, nothing cut mid-word."""
    import warnings

    script = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), str(script))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # any warning torch raises on the way would fail the command
        rc = main(["inception-score", "--images", str(files / "imgs.npz"), "--weights", str(script),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"--weights {script}: a TorchScript module, not a state dict; expected the Inception state dict " \
           "weights-inception-2015-12-05-6726825d.pth" in err
    assert "Warning" not in err and err.rstrip().endswith("layout)")


def test_library_messages_quoted_in_errors_are_cut_at_a_word():
    from gan_probe.errors import brief

    text = "Cannot use ``weights_only=True`` with TorchScript archives passed to ``torch.load``. " * 3
    cut = brief(RuntimeError(text), 60)
    assert cut.endswith("...") and len(cut) <= 63 and text.startswith(cut[:-3]) and text[len(cut) - 3] == " "


def test_fid_save_stats_then_compare(files, tmp_path, capsys):
    stats = tmp_path / "s.npz"
    rc = main(["fid", str(files / "imgs.npz"), "--fid-weights", str(files / "w.pth"), "--save-stats", str(stats),
               "--samples", "4", "--seed", "3", "--device", "cpu", "--no-progress"])
    assert rc == 0
    saved = FeatureStats.load(stats)
    assert saved.n == 4 and saved.mu.shape == (2048,) and saved.sigma.shape == (2048, 2048)
    assert saved.info["source"]["subset"]["seed"] == 3 and "provenance" in saved.info
    # comparing statistics files needs no network; small dimensions keep the matrix square root cheap
    rng = np.random.default_rng(1)
    a = FeatureStats.from_features(rng.normal(size=(50, 6)), info={"extractor": {"sha256": "x"}})
    b = FeatureStats.from_features(rng.normal(size=(40, 6)) + 1, info={"extractor": {"sha256": "x"}})
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    out = tmp_path / "fid.json"
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert abs(result["fid"]) < 1e-8 and result["n_a"] == 50 and result["warnings"] == []
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--fid-method", "eigh",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["fid_method"] == "eigh" and result["n_b"] == 40
    from gan_probe.metrics.fid import fid_from_stats
    assert result["fid"] == pytest.approx(fid_from_stats(a, b).fid, rel=1e-8)
    assert "FID: " in capsys.readouterr().out


def test_fid_with_fewer_images_than_feature_dimensions_warns_once_and_records_it(tmp_path, capsys):
    rng = np.random.default_rng(2)
    for name, shift in (("a", 0.0), ("b", 1.0)):   # 5 images per side, 8-d features: singular covariances
        FeatureStats.from_features(rng.normal(size=(5, 8)) + shift, info={"extractor": {"sha256": "x"}}).save(
            tmp_path / f"{name}.npz")
    out = tmp_path / "fid.json"
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: FID from 5 vs 5 images with 8-d features"), lines
    assert "biased upward" in lines[0] and "at least 8 images" in lines[0] and "10,000+" in lines[0]
    assert "warning" not in captured.out
    assert json.loads(out.read_text())["warnings"] == [lines[0][len("warning: "):]]


def test_fid_argument_errors(files, capsys):
    assert main(["fid", str(files / "imgs.npz")]) == 2
    assert "--save-stats" in capsys.readouterr().err
    assert main(["fid", str(files / "imgs.npz"), str(files / "imgs.npz"), "--save-stats", "x.npz"]) == 2
    assert main(["fid", "dataset:", str(files / "imgs.npz")]) == 2
    assert "dataset:NAME" in capsys.readouterr().err


def test_no_progress_also_silences_an_image_folders_decoding_bar(files, tmp_path, monkeypatch, capsys):
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    base = ["inception-score", "--images", str(tmp_path / "imgs"), "--weights", str(files / "w.pth"), "--splits", "2",
            "--batch-size", "4", "--device", "cpu"]
    for cache, extra, bar in (("c1", ["--no-progress"], False), ("c2", [], True)):
        monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / cache))   # decoded afresh each time
        assert main([*base, *extra]) == 0
        assert ("decoding" in capsys.readouterr().err) is bar
