"""``base_aug=auto``'s choice: which hand-made augmentation G stands on, from what the pilot measured on the
split's validation images (raydaug/train.py, ``pilot``).

The validation-best of eight arms on a few hundred images is a noisy pick: on digits' 300 validation images it
often named an arm that did worse on test than RandAugment (docs/study-log.md, "A prior for the pilot"). So the
pilot keeps a prior arm (``pilot_prior``) unless the validation-best beats it on the same validation images by
a paired one-sided test at 5 %: McNemar's z = (b − c) / √(b + c), where b counts the images the validation-best
gets right and the prior gets wrong, and c the reverse, each arm at its best evaluation.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

NO_PRIOR = "none"  # pilot_prior=none: no prior (the arm without augmentation never is one), the validation-best
PRIOR_Z = 1.645  # the one-sided 5 % point of the standard normal


def paired_z(challenger: torch.Tensor, prior: torch.Tensor) -> float:
    """McNemar's z of ``challenger`` over ``prior`` from their per-image correctness on the same images
    (0 where they disagree on none)."""
    wins = int((challenger & ~prior).sum())
    losses = int((prior & ~challenger).sum())
    return 0.0 if wins + losses == 0 else (wins - losses) / math.sqrt(wins + losses)


def choose(best: Mapping[str, float], last: Mapping[str, float], correct: Mapping[str, torch.Tensor],
           order: Sequence[str], prior: str) -> dict[str, Any]:
    """The arm G stands on, from each arm's best and last validation accuracy and its per-image correctness at
    its best evaluation: the validation-best (ties: the better last evaluation, then ``order``), unless a
    ``prior`` is named and the validation-best does not beat it by ``PRIOR_Z``. Returns {"choice",
    "val_best", "prior", "z"} (z: the validation-best's paired z over the prior; None without a prior)."""
    val_best = max(order, key=lambda name: (best[name], last[name]))  # max keeps the first of equals
    if prior == NO_PRIOR:
        return {"choice": val_best, "val_best": val_best, "prior": prior, "z": None}
    z = 0.0 if val_best == prior else paired_z(correct[val_best], correct[prior])
    return {"choice": val_best if z > PRIOR_Z else prior, "val_best": val_best, "prior": prior, "z": z}


def pilot_line(outcome: Mapping[str, Any]) -> str:
    """One line saying what the pilot chose and why."""
    scores = sorted(outcome["acc_val"].items(), key=lambda item: -item[1])
    why = ""
    if outcome.get("z") is not None and outcome["val_best"] != outcome["prior"]:
        kept = outcome["choice"] == outcome["prior"]
        why = (f"; the prior {outcome['prior']} {'kept' if kept else 'left'}: {outcome['val_best']}'s paired z "
               f"{outcome['z']:.2f} {'≤' if kept else '>'} {PRIOR_Z}")
    return (f"base_aug=auto: pilot of {len(scores)} hand-made augmentations × {outcome['epochs']} epochs on "
            f"validation → G stands on {outcome['choice']} ("
            + ", ".join(f"{name} {score:.4f}" for name, score in scores) + why + ")")
