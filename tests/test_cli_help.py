"""What the command line tells a newcomer: every option explains itself in --help without "(default: None)" noise,
a mistyped flag points to the subcommand's own help, and every flag an error message suggests exists on the
command that prints it."""
import argparse
import ast
import pathlib
import re
import warnings

import numpy as np
import pytest
import torch

from gan_probe.cli import COMMANDS, build_parser, main

ROOT = pathlib.Path(__file__).resolve().parents[1] / "gan_probe"
FLAG = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*")


def _subparsers(parser, prefix="gan-probe"):
    """(name, parser) for every (sub)command that takes options: `gan-probe svm`, `gan-probe viz samples`, ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from _subparsers(sub, f"{prefix} {name}")
                else:
                    yield f"{prefix} {name}", sub


def _options(parser) -> set[str]:
    found = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


PARSER = build_parser()
SUBCOMMANDS = dict(_subparsers(PARSER))
TOP = {name: sub for name, sub in next(a for a in PARSER._actions
                                       if isinstance(a, argparse._SubParsersAction)).choices.items()}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_option_has_a_help_text_and_at_most_one_meaningful_default(name):
    parser = SUBCOMMANDS[name]
    text = " ".join(parser.format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        shown = action.option_strings or [action.dest]
        assert action.help, f"{name} {shown[0]} has no help text"
        expanded = formatter._expand_help(action)
        assert expanded.count("(default:") <= 1, (name, shown[0], expanded)
        if action.required:
            assert "(default" not in expanded, (name, shown[0], expanded)


@pytest.mark.parametrize("argv,prog", [(["extract", "--out", "x", "--no-such-flag"], "gan-probe extract"),
                                       (["viz", "samples", "--checkpoint", "c", "--out", "o", "--nope"],
                                        "gan-probe viz samples")])
def test_an_unrecognised_flag_points_to_the_subcommands_help(argv, prog, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"{prog}: error: unrecognized arguments: {argv[-1]}") and f"(see {prog} --help)" in err


# ---- flags suggested by error messages ---------------------------------------------------------------------------

# modules whose error messages only one command prints (shared ones, e.g. gan_probe/data, are checked through the
# commands that quote them: see the dynamic tests below)
ERROR_MODULES = {
    "inception-score": ["metrics/evaluate.py", "metrics/sources.py"],
    "fid": ["metrics/sources.py", "metrics/fid.py"],
    "kmeans": ["baselines/config.py", "baselines/kmeans.py", "baselines/patches.py", "baselines/pixels.py"],
    "svm": ["probe/config.py", "probe/labels.py", "probe/protocols.py", "probe/svm.py", "features/pooling.py"],
    "extract": ["features/extract.py", "features/pooling.py", "data/holdout.py"],
    "viz": ["viz/arithmetic.py", "viz/common.py", "viz/filters.py", "viz/interpolate.py", "viz/neighbours.py",
            "viz/samples.py"],
    "convert": ["convert/dcgan_code.py"],
    "report": ["report/build.py", "report/results.py"],
    "export": ["models/pretrained.py"],
    "train": ["training/config.py", "training/loop.py", "training/rundir.py", "training/control.py",
              "training/probe.py", "models/losses.py", "models/config.py"],
}


def _suggested_flags(path: pathlib.Path, command: str) -> set[tuple[str, str]]:
    """(command, flag) for every --flag in the text of a `raise` in ``path``; a flag that follows
    "gan-probe OTHER" in the same message belongs to OTHER."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Raise) and node.exc is not None):
            continue
        in_fstrings = {id(v) for j in ast.walk(node.exc) if isinstance(j, ast.JoinedStr) for v in j.values}
        texts = ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in j.values)
                 for j in ast.walk(node.exc) if isinstance(j, ast.JoinedStr)]
        texts += [c.value for c in ast.walk(node.exc)
                  if isinstance(c, ast.Constant) and isinstance(c.value, str) and id(c) not in in_fstrings]
        for text in texts:
            owner = command
            for piece in re.split(r"(gan-probe [a-z-]+)", text):
                if piece.startswith("gan-probe ") and piece[len("gan-probe "):] in COMMANDS:
                    owner = piece[len("gan-probe "):]
                    continue
                found |= {(owner, flag) for flag in FLAG.findall(piece)}
    return found


def _missing(pairs) -> list[str]:
    missing = []
    for command, flag in sorted(pairs):
        options = _options(TOP[command])
        if flag.endswith("-"):   # "--probe-*": a family of flags
            ok = any(o.startswith(flag) for o in options)
        else:
            ok = flag in options
        if not ok:
            missing.append(f"{command}: {flag}")
    return missing


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_flags_named_in_a_commands_error_messages_exist_on_it(command):
    files = [ROOT / "cli" / f"{COMMANDS[command]}.py"] + [ROOT / m for m in ERROR_MODULES.get(command, [])]
    pairs = set().union(*(_suggested_flags(f, command) for f in files))
    assert not _missing(pairs)


@pytest.fixture
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PROBE_CACHE", str(tmp_path / "cache"))   # empty: no weights anywhere
    monkeypatch.setenv("GAN_PROBE_OFFLINE", "1")
    monkeypatch.setenv("GAN_PROBE_PROGRESS", "0")
    images = tmp_path / "imgs.npy"
    np.save(images, np.zeros((4, 8, 8, 3), np.uint8))
    script = tmp_path / "module.pt"
    with warnings.catch_warnings():   # torch's deprecation notices for TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), str(script))
    return images, script


def _error_line(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_metric_commands_weight_errors_suggest_their_own_flags(_offline, tmp_path, monkeypatch, capsys):
    """The weight files are shared by inception-score (--weights) and fid (--fid-weights): each command's messages
    (offline, missing file, wrong kind of file, helper package absent) must name the flag that command has."""
    images, script = _offline
    messages = {
        "inception-score": [
            _error_line(capsys, ["inception-score", "--images", images]),
            _error_line(capsys, ["inception-score", "--images", images, "--weights", tmp_path / "none.pth"]),
            _error_line(capsys, ["inception-score", "--images", images, "--weights", script]),
        ],
        "fid": [
            _error_line(capsys, ["fid", images, images, "--fid-weights", "reference"]),
            _error_line(capsys, ["fid", images, images, "--fid-weights", tmp_path / "none.pth"]),
            _error_line(capsys, ["fid", images, images, "--fid-weights", script]),
        ],
    }
    from gan_probe.metrics import weights

    monkeypatch.setattr(weights, "helper_weights_file", lambda: None)
    messages["fid"].append(_error_line(capsys, ["fid", images, images, "--fid-weights", "helper"]))
    suggested = {(command, flag) for command, lines in messages.items() for line in lines
                 for flag in FLAG.findall(line)}
    assert ("inception-score", "--weights") in suggested and ("fid", "--fid-weights") in suggested
    assert not _missing(suggested), messages
