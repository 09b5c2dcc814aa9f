"""Progress reporting: one rule for every command.

* ``--no-progress``, or the environment variable ``GAN_PROBE_PROGRESS=0`` (false/no/off), turns it off.
* Otherwise, with stderr on a terminal, long work shows tqdm bars that update in place.
* With stderr not on a terminal (a log file, a pipe, a batch job), the same bars are written as plain lines: one
  when the work starts, then at most one every :data:`LINE_INTERVAL_S` seconds; no carriage returns, no escape
  codes. Commands add their own one-line messages for finished steps (``svm``: a line per fitted C and draw).

Commands decide with :func:`progress_enabled` and make bars with :func:`bar`.

>>> b = bar(range(3), enabled=False)
>>> list(b)
[0, 1, 2]
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Iterable

ENV_PROGRESS = "GAN_PROBE_PROGRESS"
LINE_INTERVAL_S = 30.0

_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def default_progress() -> bool:
    """Progress is on unless the environment variable GAN_PROBE_PROGRESS is 0/false/no/off."""
    return os.environ.get(ENV_PROGRESS, "1").strip().lower() not in ("0", "false", "no", "off")


def progress_enabled(no_progress: bool = False) -> bool:
    """The commands' rule: on unless ``--no-progress`` or ``GAN_PROBE_PROGRESS=0`` (terminal or not)."""
    return not no_progress and default_progress()


def on_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default: the current ``sys.stderr``) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Lines:
    """A file for tqdm that turns its in-place updates into whole lines on the current ``sys.stderr``."""

    def write(self, text: str) -> int:
        for piece in re.split(r"[\r\n]", _TERMINAL_CODES.sub("", str(text))):
            if piece.strip():
                sys.stderr.write(piece.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def bar(iterable: Iterable | None = None, *, enabled: bool = True, start_line: bool = True, **kwargs: Any):
    """A tqdm progress bar following the rule above; ``enabled=False`` gives a silent pass-through.

    ``start_line=False``: off a terminal, no line when the work starts, only once it has run for
    :data:`LINE_INTERVAL_S` (for many short inner steps, e.g. one solver run per C, that the caller reports itself).
    ``kwargs`` are tqdm's (``total``, ``desc``, ``unit``, ``leave``, ...)."""
    from tqdm.auto import tqdm

    enabled = enabled and not kwargs.pop("disable", False)
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if on_terminal():
        return tqdm(iterable, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    kwargs.pop("position", None)
    kwargs.update(file=_Lines(), ascii=True, ncols=None, mininterval=LINE_INTERVAL_S, maxinterval=LINE_INTERVAL_S)
    if not start_line:
        kwargs["delay"] = LINE_INTERVAL_S

    class LineBar(tqdm):  # a new postfix or description waits for the next line instead of forcing one
        def set_postfix(self, ordered_dict=None, refresh=True, **kw):
            super().set_postfix(ordered_dict, refresh=False, **kw)

        def set_description(self, desc=None, refresh=True):
            super().set_description(desc, refresh=False)

    return LineBar(iterable, **kwargs)
