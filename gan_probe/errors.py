"""User-facing errors.

Every problem caused by the user's input (a missing file, a malformed array, a bad flag value) is raised as
:class:`GanProbeError` with a one-line message that names the file or flag and says what was expected. The
command-line layer prints it as ``error: <message>`` and exits with status 2; nothing is written.
"""
from __future__ import annotations


class GanProbeError(Exception):
    """An error the user can fix; its message is a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class DataError(GanProbeError):
    """A dataset file is missing, unreadable or not in the expected format."""


class MissingSplitError(DataError):
    """The dataset has no such split (e.g. image folders without ``test/``). ``split`` names it; commands that can
    carve a test set out of the training split add that they can (``--holdout N``)."""

    def __init__(self, message: str, split: str | None = None):
        super().__init__(message)
        self.split = split


class CheckpointError(GanProbeError):
    """A checkpoint is missing, corrupt or incompatible with the requested model."""


class FeatureStoreError(GanProbeError):
    """A feature store directory is incomplete or inconsistent."""


class ConfigError(GanProbeError):
    """A configuration file or option value is invalid."""


def brief(detail: object, limit: int = 120) -> str:
    """The first line of ``detail`` (an exception or text), whitespace collapsed, cut at a word boundary.

    For quoting a library's message inside a one-line :class:`GanProbeError`; an exception with no text gives its
    type's name.

    >>> brief(ValueError("first line\\nsecond line"))
    'first line'
    >>> brief("Cannot use weights_only=True with TorchScript archives", limit=30)
    'Cannot use weights_only=True...'
    """
    text = str(detail).strip()
    first = " ".join((text.splitlines() or [""])[0].split())
    if not first and isinstance(detail, BaseException):
        first = type(detail).__name__
    if len(first) <= limit:
        return first
    cut = first[:limit + 1].rsplit(" ", 1)[0] if " " in first[:limit + 1] else first[:limit]
    return cut.rstrip(" ,;:(") + "..."
