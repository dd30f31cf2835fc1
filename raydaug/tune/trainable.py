"""The Tune trainable: a thin shell that drives :class:`raydaug.train.Trainer` for one trial.

Every iteration (``eval_every`` epochs) it reports the metrics (the columns of docs/analysis.md) with
``tune.report``; at checkpoint iterations (``checkpoint_every`` epochs, and the last one) it first makes its Parquet
rows durable, then reports the checkpoint; a non-finite loss makes the rows so far durable and fails
the trial (``NonFiniteLossError`` names the player, step, epoch and iteration). A restore
(``tune.get_checkpoint()``: PBT exploit, failure retry, --resume) loads the checkpoint and then applies
the trial's *current* config, so a mutated α/β/γ, teacher weight and all four learning rates are live from the next
step on.

Everything lives inside the function call, so an actor reused for another trial (``reuse_actors``:
Ray finishes this function and calls it again with the new config) starts from a clean Trainer,
reseeded by its config; process-wide torch settings (threads) are set again on every call.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ray import tune

from raydaug.config import FIELD_TYPES, Config
from raydaug.errors import ConfigError, NonFiniteLossError
from raydaug.images import LabelledImages
from raydaug.logging.parquet import metrics_row, metrics_writer, trial_row, trials_writer
from raydaug.pilot_arms import arm_key, arm_record, save_arms
from raydaug.presets import HAND_MADE
from raydaug.schedule import changes_through
from raydaug.train import Trainer, log_pilot

STATE_FILE = "state.pt"
META_FILE = "trial.json"
# trial-config key (not a Config key) holding a replayed schedule: [[iteration, {hparam: value}], ...]
REPLAY_KEY = "replay_schedule"


def trial_config(values: Mapping[str, Any], gpus: float) -> Config:
    """The trial's Config; the device follows the resources Ray assigned, not the config."""
    known = {key: value for key, value in values.items() if key in FIELD_TYPES}
    config = Config.from_dict(known)
    if gpus > 0:
        if config.device == "cpu":
            raise ConfigError("device=cpu but the trial was given a GPU share (--gpus-per-trial)")
        if not torch.cuda.is_available():
            raise ConfigError(f"the trial was given {gpus} GPU but CUDA is not available in its worker")
        device = "cuda"
    else:
        if config.device == "cuda":
            raise ConfigError("device=cuda but the trial has no GPU share: set --gpus-per-trial")
        device = "cpu"
    return config.replace(device=device, preset=config.preset)


def resource_share(resources: Any) -> tuple[float, float]:
    """(CPUs, GPUs) of a trial from its PlacementGroupFactory (or a plain dict in tests)."""
    if hasattr(resources, "required_resources"):
        required = resources.required_resources
    else:
        required = dict(resources or {})
    return float(required.get("CPU", 1.0)), float(required.get("GPU", 0.0))


def restore_seed(trial_id: str, iteration: int) -> int:
    """The RNG seed of a trial restored from *another* trial's checkpoint (a PBT exploit): derived
    from the recipient and the iteration, so donor and recipient stop drawing the same batches, noise
    and dropout masks, and a rerun of the experiment draws the same numbers again."""
    return zlib.crc32(f"{trial_id}:{iteration}".encode())


def checkpoint_header_sha(path: Path) -> str:
    """The payload hash that raydaug.checkpoint writes into the file's header line."""
    with open(path, "rb") as handle:
        header = handle.readline(256).split(b" ")
    return header[2].decode() if len(header) == 4 else ""


def scheduled_config(config: Config, schedule: Any, iteration: int) -> Config:
    """``config`` with every schedule change at or before ``iteration`` applied (a change at k governs
    the iterations after k, as in Ray's PopulationBasedTrainingReplay)."""
    changes = changes_through(schedule or (), iteration)
    return config.replace(**changes, preset=config.preset) if changes else config


def report_checkpoint(trainer: Trainer, result: dict[str, Any], trial_id: str, iteration: int,
                      time_total: float) -> None:
    """Report ``result`` with a checkpoint of ``trainer`` (``state.pt`` + ``trial.json``)."""
    with tempfile.TemporaryDirectory(prefix="raydaug-ckpt-") as folder:
        trainer.save(Path(folder) / STATE_FILE)
        (Path(folder) / META_FILE).write_text(json.dumps(
            {"trial_id": trial_id, "training_iteration": iteration, "epoch": trainer.state.epoch,
             "time_total_s": time_total}))
        result["checkpoint/sha256"] = checkpoint_header_sha(Path(folder) / STATE_FILE)
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))


