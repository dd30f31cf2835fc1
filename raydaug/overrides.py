"""The ``--set KEY=VALUE`` and ``--grid KEY=V1,V2`` arguments as data: parsed here, in the core, because
both the CLI and :mod:`raydaug.tune` read them (and nothing may import the CLI)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from raydaug.config import FIELD_TYPES, coerce
from raydaug.errors import ConfigError


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``["alpha=0.1", "aug=light"]`` → dict of strings, rejecting malformed entries and unknown keys
    (the values are typed later, by ``Config.from_dict``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key = key.strip()
        if key not in FIELD_TYPES:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(FIELD_TYPES))}")
        out[key] = value.strip()
    return out


def parse_grid(pairs: Iterable[str]) -> dict[str, list[Any]]:
    """``["seed=3,4,5"]`` → ``{"seed": [3, 4, 5]}``: each key's values typed as the key's field,
    rejecting unknown keys, empty or repeated values and a key given twice."""
    out: dict[str, list[Any]] = {}
    for pair in pairs:
        (key, text), = parse_overrides([pair]).items()
        values = [part.strip() for part in text.split(",")]
        if key in out:
            raise ConfigError(f"--grid {key} is given twice; list all its values once: {key}=A,B,C")
        if any(not value for value in values):
            raise ConfigError(f"--grid expects key=value1,value2,..., got {pair!r}")
        typed = [coerce(key, value) for value in values]
        if len(set(map(repr, typed))) < len(typed):
            raise ConfigError(f"--grid {pair!r} repeats a value")
        out[key] = typed
    return out
