"""The package, its tests and its benchmarks have no pyflakes findings: unused imports and variables, undefined
names, f-strings without placeholders (``flake8 --select F``), and no line longer than 120 characters (E501). A
deliberate exception says so on its line (``# noqa: F401 - why``)."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_pyflakes_findings_and_no_line_over_120_characters():
    pytest.importorskip("flake8", reason="flake8 comes with the test extra: pip install -e '.[test]'")
    run = subprocess.run([sys.executable, "-m", "flake8", "--select", "F,E501", "--max-line-length", "120",
                          "gan_probe", "tests", "benchmarks"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
