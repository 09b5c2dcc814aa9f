"""One overwrite rule for every command that writes a file: a result of the same kind is replaced atomically,
anything else is refused (one line, exit 2, nothing touched) unless --force; export never writes onto a training
checkpoint."""
import json
import sys

import numpy as np
import pytest
import torch

from gan_probe.atomic import check_overwrite, file_format
from gan_probe.models.checkpoint import load_checkpoint, save_checkpoint
from gan_probe.cli import main
from gan_probe.errors import ConfigError
from gan_probe.features import save_store
from gan_probe.models import Discriminator, Generator, preset_config
from report_synthetic import probe, write

NOTES = "my notes, not a result\n"


pytestmark = pytest.mark.usefixtures("isolated_env")


def _refused(capsys, argv, *names):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"gan-probe {argv[0]}: error: "), err
    for name in names:
        assert str(name) in err, (name, err)
    return err


def _notes(path):
    path.write_text(NOTES)
    return path


def _training_checkpoint(path, seed=0):
    cfg = preset_config("small32", ngf=4, ndf=4, nz=8)
    torch.manual_seed(seed)
    gen, disc = Generator(cfg), Discriminator(cfg)
    opt = torch.optim.Adam(disc.parameters())
    save_checkpoint(path, {"generator": gen.state_dict(), "discriminator": disc.state_dict(),
                           "optimizer_g": torch.optim.Adam(gen.parameters()).state_dict(),
                           "optimizer_d": opt.state_dict(), "step": 3,
                           "config": {"model": cfg.to_dict(), "train": {"dataset": "digits"}}})
    return path


def _store(root):
    rng = np.random.default_rng(0)
    return save_store(root, rng.normal(size=(8, 3)).astype(np.float32), np.arange(8) % 2,
                      rng.normal(size=(4, 3)).astype(np.float32), np.arange(4) % 2, {"source": "test"})


# ---- the rule ----------------------------------------------------------------------------------------------------

def test_check_overwrite_rule(tmp_path):
    notes = _notes(tmp_path / "notes.txt")
    for kind in ("gan-probe-svm", "gan-probe-fid", "gan-probe-inception-score", "gan-probe-fid-stats",
                 "gan-probe-checkpoint", "gan-probe-figure"):
        with pytest.raises(ConfigError, match="exists and is not a .*pass --force to replace it"):
            check_overwrite(notes, kind, flag="--json")
        check_overwrite(notes, kind, force=True)  # allowed
        check_overwrite(tmp_path / "new.json", kind)  # nothing there
        with pytest.raises(ConfigError, match="is a directory"):
            check_overwrite(tmp_path, kind, force=True)
    svm = write(tmp_path / "svm.json", probe())
    assert file_format(svm) == "gan-probe-svm"
    check_overwrite(svm, "gan-probe-svm")
    with pytest.raises(ConfigError, match="not a gan-probe fid result .*a gan-probe svm result"):
        check_overwrite(svm, "gan-probe-fid")
    ckpt = _training_checkpoint(tmp_path / "c.pt")
    assert file_format(ckpt) == "gan-probe-checkpoint"
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    assert file_format(tmp_path / "other.npz") is None
    assert notes.read_text() == NOTES


# ---- the commands -------------------------------------------------------------------------------------------------

def test_svm_json_replaces_a_result_and_refuses_anything_else(tmp_path, capsys):
    store = _store(tmp_path / "feats")
    notes = _notes(tmp_path / "notes.txt")
    argv = ["svm", "--features", store, "--C", "1", "--no-progress", "--device", "cpu"]
    _refused(capsys, [*argv, "--json", notes], "--json", notes, "--force")
    assert notes.read_text() == NOTES
    assert not (tmp_path / "notes.txt.fits").exists() and not (tmp_path / "notes.txt.lock").exists()
    earlier = write(tmp_path / "svm.json", probe())
    assert main([str(a) for a in [*argv, "--json", earlier]]) == 0
    assert json.loads(earlier.read_text())["n_features"] == 3  # replaced by the new result
    assert main([str(a) for a in [*argv, "--json", notes, "--force"]]) == 0
    assert json.loads(notes.read_text())["format"] == "gan-probe-svm"


def test_knn_json_follows_the_same_rule(tmp_path, capsys):
    store = _store(tmp_path / "feats")
    notes = _notes(tmp_path / "notes.txt")
    argv = ["knn", "--features", store, "--k", "1", "--device", "cpu"]
    _refused(capsys, [*argv, "--json", notes], "--json", notes, "--force")
    assert notes.read_text() == NOTES and not (tmp_path / "notes.txt.lock").exists()
    earlier = write(tmp_path / "knn.json", probe())
    assert main([str(a) for a in [*argv, "--json", earlier]]) == 0
    assert json.loads(earlier.read_text())["classifier"] == "knn"  # replaced by the new result
    assert main([str(a) for a in [*argv, "--json", notes, "--force"]]) == 0
    assert json.loads(notes.read_text())["classifier"] == "knn"


