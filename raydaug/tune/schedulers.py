"""PBT / PB2 over the live hyperparameters.

Both population schedulers subclass Ray's so that every exploit (a) writes one ``pbt_events`` row per
mutated key on the driver, taken from the scheduler's own decision, and (b) copies the donor's
checkpoint to a folder the exploited trial owns, so ``CheckpointConfig(num_to_keep=...)`` may delete
the donor's copy while the exploited trial still waits for a free slot.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
from ray import tune
from ray.train._internal.checkpoint_manager import _TrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2, import_pb2_dependencies

from raydaug.config import MUTABLE_HPARAMS, Config
from raydaug.errors import ConfigError
from raydaug.experiment import PBT_MUTATIONS
from raydaug.logging.parquet import pbt_events_writer, resolve

SCHEDULERS = ("fifo", "pbt", "pb2")
SCHEDULER_OPTIONS = ("mutations", "perturbation_interval", "burn_in_period", "quantile_fraction",
                     "resample_probability", "metric", "mode", "synch", "perturbation_factors")


@dataclass(frozen=True)
class PopulationSettings:
    """Validated PBT/PB2 settings, derived from an Experiment's ``scheduler_options``."""

    mutations: dict[str, tuple[float, float]]
    perturbation_interval: int
    burn_in_period: int
    quantile_fraction: float
    resample_probability: float
    perturbation_factors: tuple[float, float]
    metric: str
    mode: str
    synch: bool


def checkpoint_interval(config: Config) -> int:
    """Training iterations (reports) between two checkpoints."""
    return config.checkpoint_every // config.eval_every


