import subprocess
import sys

import pytest

from gan_probe.cli import COMMANDS, build_parser, main


def test_every_subcommand_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: gan-probe " + name in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "gan_probe", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert set(COMMANDS) <= set(out.stdout.replace(",", " ").split())


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


@pytest.mark.parametrize("argv, says", [
    (["train", "--out", "runs/x"], "`gan-probe train --resume --out runs/x` continues from its last checkpoint"),
    (["extract", "--checkpoint", "c.pt", "--out", "feats"], "feats/.partial/ keeps the batch-norm statistics"),
    (["pipeline"], "finished stages are reused"),
    (["report", "results", "--out", "rep"], None),
])
def test_ctrl_c_says_what_a_rerun_reuses(argv, says, monkeypatch, capsys):
    import importlib

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(f"gan_probe.cli.{COMMANDS[argv[0]]}"), "run", interrupt)
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    if says is None:
        assert err == f"gan-probe {argv[0]}: interrupted"
    else:
        assert err.startswith(f"gan-probe {argv[0]}: interrupted; ") and says in err