def train_trial(config: dict[str, Any], run_dir: str, data: LabelledImages | None = None,
                pilot_store: str | None = None, pilot_values: dict[str, Any] | None = None) -> None:
    """Ray Tune function trainable. ``run_dir`` (= storage/name), ``data`` (images from Python, or None),
    ``pilot_store`` (the run folder that holds the records of the pilot's arms: raydaug/pilot_arms.py) and
    ``pilot_values`` (keys the pilot's arms train with: TunePlan.pilot_values) are bound with
    tune.with_parameters. A hand-made trial that trained start to end on its own config adds its
    record there, for the pilots of learned trials on the same split."""
    context = tune.get_context()
    trial_id = context.get_trial_id()
    cpus, gpus = resource_share(context.get_trial_resources())
    torch.set_num_threads(max(1, int(cpus)))
    initial = trial_config(config, gpus)
    schedule = config.get(REPLAY_KEY)
    cfg = initial
    trainer = Trainer(cfg, data=data, log=print, pilot_store=pilot_store, pilot_values=pilot_values)
    time_total = 0.0
    restored_sha, restored_path, donor = "", "", trial_id
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            meta_path = Path(folder) / META_FILE
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            # the same trial (a retry, --resume) continues exactly; another trial's checkpoint (an
            # exploit) continues with fresh random numbers of its own
            donor = meta.get("trial_id", trial_id)
            reseed = None if donor == trial_id else restore_seed(trial_id, int(meta["training_iteration"]))
            trainer.restore(Path(folder) / STATE_FILE, reseed=reseed)
            restored_sha = checkpoint_header_sha(Path(folder) / STATE_FILE)
            restored_path = str(checkpoint.path)  # where Ray took it from (an exploit: our private copy)
            if "time_total_s" in meta:
                time_total = float(meta["time_total_s"])
        # the checkpoint may come from another trial (PBT exploit) or an older config: this trial's
        # config wins for α, β, γ, the teacher's weight and the four learning rates
        cfg = scheduled_config(initial, schedule, trainer.iteration)
        trainer.apply_hparams(cfg)
    trials = trials_writer(run_dir)
    trials.append(trial_row(trial_id, "restore" if checkpoint is not None else "start",
                            trainer.iteration, cfg.to_logged()))
    trials.flush()
    writer = metrics_writer(run_dir, trial_id)
    try:
        while not trainer.done:
            started = time.perf_counter()
            metrics = trainer.train_iteration()
            time_total += time.perf_counter() - started
            iteration = trainer.iteration
            log_pilot(trainer, run_dir, trial_id)
            writer.append(metrics_row(metrics, iteration, time_total))
            result = dict(metrics)
            result["worker/pid"] = os.getpid()  # which actor ran this report (actor reuse is visible)
            if restored_sha:  # the first report after a restore says what was restored, from where
                result["checkpoint/restored_sha256"] = restored_sha
                result["checkpoint/restored_path"] = restored_path
                result["checkpoint/restored_trial"] = donor
                restored_sha = ""
            if trainer.done and pilot_store and cfg.aug in HAND_MADE and donor == trial_id and not schedule:
                save_arms(pilot_store, [(arm_key(cfg, trainer.device), cfg.aug, cfg.epochs,
                                         arm_record(trainer.state, trainer.splits))])  # before its last report
            if trainer.state.epoch % cfg.checkpoint_every == 0 or trainer.done:
                writer.flush()  # rows reported before a checkpoint must be durable once it is
                report_checkpoint(trainer, result, trial_id, iteration, time_total)
            else:
                tune.report(result)
            if schedule:  # a replayed schedule changes the hyperparameters in place, from the next iteration on
                following = scheduled_config(initial, schedule, iteration)
                if following != cfg:
                    cfg = following
                    trainer.apply_hparams(cfg)
    except NonFiniteLossError:
        writer.flush()  # the rows of the iterations before the failure stay in the logs
        raise
    writer.flush()
