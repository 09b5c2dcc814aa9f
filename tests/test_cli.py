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
