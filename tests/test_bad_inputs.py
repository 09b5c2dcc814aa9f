"""Bad inputs: every one gives exit code 2, exactly one stderr line `gan-probe <cmd>: error: ...` naming the file
or flag, and leaves what was already on disk byte-identical (the table in README.md, "Bad inputs")."""
import json
import pickle
import warnings

import numpy as np
import pytest
import torch

from gan_probe.models.checkpoint import save_checkpoint
from gan_probe.cli import main
from gan_probe.features import load_store, save_store
from gan_probe.models import Discriminator, Generator, preset_config

TINY = ["--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "32", "--no-progress"]
EARLIER_SVM = json.dumps({"format": "gan-probe-svm", "previous": True})  # an earlier result, replaceable


pytestmark = pytest.mark.usefixtures("isolated_env")


def _snapshot(*roots):
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def _fails(capsys, argv, *names, before=None, roots=()):
    """Run the CLI; assert exit 2, one `gan-probe CMD: error:` line naming ``names``, files untouched."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gan-probe {argv[0]}: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    if before is not None:
        assert _snapshot(*roots) == before
    return lines[0]


def _checkpoint(path, preset="small32", **overrides):
    cfg = preset_config(preset, ngf=4, ndf=4, **overrides)
    torch.manual_seed(0)
    save_checkpoint(path, {"generator": Generator(cfg).state_dict(), "discriminator": Discriminator(cfg).state_dict(),
                           "step": 0, "config": {"model": cfg.to_dict(), "train": {}}})
    return path


def _store(root, rows=(6, 4), dim=5, n_classes=2, nan=False):
    rng = np.random.default_rng(0)
    xtr, xte = rng.normal(size=(rows[0], dim)).astype(np.float32), rng.normal(size=(rows[1], dim)).astype(np.float32)
    if nan:
        xtr[3, 2] = np.nan
    ytr, yte = np.arange(rows[0]) % n_classes, np.arange(rows[1]) % n_classes
    return save_store(root, xtr, ytr, xte, yte, {"source": "test"})


def _existing_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    return run


# ---- data ------------------------------------------------------------------------------------------------------

def test_missing_data_files(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    _fails(capsys, ["train", "--dataset", "cifar10", "--data-root", tmp_path / "no-such-dir", "--out", out, *TINY],
           tmp_path / "no-such-dir", before=before, roots=[out])


def test_wrong_format_data_file(tmp_path, capsys):
    root = tmp_path / "svhn"
    root.mkdir()
    (root / "train_32x32.mat").write_bytes(b"this is not a MATLAB file" * 10)
    out = tmp_path / "run"
    _fails(capsys, ["train", "--dataset", "svhn", "--data-root", root, "--out", out, *TINY],
           root / "train_32x32.mat")
    assert not out.exists()


def test_unknown_dataset_name(tmp_path, capsys):
    line = _fails(capsys, ["train", "--dataset", "imagenet21k", "--out", tmp_path / "run", *TINY], "--dataset",
                  "imagenet21k")
    assert "cifar10" in line  # the choices are listed
    assert not (tmp_path / "run").exists()


def _cifar_pickles(folder, per_batch=8):
    """The official cifar-10-batches-py layout with random 32x32 images."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        batch = {b"labels": (np.arange(per_batch) % 10).tolist(), b"data": images.reshape(per_batch, 3072)}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)


def test_image_size_other_than_the_checkpoints_is_resized_and_recorded(tmp_path, capsys):
    """Not an error: 32x32 CIFAR-10 images through a 64x64 discriminator are resized to 64x64 and recorded."""
    _cifar_pickles(tmp_path / "c10" / "cifar-10-batches-py")
    ckpt = _checkpoint(tmp_path / "d64.pt", image_size=64)
    out = tmp_path / "feats"
    assert main(["extract", "--checkpoint", str(ckpt), "--dataset", "cifar10", "--data-root", str(tmp_path / "c10"),
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    meta = load_store(out).meta
    assert meta["image_size"] == 64 and meta["data"]["train"]["image_size"] == 64
    assert meta["model"]["image_size"] == 64 and "resized" in meta["input_resize"]
    assert load_store(out).train_features.shape == (40, (4 + 8 + 16 + 32) * 16)


# ---- checkpoints and run directories ---------------------------------------------------------------------------

def test_truncated_checkpoint(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    out = tmp_path / "feats"
    _store(out)
    before = _snapshot(out)
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--out", out, "--no-progress"], ckpt, "truncated",
           before=before, roots=[out])


def test_truncated_checkpoint_on_resume(tmp_path, capsys):
    run = _existing_run(tmp_path, capsys)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # no checkpoint.prev.pt to fall back to
    before = _snapshot(run)
    _fails(capsys, ["train", *TINY, "--max-steps", "2", "--resume", "--out", run], ckpt, before=before, roots=[run])


def test_checkpoint_of_another_preset(tmp_path, capsys):
    run = _existing_run(tmp_path, capsys)
    before = _snapshot(run)
    line = _fails(capsys, ["train", *TINY, "--preset", "paper32", "--max-steps", "2", "--resume", "--out", run],
                  run / "checkpoint.pt", "--preset 'paper32'", before=before, roots=[run])
    assert "preset='small32'" in line


def test_explicit_default_preset_that_disagrees_is_caught_too(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--preset", "dcgan64", "--max-steps", "1", "--out", str(run), "--ngf", "4",
                 "--ndf", "4"]) == 0
    capsys.readouterr()
    before = _snapshot(run)
    _fails(capsys, ["train", "--preset", "small32", "--ngf", "4", "--ndf", "4", "--nz", "16", "--no-progress",
                    "--resume", "--out", run], "--preset 'small32'", before=before, roots=[run])


@pytest.mark.parametrize("flags, names", [
    (["--probe-every", "0", "--probe-dataset", "digits"], ["--probe-every must be at least 1, got 0"]),
    (["--probe-every", "5"], ["--probe-every needs --probe-dataset"]),
    (["--probe-every", "5", "--probe-dataset", "digits", "--probe-images", "15"],
     ["--probe-images 15", "10 classes", "at least 20"]),
    (["--probe-every", "5", "--probe-dataset", "folder"], ["--probe-dataset 'folder'", "labelled"]),
    (["--probe-every", "5", "--probe-dataset", "digits", "--probe-layers", "1,x"], ["--probe-layers '1,x'"]),
    (["--probe-every", "5", "--probe-dataset", "digits", "--probe-layers", "0,7"], ["--probe-layers 0,7", "0..2"]),
    (["--probe-every", "5", "--probe-dataset", "digits", "--probe-C", "0"], ["--probe-C must be a positive"]),
    (["--probe-every", "5", "--probe-dataset", "cifar10", "--probe-data-root", "/no/such/dir"], ["/no/such/dir"]),
])
def test_bad_probe_options(tmp_path, capsys, flags, names):
    out = tmp_path / "run"
    _fails(capsys, ["train", *TINY, "--max-steps", "1", "--out", out, *flags], *names)
    assert not out.exists()  # checked before the run directory is made


def test_bad_probe_option_on_resume_leaves_the_run_alone(tmp_path, capsys):
    run = _existing_run(tmp_path, capsys)
    before = _snapshot(run)
    _fails(capsys, ["train", *TINY, "--max-steps", "2", "--resume", "--out", run, "--probe-every", "1",
                    "--probe-dataset", "digits", "--probe-images", "19"], "--probe-images 19",
           before=before, roots=[run])


def test_existing_run_directory_without_resume(tmp_path, capsys):
    run = _existing_run(tmp_path, capsys)
    before = _snapshot(run)
    _fails(capsys, ["train", *TINY, "--max-steps", "2", "--out", run], run, "--resume", before=before, roots=[run])


def test_existing_store_of_other_inputs(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    out = tmp_path / "feats"
    _store(out)
    before = _snapshot(out)
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--out", out, "--no-progress"], out, "other inputs",
           before=before, roots=[out])


# ---- metric networks -------------------------------------------------------------------------------------------

def test_weights_file_that_is_not_the_network(tmp_path, capsys):
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"\x00" * 4096)  # wrong sha256, not a state dict (e.g. an interrupted copy)
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((4, 32, 32, 3), np.uint8))
    result = tmp_path / "is.json"
    result.write_text(json.dumps({"metric": "inception_score", "previous": True}))  # an earlier result
    before = _snapshot(tmp_path)
    _fails(capsys, ["inception-score", "--images", images, "--weights", weights, "--json", result, "--no-progress",
                    "--device", "cpu"], weights, before=before, roots=[tmp_path])


