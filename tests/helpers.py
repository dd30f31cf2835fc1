"""Small configs shared by the tests (digits, 16 px, tiny nets: an epoch takes well under a second)."""
from __future__ import annotations

from typing import Any

from raydaug.config import Config

TINY: dict[str, Any] = {
    "epochs": 2, "eval_every": 1, "checkpoint_every": 1, "ngf": 4, "noise_dim": 8,
    "train_per_class": 3, "val_per_class": 3, "batch_size": 10,
}


def tiny(**changes: Any) -> Config:
    return Config.from_dict({**TINY, **changes})


def comparable(values: dict) -> dict:
    """``values`` with NaN floats replaced by the string "nan", so two reports compare equal with ``==``
    when they agree (NaN != NaN: e.g. aug/label_kept is NaN while the teacher is young)."""
    return {key: "nan" if isinstance(value, float) and value != value else value for key, value in values.items()}
