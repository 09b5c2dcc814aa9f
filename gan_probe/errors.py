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


class CheckpointError(GanProbeError):
    """A checkpoint is missing, corrupt or incompatible with the requested model."""


class FeatureStoreError(GanProbeError):
    """A feature store directory is incomplete or inconsistent."""


class ConfigError(GanProbeError):
    """A configuration file or option value is invalid."""