# ---- feature stores and the probe (gan-probe svm) --------------------------------------------------------------

def _svm(store, *extra, out):
    return ["svm", "--features", store, "--json", out, "--no-progress", "--device", "cpu", *extra]


def test_store_with_mismatched_rows(tmp_path, capsys):
    store = _store(tmp_path / "feats")
    np.save(store / "train_labels.npy", np.zeros(5, np.int64))  # 6 feature rows, 5 labels
    result = tmp_path / "svm.json"
    result.write_text(EARLIER_SVM)
    before = _snapshot(tmp_path)
    _fails(capsys, _svm(store, out=result), "train_labels.npy", before=before, roots=[tmp_path])


def test_store_with_nan_features(tmp_path, capsys):
    store = _store(tmp_path / "feats", nan=True)
    result = tmp_path / "svm.json"
    result.write_text(EARLIER_SVM)
    before = _snapshot(tmp_path)
    _fails(capsys, _svm(store, out=result), "train", "row 3", before=before, roots=[tmp_path])


def test_non_positive_C(tmp_path, capsys):
    store = _store(tmp_path / "feats")
    result = tmp_path / "svm.json"
    result.write_text(EARLIER_SVM)
    before = _snapshot(tmp_path)
    _fails(capsys, _svm(store, "--C", "0", out=result), "--C", before=before, roots=[tmp_path])


