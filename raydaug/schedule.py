"""A PBT hyperparameter schedule as data, and the one check every reader of one uses.

Format (``raydaug schedule export`` writes it, ``raydaug schedule replay`` reads it)::

    {"trial_id": str, "metric": "acc/val", "initial_config": {full Config dict, "config_version": int},
     "changes": [{"training_iteration": k, "config": {MUTABLE_HPARAMS key: value, ...}}, ...]}

``initial_config`` is read by ``Config.from_logged``: one without ``config_version`` (exported before
versions existed) is migrated from version 0 (raydaug/migrations.py).

A change at ``k`` governs the training of iterations ``k + 1`` onwards (as in Ray's
``PopulationBasedTrainingReplay``). Iterations are whole numbers ≥ 1 and strictly increasing: two
changes at one iteration would be one change, and a change at 0 is the initial config. Pure Python
(no Ray): ``analysis.schedule`` and ``raydaug.tune`` both call :func:`check_schedule`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .config import MUTABLE_HPARAMS, Config
from .errors import ConfigError

FIELDS = ("trial_id", "initial_config", "changes")


def check_schedule(schedule: Any, source: str = "schedule") -> tuple[Config, list[tuple[int, dict[str, Any]]]]:
    """(initial Config, [(iteration, changed values)]) of a valid schedule; ConfigError naming ``source``
    and the problem otherwise."""
    if not isinstance(schedule, Mapping) or not set(FIELDS) <= set(schedule):
        raise ConfigError(f"{source} is not a raydaug schedule (needs {', '.join(FIELDS)})")
    if not isinstance(schedule["initial_config"], Mapping):
        raise ConfigError(f"{source}: initial_config must be a config dict")
    try:
        initial = Config.from_logged(schedule["initial_config"])
    except ConfigError as error:
        raise ConfigError(f"{source}: initial_config is not a valid config: {error}") from None
    if not isinstance(schedule["changes"], (list, tuple)):
        raise ConfigError(f"{source}: changes must be a list")
    changes: list[tuple[int, dict[str, Any]]] = []
    previous = 0
    for change in schedule["changes"]:
        iteration = change.get("training_iteration") if isinstance(change, Mapping) else None
        values = change.get("config") if isinstance(change, Mapping) else None
        if (not isinstance(iteration, int) or isinstance(iteration, bool) or iteration <= previous
                or not isinstance(values, Mapping)):
            raise ConfigError(f"{source}: changes must be {{training_iteration: int, config: {{...}}}} with "
                              f"strictly increasing iterations ≥ 1 (got {change!r} after iteration {previous})")
        unknown = sorted(set(values) - set(MUTABLE_HPARAMS))
        if unknown:
            raise ConfigError(f"{source}: the change at iteration {iteration} sets {unknown}, which are not "
                              f"mutable ({', '.join(MUTABLE_HPARAMS)})")
        try:
            initial.replace(**values)
        except ConfigError as error:
            raise ConfigError(f"{source}: the change at iteration {iteration} is invalid: {error}") from None
        changes.append((iteration, dict(values)))
        previous = iteration
    return initial, changes


def changes_through(changes: Iterable[tuple[int, Mapping[str, Any]]], iteration: int) -> dict[str, Any]:
    """The values set by every change at or before ``iteration``, later ones winning: what governs the
    training of iteration ``iteration + 1``."""
    values: dict[str, Any] = {}
    for at, change in changes:
        if int(at) <= iteration:
            values.update(change)
    return values
