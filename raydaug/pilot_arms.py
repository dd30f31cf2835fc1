"""The pilot's arms as records a run can share (``base_aug=auto``, raydaug/train.py ``pilot``).

An arm is C alone with one hand-made augmentation on one split. Its record is what the pilot's choice needs:
the best and the last validation accuracy, and per validation image whether the classifier kept at the best
evaluation (the first of equals, the run's checkpoint rule) is right. A hand-made trial trains exactly the arm
that a pilot with the same :func:`arm_key` would train, bit for bit: the key hashes every config key a hand-made
training reads and the device kind. So a finished hand-made trial's record stands in for the pilot's arm.
``raydaug tune`` runs a tune_config's hand-made stage first, and the learned stage's pilots read its records
(``parquet/pilot_arms`` of the store) instead of training the same arms again.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import torch

from .config import Config
from .data import Splits
from .state import TrainState, evaluated_classifier
from .steps import classifier_correct

# keys a hand-made training never reads (G's, the discriminators', the pilot's own) and keys that change how a
# run is kept or named but not what it trains; tests/test_pilot_arms.py trains C with each of them changed
NOT_READ_BY_HAND_MADE = (
    "base_aug", "pilot_share", "pilot_prior", "joint", "g_checkpoint", "use_stn", "use_enc", "use_dec", "use_dc",
    "use_dd", "use_gadv", "gadv_form", "div_weight", "teacher_weight", "disc_aug_p", "stn_bound", "res_bound",
    "g_every", "soft_weight", "g_class_cond", "alpha", "beta", "gamma", "lr_g", "lr_dc", "lr_dd", "noise_dim",
    "noise_std", "ngf", "disc", "checkpoint_every", "preset", "device",
)


def arm_config(config: Config, name: str) -> Config:
    """The hand-made training the pilot of ``config`` runs for arm ``name``: ``pilot_epochs`` epochs, evaluated
    every ``eval_every`` epochs (at most every epoch of the arm); C on a frozen G (``joint=false``) pilots C
    alone as every run does (a hand-made config has no frozen G)."""
    epochs = config.pilot_epochs
    every = min(config.eval_every, epochs)
    return config.replace(aug=name, epochs=epochs, eval_every=every, checkpoint_every=every, joint=True,
                          g_checkpoint="")


def arm_key(config: Config, device: torch.device) -> str:
    """The key of a hand-made training (``config.aug`` a hand-made augmentation) on ``device``: equal keys, the
    same training. ``eval_every`` counts as the arm's (at most ``epochs``)."""
    values = {key: value for key, value in config.to_dict().items() if key not in NOT_READ_BY_HAND_MADE}
    values.update(eval_every=min(config.eval_every, config.epochs), device_type=device.type)
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:32]


def arm_record(state: TrainState, splits: Splits) -> dict[str, Any]:
    """A finished hand-made training's record: {"acc_val": best, "acc_val_last": last, "correct": per
    validation image, the classifier kept at the best evaluation (bool tensor on the CPU)}."""
    if state.best_classifier is None:
        raise ValueError("arm_record: the training kept no best classifier (it was never evaluated)")
    best = copy.deepcopy(evaluated_classifier(state))
    best.load_state_dict(state.best_classifier)
    val = splits.val
    correct = classifier_correct(best, splits, val.images, val.labels).cpu()
    last = classifier_correct(evaluated_classifier(state), splits, val.images, val.labels)
    return {"acc_val": float(state.best["acc/val"]), "acc_val_last": float(last.sum()) / max(1, last.numel()),
            "correct": correct}


def read_arms(store: str) -> dict[str, dict[str, Any]]:
    """{key: record} of the arms ``store`` (a run folder or URI) holds; empty when it holds none."""
    from .logging.reader import read_arm_records

    return {key: {**record, "correct": torch.tensor(record["correct"], dtype=torch.bool)}
            for key, record in read_arm_records(store).items()}


def save_arms(store: str, arms: list[tuple[str, str, int, dict[str, Any]]]) -> None:
    """Add (key, aug, epochs, record) of finished hand-made trainings to ``store``."""
    from .logging.parquet import write_arm_records

    write_arm_records(store, arms)