def test_more_labels_per_class_than_exist(tmp_path, capsys):
    store = _store(tmp_path / "feats")  # 3 training images per class
    result = tmp_path / "svm.json"
    result.write_text(EARLIER_SVM)
    before = _snapshot(tmp_path)
    _fails(capsys, _svm(store, "--labels-per-class", "4", out=result),
           "--labels-per-class", before=before, roots=[tmp_path])


# ---- code in inputs ----------------------------------------------------------------------------------------------

def test_torchscript_classifier_needs_trust(tmp_path, capsys):
    """A TorchScript file runs code when it is loaded: --classifier is refused without --trust-classifier-code,
    before anything is loaded or written."""
    clf = tmp_path / "clf.pt"
    with warnings.catch_warnings():  # torch.jit.script's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(clf))
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((4, 8, 8, 3), np.uint8))
    result = tmp_path / "is.json"
    before = _snapshot(tmp_path)
    _fails(capsys, ["inception-score", "--images", images, "--per-class", "--classifier", clf, "--json", result,
                    "--weights", tmp_path / "no-such-weights.pth", "--no-progress"],
           clf, "--trust-classifier-code", before=before, roots=[tmp_path])
    from gan_probe.errors import GanProbeError
    from gan_probe.metrics.evaluate import load_classifier

    with pytest.raises(GanProbeError, match="--trust-classifier-code"):
        load_classifier(clf, "cpu")
    assert load_classifier(clf, "cpu", trust_code=True)(torch.zeros(1, 2)).shape == (1, 2)


# ---- option values -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, names", [
    (["--beta1", "nan"], ["--beta1 must be in [0, 1), got nan"]),
    (["--beta1", "2"], ["--beta1 must be in [0, 1), got 2.0"]),
    (["--max-steps", "0"], ["--max-steps must be at least 1, got 0", "nothing to train"]),
    (["--epochs", "0"], ["--epochs must be at least 1, got 0", "nothing to train"]),
])
def test_bad_training_values(tmp_path, capsys, flags, names):
    out = tmp_path / "run"
    _fails(capsys, ["train", *TINY, "--out", out, *flags], *names)
    assert not out.exists()


