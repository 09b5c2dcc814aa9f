"""Exported inference-only checkpoints: smaller, loadable by every command, weights equal up to fp16
rounding, and indexed with a checksum that matches the file."""
import json

import pytest
import torch

from gan_probe.models.checkpoint import load_checkpoint, load_models, save_checkpoint
from gan_probe.cli import main
from gan_probe.errors import ConfigError
from gan_probe.models import Discriminator, Generator, preset_config
from gan_probe.models.pretrained import export_checkpoint, update_index, verify_index
from gan_probe.provenance import sha256_file


def _training_checkpoint(path):
    cfg = preset_config("small32", ngf=8, ndf=8, nz=16)
    torch.manual_seed(0)
    gen, disc = Generator(cfg), Discriminator(cfg)
    opt = torch.optim.Adam(disc.parameters())
    disc(torch.randn(4, 3, 32, 32)).sum().backward()
    opt.step()
    save_checkpoint(path, {"generator": gen.state_dict(), "discriminator": disc.state_dict(),
                           "optimizer_d": opt.state_dict(), "step": 7, "epoch": 1,
                           "config": {"model": cfg.to_dict(), "train": {"dataset": "digits", "seed": 3}},
                           "data": {"dataset": "digits", "n": 1347},
                           "provenance": {"command": "gan-probe train --max-steps 7", "gan_probe_commit": "abc"}})
    return path


def test_export_is_smaller_and_loads_with_the_same_weights_up_to_fp16(tmp_path):
    src = _training_checkpoint(tmp_path / "checkpoint.pt")
    out = tmp_path / "pre" / "model.pt"
    entry = export_checkpoint(src, out)
    state = load_checkpoint(out)
    assert "optimizer_d" not in state and state["step"] == 7
    assert all(v.dtype == torch.float16 for v in state["discriminator"].values() if torch.is_floating_point(v))
    assert out.stat().st_size < 0.6 * src.stat().st_size
    a, b = load_models(src), load_models(out)
    for (name, wa), wb in zip(a.discriminator.state_dict().items(), b.discriminator.state_dict().values()):
        assert wb.dtype == wa.dtype
        if torch.is_floating_point(wa):
            torch.testing.assert_close(wb, wa.half().float(), rtol=0, atol=0, msg=name)
    assert entry["sha256"] == sha256_file(out) and entry["bytes"] == out.stat().st_size
    assert entry["preset"] == "small32" and entry["feature_dims"] == (8 + 16 + 32) * 16
    assert entry["training_command"] == "gan-probe train --max-steps 7" and entry["training_commit"] == "abc"
    assert entry["training_data"] == {"dataset": "digits", "n": 1347}


def test_exported_features_match_the_float32_checkpoint(tmp_path):
    src = _training_checkpoint(tmp_path / "checkpoint.pt")
    out = tmp_path / "model.pt"
    export_checkpoint(src, out)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        fa = torch.cat([f.flatten(1) for f in load_models(src).discriminator.forward_features(x)], 1)
        fb = torch.cat([f.flatten(1) for f in load_models(out).discriminator.forward_features(x)], 1)
    assert not torch.equal(fa, fb)  # rounding happened ...
    torch.testing.assert_close(fb, fa, rtol=2e-2, atol=2e-3)  # ... and stays at fp16 precision


def test_index_entries_replace_by_file_name_and_verify(tmp_path):
    src = _training_checkpoint(tmp_path / "checkpoint.pt")
    index = tmp_path / "pre" / "index.json"
    e1 = export_checkpoint(src, tmp_path / "pre" / "a.pt")
    update_index(index, e1, notes="first")
    update_index(index, export_checkpoint(src, tmp_path / "pre" / "b.pt", dtype="float32"))
    update_index(index, {**e1, "notes": "again"})
    data = json.loads(index.read_text())
    assert [m["file"] for m in data["models"]] == ["a.pt", "b.pt"]
    assert data["models"][0]["notes"] == "again" and data["models"][1]["dtype"] == "float32"
    assert verify_index(index) == []
    (tmp_path / "pre" / "b.pt").write_bytes(b"changed")
    assert verify_index(index) == [f"{tmp_path / 'pre' / 'b.pt'}: sha256 differs from index.json"]


def test_bad_dtype_and_foreign_index(tmp_path):
    src = _training_checkpoint(tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="--dtype 'int8'"):
        export_checkpoint(src, tmp_path / "x.pt", dtype="int8")
    bad = tmp_path / "index.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError, match="not a gan-probe pretrained index"):
        update_index(bad, {"file": "x.pt"})


def test_cli_export_then_extract(tmp_path, capsys):
    src = _training_checkpoint(tmp_path / "checkpoint.pt")
    out, index = tmp_path / "pre" / "d.pt", tmp_path / "pre" / "index.json"
    assert main(["export", str(src), "--out", str(out), "--index", str(index), "--no-generator"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_models(out).generator is None
    assert json.loads(index.read_text())["models"][0]["sha256"] == sha256_file(out)
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "y.pt")]) == 2
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err


def test_shipped_pretrained_models_match_their_index_and_give_features_of_the_recorded_size():
    from pathlib import Path

    from gan_probe.features.pooling import pooled_features

    index = Path(__file__).resolve().parents[1] / "pretrained" / "index.json"
    assert verify_index(index) == []
    entries = json.loads(index.read_text())["models"]
    assert entries, "pretrained/index.json lists no model"
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for entry in entries:
        models = load_models(index.parent / entry["file"])
        with torch.no_grad():
            feats = pooled_features(models.discriminator, x, grid=4)
            fake = models.generator(torch.rand(2, entry["model"]["nz"]) * 2 - 1)
        assert feats.shape == (2, entry["feature_dims"]) and torch.isfinite(feats).all()
        assert fake.shape == (2, 3, 32, 32) and fake.abs().max() <= 1