def population_settings(options: Mapping[str, Any], base: Config, metric: str, mode: str) -> PopulationSettings:
    """Check ``scheduler_options`` against the config validator before any trial starts."""
    unknown = sorted(set(options) - set(SCHEDULER_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown scheduler option(s) {unknown}; allowed: {', '.join(SCHEDULER_OPTIONS)}")
    if "mutations" in options:
        raw = options["mutations"]
    else:  # a run without the teacher's term (teacher_weight=0, e.g. preset=paper_method) keeps it off
        raw = {key: bounds for key, bounds in PBT_MUTATIONS.items()
               if not (key == "teacher_weight" and base.teacher_weight == 0)}
    mutations: dict[str, tuple[float, float]] = {}
    for key, bounds in dict(raw).items():
        if key not in MUTABLE_HPARAMS:
            raise ConfigError(f"mutation of {key!r} is not possible: a running trial can only change "
                              f"{', '.join(MUTABLE_HPARAMS)}")
        try:
            low, high = (float(value) for value in bounds)
        except (TypeError, ValueError):
            raise ConfigError(f"mutation range of {key!r} must be (low, high), got {bounds!r}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or not 0 < low < high:
            raise ConfigError(f"mutation range of {key!r} is ({low}, {high}); it is sampled log-uniformly, "
                              "so it needs 0 < low < high")
        for value in (low, high):
            try:
                base.replace(**{key: value})
            except ConfigError as error:
                raise ConfigError(f"mutation range of {key!r} ({low}, {high}) leaves the allowed values: "
                                  f"{error}") from None
        mutations[key] = (low, high)
    if not mutations:
        raise ConfigError("a population scheduler needs at least one mutated hyperparameter")
    interval = checkpoint_interval(base)
    perturbation = int(options["perturbation_interval"]) if "perturbation_interval" in options else interval
    if perturbation < 1 or perturbation % interval:
        raise ConfigError(f"perturbation_interval={perturbation} must be a positive multiple of the checkpoint "
                          f"interval ({interval} iterations = checkpoint_every/eval_every): exploits copy checkpoints")
    quantile = float(options["quantile_fraction"]) if "quantile_fraction" in options else 0.25
    if not 0 < quantile <= 0.5:
        raise ConfigError(f"quantile_fraction={quantile} must be in (0, 0.5]")
    resample = float(options["resample_probability"]) if "resample_probability" in options else 0.25
    if not 0 <= resample <= 1:
        raise ConfigError(f"resample_probability={resample} must be in [0, 1]")
    factors = (tuple(float(f) for f in options["perturbation_factors"]) if "perturbation_factors" in options
               else (1.2, 0.8))
    if len(factors) != 2 or min(factors) <= 0:
        raise ConfigError(f"perturbation_factors={factors} must be two positive numbers")
    metric = str(options["metric"]) if "metric" in options else metric
    mode = str(options["mode"]) if "mode" in options else mode
    if mode not in ("min", "max"):
        raise ConfigError(f"mode={mode!r} must be 'min' or 'max'")
    burn_in = int(options["burn_in_period"]) if "burn_in_period" in options else 0
    return PopulationSettings(mutations=mutations, perturbation_interval=perturbation, burn_in_period=burn_in,
                              quantile_fraction=quantile, resample_probability=resample,
                              perturbation_factors=factors, metric=metric, mode=mode,
                              synch=bool(options["synch"]) if "synch" in options else False)


class ClampToRanges:
    """PBT's ×1.2/×0.8 perturbations may walk out of the search range; keep them inside it.
    A class (not a lambda) so the scheduler pickles into the experiment state for --resume."""

    def __init__(self, ranges: Mapping[str, tuple[float, float]]):
        self.ranges = dict(ranges)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high) in self.ranges.items():
            if key in config:
                config[key] = float(min(high, max(low, float(config[key]))))
        return config


class _ExploitRecorder:
    """Mixin for Ray's PBT and PB2: Parquet ``pbt_events`` rows, a private copy of the donor's checkpoint,
    and a fair choice of the next trial to run after an exploit."""

    run_dir: str
    event_keys: tuple[str, ...]

    def _waiting_after_exploit(self) -> set[str]:
        """Ids of the trials exploited since they last reported (a set made on first use, so that a
        scheduler pickled before this attribute existed still restores)."""
        if not hasattr(self, "_exploited_not_run"):
            self._exploited_not_run: set[str] = set()
        return self._exploited_not_run

    def choose_trial_to_run(self, tune_controller):
        """Ray's PBT runs the waiting trial with the smallest ``last_train_time``; an exploited trial
        inherits its donor's, so on a tie with that donor (both paused: more trials than slots) it ran
        again, reported below the donor's stale score and cloned the same checkpoint of the donor again,
        up to 37 times in a row (seen with 2 trials on 1 slot). On a tie, a trial not just exploited
        runs first."""
        chosen = super().choose_trial_to_run(tune_controller)
        waiting = self._waiting_after_exploit()
        if chosen is None or chosen.trial_id not in waiting:
            return chosen
        time = self._trial_state[chosen].last_train_time
        for other in tune_controller.get_trials():
            if (other is not chosen and other.status in (Trial.PENDING, Trial.PAUSED)
                    and other.trial_id not in waiting and self._trial_state[other].last_train_time == time):
                return other
        return chosen

    def on_trial_result(self, tune_controller, trial, result):
        self._waiting_after_exploit().discard(trial.trial_id)
        _sync_checkpoint_index(trial, result)
        if _is_last_report(trial, result):
            # an exploit now would restore a checkpoint and end at once: nothing would train on it
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _exploit(self, tune_controller, trial, trial_to_clone):  # noqa: D401 - Ray's hook
        old_config = dict(trial.config)
        donor_result = self._trial_state[trial_to_clone].last_result or {}
        own_result = self._trial_state[trial].last_result or {}
        super()._exploit(tune_controller, trial, trial_to_clone)
        self._waiting_after_exploit().add(trial.trial_id)
        self._own_checkpoint(trial)
        if not self._synch:  # synchronous PBT pauses with a checkpoint, which Ray does register
            _drop_unregistered_checkpoint(trial, own_result)
        iteration = int(donor_result.get("training_iteration", 0))
        writer = pbt_events_writer(self.run_dir)
        now = time.time()  # one exploit, one timestamp on all of its rows
        for key in self.event_keys:
            writer.append({
                "timestamp": now, "training_iteration": iteration,
                "src_trial": trial_to_clone.trial_id, "dst_trial": trial.trial_id, "key": key,
                "old_value": _float(old_config.get(key)), "new_value": _float(trial.config.get(key)),
            })
        writer.flush()

    def _own_checkpoint(self, trial) -> None:
        """Copy the donor checkpoint that Ray just pointed ``trial`` at into RUN_DIR/exploit_checkpoints/<trial>."""
        manager = trial.run_metadata.checkpoint_manager
        latest = manager._latest_checkpoint_result
        if latest is None or latest.checkpoint is None:
            return
        source = latest.checkpoint
        filesystem, root = resolve(self.run_dir)
        folder = f"{root}/exploit_checkpoints/{trial.trial_id}"
        target = f"{folder}/{time.time_ns()}"
        filesystem.create_dir(target, recursive=True)
        pafs.copy_files(source.path, target, source_filesystem=source.filesystem,
                        destination_filesystem=filesystem)
        # the previous copy was restored (and superseded by the trial's own checkpoints) before this exploit
        for info in filesystem.get_file_info(pafs.FileSelector(folder)):
            if info.path.rstrip("/") != target and info.type == pafs.FileType.Directory:
                filesystem.delete_dir(info.path)
        manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=tune.Checkpoint(path=target, filesystem=filesystem), metrics=latest.metrics)


def _is_last_report(trial, result: Mapping[str, Any]) -> bool:
    epochs = (trial.config or {}).get("epochs")
    epoch = result.get("epoch")
    return epochs is not None and epoch is not None and int(epoch) >= int(epochs)


def _sync_checkpoint_index(trial, result: Mapping[str, Any]) -> None:
    """Keep the driver's checkpoint counter ahead of every folder the trial has written.

    Ray counts a trial's checkpoint folders on the driver only when it registers one; the checkpoint
    that an exploited trial reported just before PBT paused it (``should_checkpoint=False``) is never
    registered, so the restarted actor would reuse that index and overwrite registered folders."""
    name = result.get("checkpoint_dir_name")
    if isinstance(name, str) and name.startswith("checkpoint_"):
        try:
            written = int(name.rsplit("_", 1)[1])
        except ValueError:
            return
        storage = trial.storage
        storage.current_checkpoint_index = max(storage.current_checkpoint_index, written + 1)


def _drop_unregistered_checkpoint(trial, result: Mapping[str, Any]) -> None:
    """The exploited trial's own last checkpoint is superseded by the donor's and never registered
    by Ray: delete it instead of leaving an orphan folder behind."""
    name = result.get("checkpoint_dir_name")
    if not (isinstance(name, str) and name.startswith("checkpoint_")):
        return
    storage = trial.storage
    path = f"{storage.trial_fs_path}/{name}"
    registered = {result.checkpoint.path for result in trial.run_metadata.checkpoint_manager._checkpoint_results
                  if result.checkpoint is not None}
    if path in registered:
        return
    try:
        if storage.storage_filesystem.get_file_info(path).type == pafs.FileType.Directory:
            storage.storage_filesystem.delete_dir(path)
    except OSError:  # best effort: an orphan folder only costs disk space
        pass


class RecordingPBT(_ExploitRecorder, PopulationBasedTraining):
    def __init__(self, run_dir: str, settings: PopulationSettings):
        self.run_dir = run_dir
        self.event_keys = tuple(settings.mutations)
        PopulationBasedTraining.__init__(
            self, time_attr="training_iteration", metric=settings.metric, mode=settings.mode,
            perturbation_interval=settings.perturbation_interval, burn_in_period=settings.burn_in_period,
            hyperparam_mutations={key: tune.loguniform(low, high) for key, (low, high) in settings.mutations.items()},
            quantile_fraction=settings.quantile_fraction, resample_probability=settings.resample_probability,
            perturbation_factors=settings.perturbation_factors,
            custom_explore_fn=ClampToRanges(settings.mutations), log_config=True, synch=settings.synch)


class RecordingPB2(_ExploitRecorder, PB2):
    def __init__(self, run_dir: str, settings: PopulationSettings):
        self.run_dir = run_dir
        self.event_keys = tuple(settings.mutations)
        PB2.__init__(
            self, time_attr="training_iteration", metric=settings.metric, mode=settings.mode,
            perturbation_interval=settings.perturbation_interval,
            hyperparam_bounds={key: [low, high] for key, (low, high) in settings.mutations.items()},
            quantile_fraction=settings.quantile_fraction, custom_explore_fn=ClampToRanges(settings.mutations),
            log_config=True, synch=settings.synch)


def build_scheduler(kind: str, run_dir: str, settings: PopulationSettings | None) -> TrialScheduler:
    if kind == "fifo":
        return FIFOScheduler()
    if kind == "pbt":
        return RecordingPBT(run_dir, settings)
    if kind == "pb2":
        if not import_pb2_dependencies():
            raise ConfigError("scheduler=pb2 needs scikit-learn: pip install scikit-learn")
        return RecordingPB2(run_dir, settings)
    raise ConfigError(f"scheduler={kind!r} is unknown; choose one of {', '.join(SCHEDULERS)}")


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
