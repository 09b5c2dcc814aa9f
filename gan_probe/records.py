"""Typed configuration records read back from saved dictionaries (checkpoints, k-means dictionaries)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def from_known_fields(cls: type[T], data: dict[str, Any], what: str) -> T:
    """``cls(**data)`` for a dataclass ``cls``, refusing keys it does not have instead of dropping them.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Point:
    ...     x: int = 0
    >>> from_known_fields(Point, {"x": 2}, "point")
    Point(x=2)
    >>> from_known_fields(Point, {"x": 2, "y": 3}, "point")
    Traceback (most recent call last):
    ...
    gan_probe.errors.ConfigError: point: unknown keys ['y']
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: expected a dictionary of settings, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"{what}: unknown keys {sorted(unknown)}")
    return cls(**data)
