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
