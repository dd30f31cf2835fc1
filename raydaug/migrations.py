"""Logged configs of earlier versions, brought to today's keys one version at a time.

Every config a run logs (a trials row, a checkpoint, an exported schedule) carries the version of the
schema it was written by (``config_version``, :data:`raydaug.config.CONFIG_VERSION`); one logged without
it is version 0. ``MIGRATIONS[v]`` takes a config of version ``v`` to ``v + 1``: a pure function of the
values. What cannot be rebuilt today (a removed feature that a run trained) the steps keep as it is, for
analysis, which only compares values; :func:`migrate` refuses it by name unless ``strict=False``.

A change to the schema needs a step here (and CONFIG_VERSION one higher) when a config logged before it
would read differently after it: a key added with a default that is not what earlier runs trained, a key
removed, a value renamed. A key added with a default that keeps the earlier behaviour needs none: a key a
run did not log reads as its default.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError

VERSION_KEY = "config_version"

# v0 → v1: the value each key trained with before it existed
LEGACY_VALUES: dict[str, Any] = {"base_aug": "none", "teacher_weight": 0.0, "eval_ema": False, "div_weight": 0.0}
# v1 → v2: each removed key with the value at which it did nothing (None: it did nothing by itself)
REMOVED_INERT: dict[str, Any] = {
    "flow_bound": 0.0, "lr_c_final": 1.0, "c_aug_weight": 0.5, "replay_size": 0, "replay_every": None,
    "warp_bound": 0.0, "meta_lr": 0.0, "c_views": 1,
}


def legacy_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """v0 → v1. Four keys came after the first runs and then changed their default: the mode-seeking term
    (div_weight, off at first), the hand-made augmentation under G (base_aug, G first worked on the raw
    images), the EMA teacher's term in G's loss (teacher_weight, absent at first) and the classifier that
    acc/* measure (eval_ema, C itself at first). A config that did not log one of them trained with that
    earlier value, not with today's default, so it is filled in."""
    return {**LEGACY_VALUES, **values}


def removed_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """v1 → v2. Eight keys were measured and then removed (docs/study-log.md records each study): a learned
    smooth warp in the U-Net (flow_bound), a cosine of C's learning rate (lr_c_final), the augmented half's
    share of C's loss (c_aug_weight), snapshot replay of G for C (replay_size, replay_every), a learned
    displacement field in the STN (warp_bound), a bilevel term in G's loss (meta_lr) and several augmented
    views per image for C (c_views). A config that held one at the value where it did nothing loses it; one
    that trained the removed feature keeps it (analysis reads such a trial as a variant of its own; a replay
    or a checkpoint of it is refused by :func:`migrate`)."""
    return {key: value for key, value in values.items() if key not in REMOVED_INERT or not _inert(key, value)}


def _inert(key: str, value: Any) -> bool:
    inert = REMOVED_INERT[key]
    try:
        return inert is None or float(value) == float(inert)
    except (TypeError, ValueError):
        return False


# v2 → v3: base_aug=auto stood G on a hand-made augmentation chosen by this table of study results (dataset,
# and few training images per class or not); since v3 a pilot on the split's validation chooses it
RULE_FEW_PER_CLASS = 3
RULE_BASE_AUG = {"mnist5k": "strong", "mnist": "strong"}
RULE_BASE_AUG_FEW = {"digits": "light"}
RULE_BASE_AUG_ELSE = "trivial"


def rule_base_aug(dataset: str, train_per_class: int) -> str:
    """What ``base_aug=auto`` meant up to config version 2, for ``dataset`` at ``train_per_class``."""
    by_dataset = RULE_BASE_AUG_FEW if train_per_class <= RULE_FEW_PER_CLASS else RULE_BASE_AUG
    return by_dataset.get(dataset, RULE_BASE_AUG_ELSE)


def auto_by_rule(values: Mapping[str, Any]) -> dict[str, Any]:
    """v2 → v3. ``base_aug=auto`` (the default, so also a config that did not log it) meant a rule keyed by
    dataset and training set size (docs/study-log.md, "auto by size"); today it means a pilot on validation.
    A learned trial logged with it trained on the rule's choice, so that is filled in. Configs of the
    hand-made arms keep ``auto``: nothing stood on it."""
    values = dict(values)
    if values.get("aug", "learned") == "learned" and values.get("base_aug", "auto") == "auto":
        values["base_aug"] = rule_base_aug(values.get("dataset", "digits"), int(values.get("train_per_class", 10)))
    return values


def pilot_without_prior(values: Mapping[str, Any]) -> dict[str, Any]:
    """v3 → v4. ``base_aug=auto``'s pilot stood G on the validation-best hand-made augmentation; since v4 it
    keeps a prior arm unless the validation-best beats it by a paired test (``pilot_prior``). A learned trial
    logged with ``auto`` before then had no prior, so ``pilot_prior=none`` is filled in; hand-made arms and
    trials that named their base keep the default (nothing read it)."""
    values = dict(values)
    if values.get("aug", "learned") == "learned" and values.get("base_aug", "auto") == "auto":
        values.setdefault("pilot_prior", "none")
    return values


MIGRATIONS: tuple[Callable[[Mapping[str, Any]], dict[str, Any]], ...] = (legacy_defaults, removed_keys,
                                                                         auto_by_rule, pilot_without_prior)


def logged_version(values: Mapping[str, Any]) -> int:
    """The config version ``values`` were logged at: 0 for a config logged before versions existed."""
    if VERSION_KEY not in values:
        return 0
    version = values[VERSION_KEY]
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError(f"{VERSION_KEY}={version!r} is not a config version (a whole number ≥ 0)")
    return version


def migrate(values: Mapping[str, Any], strict: bool = True) -> dict[str, Any]:
    """``values`` (a logged config, with or without its ``config_version``) brought to today's version by
    every step from the version it was logged at; the result has no ``config_version``. A removed key at the
    value where it did nothing is dropped whatever the version. ``strict`` refuses, with a ConfigError naming
    the key, a config that trained a removed feature and one of a newer version; ``strict=False`` keeps both
    as they are, for analysis, which only compares values."""
    version = logged_version(values)
    values = {key: value for key, value in values.items() if key != VERSION_KEY}
    if version > len(MIGRATIONS):
        if strict:
            raise ConfigError(f"config version {version} was logged by a newer raydaug; this one reads "
                              f"versions up to {len(MIGRATIONS)}")
        return values
    for step in MIGRATIONS[version:]:
        values = step(values)
    # a removed key never comes back, whatever version a config claims (analysis stamps today's on what it read)
    values = removed_keys(values)
    removed = {key: value for key, value in values.items() if key in REMOVED_INERT}
    if removed and strict:
        raise ConfigError("trained with " + ", ".join(
            f"{key}={value!r} (removed in config version 2, docs/study-log.md)" for key, value in removed.items())
            + ": this version cannot rebuild it")
    return values
