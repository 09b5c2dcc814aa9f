import pytest

from gan_probe.cli import main
from viz_checkpoints import tiny_checkpoint

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt", latent="uniform"))


@pytest.mark.parametrize("figure,extra", [
    ("samples", ["--n", "9", "--numbers"]),
    ("interpolate", ["--rows", "2", "--steps", "4", "--mode", "slerp"]),
    ("arithmetic", ["--grid-seed", "3", "--grid-n", "9", "--a", "0,1", "--b", "2", "--c", "3,4", "--variations", "2"]),
    ("filters", ["--layers", "0,1", "--maps", "2", "--top", "3", "--limit", "40", "--no-progress"]),
    ("neighbours", ["--n", "2", "--k", "2", "--dataset", "digits", "--split", "test", "--limit", "30",
                    "--no-progress"]),
])
def test_each_figure_writes_a_png(ckpt, tmp_path, capsys, figure, extra):
    out = tmp_path / f"{figure}.png"
    assert main(["viz", figure, "--checkpoint", ckpt, "--out", str(out), "--dpi", "60", *extra]) == 0
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 2_000
    assert f"wrote {out}" in capsys.readouterr().out


def test_pdf_by_extension_and_seed_determinism(ckpt, tmp_path):
    args = ["viz", "samples", "--checkpoint", ckpt, "--n", "4", "--dpi", "60"]
    assert main(args + ["--out", str(tmp_path / "a.pdf")]) == 0
    assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert main(args + ["--seed", str(seed), "--out", str(tmp_path / f"{name}.png")]) == 0
    a, b, c = ((tmp_path / f"{n}.png").read_bytes() for n in "abc")
    assert a == b and a != c


@pytest.mark.parametrize("args,message", [
    (["samples", "--out", "x.jpg"], "--out x.jpg: expected a .png or .pdf"),
    (["arithmetic", "--out", "x.png", "--a", "1", "--b", "2", "--c", "99"], "--c 99"),
    (["arithmetic", "--out", "x.png", "--a", "1;2", "--b", "2", "--c", "3"], "--a '1;2'"),
    (["filters", "--out", "x.png", "--layers", "7", "--limit", "10", "--no-progress"], "--layers 7"),
])
def test_errors_are_one_line(ckpt, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["viz", args[0], "--checkpoint", ckpt, *args[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gan-probe viz: error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("x.*"))


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["viz", "samples", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "s.png")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_subcommand_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["viz"])


def test_the_checkpoints_data_root_is_a_default_only_for_a_training_checkpoint(tmp_path, capsys, isolated_env):
    import torch

    from gan_probe.models.checkpoint import save_checkpoint

    state = torch.load(tiny_checkpoint(tmp_path / "c.pt"), weights_only=True)
    state["config"]["train"].update(dataset="svhn", data_root=str(tmp_path / "gone"))
    save_checkpoint(tmp_path / "moved.pt", state)
    args = ["viz", "neighbours", "--checkpoint", str(tmp_path / "moved.pt"), "--n", "2", "--k", "2",
            "--out", str(tmp_path / "n.png")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tmp_path / 'gone'}: not found" in err
    assert f"come from the training config stored in {tmp_path / 'moved.pt'}" in err and "--data-root DIR" in err
    # an exported (shipped) checkpoint's recorded root is provenance, not a default: the dataset's own default
    # location is tried instead, and the message says the dataset came from the checkpoint
    save_checkpoint(tmp_path / "shipped.pt", {**state, "export": {"dtype": "float16"}})
    assert main([*args[:3], str(tmp_path / "shipped.pt"), *args[4:]]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path / "gone") not in err and "default data location" in err
    # the flags replace the defaults
    assert main([*args, "--dataset", "digits", "--limit", "20"]) == 0
