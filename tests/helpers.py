"""Small configs shared by the tests (digits, 16 px, tiny nets: an epoch takes well under a second)."""
from __future__ import annotations

from typing import Any

from raydaug.config import Config
from raydaug.experiment import TINY_DIGITS

# the smoke runs' tiny digits settings (one definition: raydaug.experiment.TINY_DIGITS), two epochs, a
# checkpoint at each; G on light, a fixed base for the tests of the game (tests/test_pilot.py tests auto's pilot)
TINY: dict[str, Any] = {**TINY_DIGITS, "epochs": 2, "checkpoint_every": 1, "base_aug": "light"}


def tiny(**changes: Any) -> Config:
    return Config.from_dict({**TINY, **changes})


def set_args(values: dict[str, Any]) -> list[str]:
    """``--set KEY=VALUE`` arguments of ``raydaug train`` / ``tune`` for ``values``."""
    return [part for key, value in values.items() for part in ("--set", f"{key}={value}")]


def comparable(values: dict) -> dict:
    """``values`` with NaN floats replaced by the string "nan", so two reports compare equal with ``==``
    when they agree (NaN != NaN: e.g. aug/label_kept is NaN while the teacher is young)."""
    return {key: "nan" if isinstance(value, float) and value != value else value for key, value in values.items()}
