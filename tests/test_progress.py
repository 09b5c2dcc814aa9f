"""One progress rule for every command (gan_probe/progress.py): bars on a terminal, plain periodic lines
otherwise, nothing with --no-progress or GAN_PROBE_PROGRESS=0."""
import io
import sys

from gan_probe import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_on_unless_the_flag_or_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("GAN_PROBE_PROGRESS", raising=False)
    assert progress.progress_enabled() and not progress.progress_enabled(no_progress=True)
    for off in ("0", "false", "no", "off"):
        monkeypatch.setenv("GAN_PROBE_PROGRESS", off)
        assert not progress.progress_enabled()


def test_off_a_terminal_a_bar_is_whole_lines_at_most_every_interval(monkeypatch, capsys):
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 3600.0)
    with progress.bar(total=1000, desc="work", unit="row", leave=False) as b:
        for _ in range(1000):
            b.update()
            b.set_postfix(loss=1.0)   # a new postfix waits for the next line
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert err.splitlines() == ["work:   0%|          | 0/1000 [00:00<?, ?row/s]"]   # the start line only


def test_off_a_terminal_a_quiet_bar_writes_nothing_for_short_work(capsys):
    with progress.bar(total=3, desc="Newton", start_line=False, leave=False) as b:
        b.update(3)
    assert capsys.readouterr().err == ""


def test_on_a_terminal_it_is_an_ordinary_tqdm_bar(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress.bar(total=2, desc="work", leave=True) as b:
        b.update(2)
    assert "\rwork: 100%" in terminal.getvalue()


def test_disabled_is_a_silent_pass_through(capsys):
    assert list(progress.bar(range(3), enabled=False, desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
