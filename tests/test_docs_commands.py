"""Every `gan-probe ...` command line in the README and docs/ parses with the current command-line interface,
so the documentation cannot drift from the flags (a renamed or removed flag fails here)."""
import re
import shlex
from pathlib import Path

import pytest

from gan_probe.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = ("", "bash", "sh", "console", "shell")


def shell_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks of a Markdown text whose language is a shell (or unnamed)."""
    blocks, current, language = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current, language = [], line[3:].strip()
            else:
                if language in SHELLS:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def command_lines(text: str) -> list[str]:
    """The gan-probe invocations in the fenced shell blocks of a Markdown page (continuations joined, comments
    dropped, `a && b` split), each as the arguments after the program name."""
    found = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            for part in re.split(r"&&|\|\||;|\|", line):
                words = shlex.split(part, comments=True)
                for i, word in enumerate(words):
                    if word.endswith("gan-probe"):
                        found.append(words[i + 1:])
                        break
                    if word == "-m" and i + 1 < len(words) and words[i + 1] == "gan_probe":
                        found.append(words[i + 2:])
                        break
    return found


def test_the_pages_hold_commands():
    counts = {page.name: len(command_lines(page.read_text())) for page in PAGES}
    assert counts["README.md"] >= 8 and sum(counts.values()) >= 30, counts


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_documented_command_parses(page, capsys):
    parser = build_parser()
    failures = []
    for argv in command_lines(page.read_text()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            failures.append(f"gan-probe {' '.join(argv)}: {capsys.readouterr().err.strip()}")
    assert not failures, "\n".join(failures)


def test_a_stale_flag_is_caught():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(command_lines("```bash\ngan-probe svm --features F --no-such-flag\n```")[0])