def test_fid_and_inception_score_outputs(tmp_path, capsys):
    notes = _notes(tmp_path / "notes.txt")
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((4, 8, 8, 3), np.uint8))
    _refused(capsys, ["fid", images, images, "--json", notes], "--json", notes, "not a gan-probe fid result")
    stats = tmp_path / "reference.npz"
    np.savez(stats, mu=np.zeros(2), sigma=np.eye(2))  # e.g. a downloaded reference: no gan-probe info
    _refused(capsys, ["fid", images, "--save-stats", stats], "--save-stats", stats, "FID statistics")
    _refused(capsys, ["inception-score", "--images", images, "--json", notes], "--json", notes,
             "not a gan-probe inception-score result")
    assert notes.read_text() == NOTES and set(np.load(stats).files) == {"mu", "sigma"}


def test_viz_out_replaces_its_own_figure_only(tmp_path, capsys):
    ckpt = _training_checkpoint(tmp_path / "c.pt")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"someone's picture" * 10)
    before = photo.read_bytes()
    argv = ["viz", "samples", "--checkpoint", ckpt, "--n", "4", "--dpi", "20"]
    _refused(capsys, [*argv, "--out", photo], "--out", photo, "--force")
    assert photo.read_bytes() == before
    fig = tmp_path / "samples.png"
    assert main([str(a) for a in [*argv, "--out", fig]]) == 0
    assert file_format(fig) == "gan-probe-figure"
    assert main([str(a) for a in [*argv, "--out", fig, "--seed", "1"]]) == 0  # its own figure: replaced
    assert main([str(a) for a in [*argv, "--out", photo, "--force"]]) == 0
    assert file_format(photo) == "gan-probe-figure"


def test_report_keeps_files_added_to_an_earlier_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gan_probe.viz", None)
    result = write(tmp_path / "results" / "svm.json", probe())
    out = tmp_path / "report"
    argv = ["report", result, "--out", out, "--format", "md"]
    assert main([str(a) for a in argv]) == 0
    assert main([str(a) for a in argv]) == 0  # an earlier report alone: rebuilt
    capsys.readouterr()
    _notes(out / "notes.txt")
    (out / "figures" / "mine.png").write_bytes(b"x")
    _refused(capsys, argv, "--out", "notes.txt", "figures/mine.png", "--force")
    assert (out / "notes.txt").read_text() == NOTES
    assert main([str(a) for a in [*argv, "--force"]]) == 0
    assert not (out / "notes.txt").exists() and (out / "report.md").is_file()


def test_export_never_writes_onto_a_training_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    ckpt = _training_checkpoint(run / "checkpoint.pt")
    other = _training_checkpoint(tmp_path / "other.pt", seed=1)
    before = {p: p.read_bytes() for p in (ckpt, other)}
    _refused(capsys, ["export", ckpt, "--out", ckpt], "--out", "is the checkpoint being exported")
    _refused(capsys, ["export", ckpt, "--out", tmp_path / "run" / ".." / "run" / "checkpoint.pt", "--force"],
             "is the checkpoint being exported")
    _refused(capsys, ["export", ckpt, "--out", other, "--force"], "--out", other, "optimizer state")
    assert {p: p.read_bytes() for p in before} == before
    notes = _notes(tmp_path / "notes.txt")
    _refused(capsys, ["export", ckpt, "--out", notes], "--out", notes, "--force")
    assert notes.read_text() == NOTES
    copy = tmp_path / "copy.pt"
    assert main(["export", str(ckpt), "--out", str(copy)]) == 0
    assert main(["export", str(ckpt), "--out", str(copy), "--dtype", "float32"]) == 0  # an exported copy: replaced
    assert load_checkpoint(copy)["export"]["dtype"] == "float32"
    assert main(["export", str(ckpt), "--out", str(notes), "--force"]) == 0
    assert "optimizer_d" not in load_checkpoint(notes)


def test_resuming_an_exported_copy_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "32",
                 "--max-steps", "1", "--no-progress", "--device", "cpu", "--out", str(run)]) == 0
    assert main(["export", str(run / "checkpoint.pt"), "--out", str(tmp_path / "copy.pt")]) == 0
    (tmp_path / "copy.pt").replace(run / "checkpoint.pt")
    capsys.readouterr()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _refused(capsys, ["train", "--dataset", "digits", "--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "32",
                      "--max-steps", "2", "--no-progress", "--device", "cpu", "--resume", "--out", run],
             run / "checkpoint.pt", "inference-only")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