def test_pipeline_config_beta1(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nbeta1 = 1.5\n")
    _fails(capsys, ["pipeline", "--config", config, "--out", tmp_path / "p", "--no-progress"],
           "bad.toml: [train].beta1 must be in [0, 1), got 1.5")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("tol", ["nan", "-1", "0"])
def test_svm_tol(tmp_path, capsys, tol):
    store = _store(tmp_path / "feats")
    result = tmp_path / "svm.json"
    result.write_text(EARLIER_SVM)
    before = _snapshot(tmp_path)
    _fails(capsys, _svm(store, "--C", "1", "--tol", tol, out=result), f"--tol {float(tol)}", "positive",
           before=before, roots=[tmp_path])


def test_extract_holdout_zero(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--holdout", "0", "--out", tmp_path / "f", "--no-progress"],
           "--holdout must be at least 1, got 0")
    assert not (tmp_path / "f").exists()


def test_extract_grid_larger_than_a_layers_map(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")  # small32: 16x16, 8x8 and 4x4 maps
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--grid", "100", "--out", tmp_path / "f", "--no-progress"],
           "--grid 100", "4x4 map of conv3", "--grid 4 or less")
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--grid", "9", "--layers", "0,1", "--out", tmp_path / "f",
                    "--no-progress"], "--grid 9", "8x8 map of conv2")
    assert not (tmp_path / "f").exists()


# ---- output paths ------------------------------------------------------------------------------------------------

def test_out_that_is_an_existing_file(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    out = tmp_path / "results.txt"
    out.write_text("mine")
    _fails(capsys, ["train", *TINY, "--max-steps", "1", "--out", out], f"--out {out}: exists and is not a directory")
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--out", out, "--no-progress"],
           f"--out {out}: exists and is not a directory")
    assert out.read_text() == "mine"


def test_svm_json_that_cannot_be_written_is_caught_before_the_fit(tmp_path, capsys, monkeypatch):
    import gan_probe.probe

    def no_fit(*args, **kwargs):
        raise AssertionError("the probe was fitted")

    monkeypatch.setattr(gan_probe.probe, "probe_store", no_fit)
    store = _store(tmp_path / "feats")
    (tmp_path / "plain").write_text("a file")
    _fails(capsys, _svm(store, "--C", "1", out=tmp_path), f"--json {tmp_path}: is a directory")
    _fails(capsys, _svm(store, "--C", "1", out=tmp_path / "plain" / "svm.json"), "--json", "cannot write there")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats", "plain"]


def test_export_out_directory(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    (tmp_path / "exports").mkdir()
    before = _snapshot(tmp_path)
    _fails(capsys, ["export", ckpt, "--out", tmp_path / "exports"], "--out", "is a directory",
           before=before, roots=[tmp_path])


# ---- damaged inputs ----------------------------------------------------------------------------------------------

def test_truncated_kmeans_dictionary(tmp_path, capsys):
    from gan_probe.baselines import KMeansConfig, KMeansDictionary

    dictionary = tmp_path / "dictionary.npz"
    KMeansDictionary(KMeansConfig(centroids=2, patch=3), np.zeros((2, 27), np.float32)).save(dictionary)
    dictionary.write_bytes(dictionary.read_bytes()[:100])  # e.g. an interrupted copy
    _fails(capsys, ["kmeans", "--dictionary", dictionary, "--out", tmp_path / "k", "--no-progress"],
           dictionary, "not a readable k-means dictionary")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("config", ["oops", {"model": [1, 2]}, {"model": {}, "train": 3}])
def test_checkpoint_config_that_is_not_a_dict(tmp_path, capsys, config):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, {"discriminator": {}, "config": config})
    _fails(capsys, ["extract", "--checkpoint", ckpt, "--out", tmp_path / "f", "--no-progress"], ckpt,
           "malformed checkpoint", "'config'")
