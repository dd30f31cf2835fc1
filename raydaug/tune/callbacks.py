"""Driver-side Tune callbacks: the progress table printed while an experiment runs."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from raydaug.config import HPARAM_METRICS

HPARAM_COLUMNS = (("alpha", "α"), ("beta", "β"), ("gamma", "γ"), ("teacher_weight", "teacher"), ("lr_c", "lr_c"),
                  ("lr_g", "lr_g"), ("lr_dc", "lr_dc"), ("lr_dd", "lr_dd"))


def _number(value: Any, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def _live(result: dict[str, Any], config: dict[str, Any], key: str) -> Any:
    reported = result.get(HPARAM_METRICS[key])
    return config.get(key) if reported is None else reported


def progress_table(trials: Sequence[Any], metric: str = "acc/val", statuses: Mapping[str, str] | None = None) -> str:
    """One line per trial: id, status, iteration, the metric, then α, β, γ, the teacher's weight and the four learning
    rates as the trainer last reported them (a schedule's change or a PBT mutation shows from the trial's next
    report on), else as its config gives them. ``statuses`` (trial id → status) overrides the trials' own."""
    header = ["trial", "status", "iter", metric, *(label for _, label in HPARAM_COLUMNS)]
    rows = [header]
    for trial in trials:
        result = trial.last_result or {}
        config = trial.config or {}
        rows.append([
            trial.trial_id, (statuses or {}).get(trial.trial_id, trial.status),
            str(result.get("training_iteration", 0)),
            _number(result.get(metric), ".4f"),
            *(_number(_live(result, config, key), ".3g") for key, _ in HPARAM_COLUMNS),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


class ProgressTable(Callback):
    """Prints the table at most every ``interval_s`` seconds, whenever a trial changes state, and at the end."""

    def __init__(self, metric: str = "acc/val", interval_s: float = 15.0,
                 write: Callable[[str], None] | None = None):
        self.metric = metric
        self.interval_s = interval_s
        self.write = write or _stdout
        self._last = 0.0

    def _print(self, trials: Sequence[Any], title: str, statuses: Mapping[str, str] | None = None) -> None:
        self._last = time.monotonic()
        self.write(f"== {title} ({time.strftime('%H:%M:%S')}) ==\n{progress_table(trials, self.metric, statuses)}\n")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.monotonic() - self._last >= self.interval_s:
            self._print(trials, "progress")

    # Tune calls these before it sets the trial's new status: the table says what the title says
    def on_trial_complete(self, iteration, trials, trial, **info):
        self._print(trials, f"trial {trial.trial_id} finished", {trial.trial_id: Trial.TERMINATED})

    def on_trial_error(self, iteration, trials, trial, **info):
        self._print(trials, f"trial {trial.trial_id} failed", {trial.trial_id: Trial.ERROR})

    def on_experiment_end(self, trials, **info):
        self._print(trials, "final")


class RegisterCheckpointOnce(Callback):
    """With a function trainable, PBT saves an upper-quantile trial's checkpoint itself and Tune then
    registers the same checkpoint again (the result says ``should_checkpoint``); the duplicate entry
    makes ``num_to_keep`` delete the folder twice. When the scheduler already scheduled the save for
    this result, tell Tune not to do it again (callbacks may edit the result in place for this)."""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("should_checkpoint") and trial.is_saving:
            result["should_checkpoint"] = False


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
