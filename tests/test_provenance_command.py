"""The command recorded in provenance is the one a user would retype, without install paths."""
from gan_probe.provenance import command_line


def test_console_script_is_recorded_without_its_install_path():
    argv = ["/opt/venv/bin/gan-probe", "svm", "--features", "my feats", "--C", "0.01"]
    assert command_line(argv) == "gan-probe svm --features 'my feats' --C 0.01"


def test_module_form_and_other_programs():
    assert command_line(["/src/gan_probe/__main__.py", "report", "r.json"]) == "python -m gan_probe report r.json"
    assert command_line(["/usr/bin/pytest", "-q"]) == "/usr/bin/pytest -q"
    assert command_line([]) == ""
