"""The plain training loop (no Ray): epochs, evaluation, checkpoints and metric sinks.

:class:`Trainer` is the one engine: ``raydaug train`` drives it here, and the Tune trainable drives the
same object (``train_iteration`` / ``save`` / ``restore`` / ``apply_hparams``).
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import HPARAM_METRICS, Config
from .data import Splits, class_tables, interleaved_classes, load_splits
from .errors import ConfigError, NonFiniteLossError
from .images import LabelledImages
from .pilot_arms import arm_config, arm_key, read_arms, save_arms
from .pilot_choice import choose, pilot_line
from .presets import HAND_MADE
from .state import (
    TrainState,
    apply_hparams,
    build_state,
    checkpoint_file,
    keep_best_classifier,
    load_state_dict,
    resolve_device,
    rng_state,
    set_rng_state,
    state_dict,
)
from .steps import augmentation_health, correct_predictions, evaluate, train_step

LOSS_PLAYERS = {"loss/dc": "DC", "loss/dd": "DD", "loss/g": "G", "loss/c": "C"}


class MetricAccumulator:
    """Sums step metrics on the device; remembers the first step at which each loss was non-finite."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.first_bad: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.samples = 0
        self.seconds = 0.0

    def add(self, metrics: dict[str, torch.Tensor], step: int) -> None:
        for name, value in metrics.items():
            value = value.float()
            if name in self.sums:
                self.sums[name] += value
                self.counts[name] += 1
            else:
                self.sums[name] = value.clone()
                self.counts[name] = 1
            if name in LOSS_PLAYERS:
                bad = self.first_bad.setdefault(name, torch.full((), -1, device=self.device, dtype=torch.long))
                flag = (~torch.isfinite(value)) & (bad < 0)
                self.first_bad[name] = torch.where(flag, torch.full_like(bad, step), bad)

    def check_finite(self, where: str = "") -> None:
        """One host sync: raise naming the first player and step whose loss was non-finite; ``where``
        (e.g. "epoch 3, iteration 3") is added to the message."""
        if not self.first_bad:
            return
        names = list(self.first_bad)
        steps = torch.stack([self.first_bad[name] for name in names]).tolist()
        bad = [(step, name) for name, step in zip(names, steps) if step >= 0]
        if bad:
            step, name = min(bad)
            context = f" ({where})" if where else ""
            raise NonFiniteLossError(f"{LOSS_PLAYERS[name]}'s loss ({name}) became non-finite at step {step}{context}")

    def means(self) -> dict[str, float]:
        names = list(self.sums)
        if not names:
            return {}
        values = torch.stack([self.sums[name] for name in names]).tolist()
        return {name: value / self.counts[name] for name, value in zip(names, values)}


@dataclass
class Progress:
    """Where a run stands, for progress lines."""

    epoch: int
    epochs: int
    metrics: dict[str, float]

    def line(self) -> str:
        m = self.metrics

        def fmt(key: str, spec: str = ".3f") -> str:
            value = m.get(key)
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

        return (f"epoch {self.epoch:>4}/{self.epochs} | loss c {fmt('loss/c')} g {fmt('loss/g')} "
                f"dc {fmt('loss/dc')} dd {fmt('loss/dd')} | acc train {fmt('acc/train')} val {fmt('acc/val')} "
                f"test {fmt('acc/test')} aug {fmt('acc/aug')} | aug l1 {fmt('aug/l1')} "
                f"θ {fmt('aug/affine_dev')} z {fmt('aug/z_div')} | {fmt('time/step_ms', '.1f')} ms/step")


class Trainer:
    """Data + TrainState + per-window accumulators. One iteration = ``eval_every`` epochs + evaluation."""

    def __init__(self, config: Config, device: torch.device | None = None, splits: Splits | None = None,
                 data: LabelledImages | None = None, log: Callable[[str], None] | None = None,
                 pilot_store: str | None = None, pilot_values: dict[str, Any] | None = None):
        self.log = log  # progress lines of a pilot (base_aug=auto), which can take as long as the run
        self.pilot_store = pilot_store  # a run folder whose records of the pilot's arms it reads and adds to
        self.pilot_values = pilot_values or {}  # config keys the pilot's arms train with instead of the run's
        self.device = device or resolve_device(config.device)
        self.splits = splits if splits is not None else load_splits(config, self.device, data)
        if config.use_dd and config.aug == "learned" and config.joint and config.train_per_class < 2:
            raise ConfigError("use_dd=true needs train_per_class ≥ 2: DD's real pairs are two different "
                              "images of one class")
        background = self.splits.normalize(torch.zeros(1, self.splits.channels, 1, 1, device=self.device))
        self.state: TrainState = build_state(config, self.splits.channels, self.splits.num_classes, background,
                                             self.device)
        self.accumulator = MetricAccumulator(self.device)
        self.new_pilot: dict[str, Any] | None = None  # the pilot this Trainer ran, until take_pilot()
        self._pair_index = class_tables(self.splits.train.labels)
        self._needs_pairs = "dd" in self.state.nets
        self._autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.amp)
        eval_generator = torch.Generator(device="cpu").manual_seed(config.seed + 1)
        n_eval = min(64, len(self.splits.train))
        # classes interleaved (0, 1, …, 9, 0, 1, …): every grid and health batch shows every class
        chosen = interleaved_classes(self._pair_index)[:n_eval]
        self.eval_x = self.splits.normalize(self.splits.train.images[chosen])
        self.eval_y = self.splits.train.labels[chosen]
        self.eval_z = [torch.randn(n_eval, config.noise_dim, generator=eval_generator).to(self.device)
                       * config.noise_std for _ in range(3)]

    @property
    def config(self) -> Config:
        return self.state.config

    @property
    def iteration(self) -> int:
        return -(-self.state.epoch // self.config.eval_every)  # ceil: a shorter last window gets its own number

    @property
    def done(self) -> bool:
        return self.state.epoch >= self.config.epochs

    def _same_class_partners(self, index: torch.Tensor) -> torch.Tensor:
        """For each training index, a random *different* training image of the same class."""
        members, position, counts = self._pair_index
        labels = self.splits.train.labels[index]
        count = counts[labels]
        offset = 1 + (torch.rand(index.shape[0], device=self.device) * (count - 1)).long()
        return members[labels, (position[index] + offset) % count]

    def train_batch(self, index: torch.Tensor) -> None:
        """One minibatch of training images: DD's same-class partners, the four updates (bf16 autocast
        with ``amp``), the metrics summed on the device (no host sync)."""
        train = self.splits.train
        pair = train.images[self._same_class_partners(index)] if self._needs_pairs else None
        with self._autocast:
            metrics = train_step(self.state, self.splits, train.images[index], train.labels[index], pair)
        self.accumulator.add(metrics, self.state.step)
        self.accumulator.steps += 1
        self.accumulator.samples += int(index.shape[0])

    def train_epoch(self) -> None:
        if self.state.needs_pilot:
            self.state.pilot = pilot(self.config, self.splits, self.device, self.log, self.pilot_store,
                                     self.pilot_values)
            self.new_pilot = self.state.pilot
        n, batch = len(self.splits.train), self.config.batch_size
        order = torch.randperm(n, device=self.device)
        started = time.perf_counter()
        for start in range(0, n, batch):
            self.train_batch(order[start:start + batch])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.accumulator.seconds += time.perf_counter() - started
        self.state.epoch += 1
        self.accumulator.check_finite(f"epoch {self.state.epoch}, iteration {self.iteration}")

    def train_iteration(self) -> dict[str, Any]:
        """Train up to the next evaluation epoch, then evaluate; returns the metrics of docs/analysis.md.
        With ``base_aug=auto`` the first epoch runs the pilot first (:func:`pilot`)."""
        self.train_to_evaluation()
        return self.report()

    def train_to_evaluation(self) -> None:
        """Train up to the next evaluation epoch (``eval_every``, or the last epoch)."""
        target = min(self.config.epochs, (self.state.epoch // self.config.eval_every + 1) * self.config.eval_every)
        while self.state.epoch < target:
            self.train_epoch()

    def report(self) -> dict[str, Any]:
        acc = self.accumulator
        metrics: dict[str, Any] = acc.means()
        metrics.update(evaluate(self.state, self.splits))
        if "g" in self.state.nets:
            health = augmentation_health(self.state, self.eval_x, self.eval_y, *self.eval_z[:2])
            metrics.update({name: float(value) for name, value in health.items()})
        config = self.config
        for key, name in HPARAM_METRICS.items():
            if key.startswith("lr_"):
                optimizer = self.state.optims.get(key[3:])
                if optimizer is not None:
                    metrics[name] = optimizer.param_groups[0]["lr"]
            elif config.aug == "learned":
                metrics[name] = getattr(config, key)
        metrics["epoch"] = self.state.epoch
        metrics["step"] = self.state.step
        metrics["time/step_ms"] = 1000.0 * acc.seconds / max(1, acc.steps)
        metrics["time/samples_per_s"] = acc.samples / acc.seconds if acc.seconds > 0 else float("nan")
        if metrics["acc/val"] > self.state.best["acc/val"]:
            self.state.best = {"acc/val": metrics["acc/val"], "acc/test": metrics["acc/test"],
                               "epoch": self.state.epoch}
            keep_best_classifier(self.state)
        acc.reset()
        return metrics

    def take_pilot(self) -> dict[str, Any] | None:
        """The pilot this Trainer ran since the last call (to log it once), or None."""
        ran, self.new_pilot = self.new_pilot, None
        return ran

    def sample_images(self, count: int = 8) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x and G(x, z) for the fixed evaluation noises, in [0, 1] for display."""
        generator = self.state.nets["g"]
        x = self.eval_x[:count]
        with torch.inference_mode():
            fakes = [self.splits.denormalize(generator(x, z[:count], self.eval_y[:count])) for z in self.eval_z]
        return self.splits.denormalize(x), fakes

    # ------------------------------------------------------------------ state
    def apply_hparams(self, config: Config) -> None:
        apply_hparams(self.state, config)

    def state_payload(self) -> dict[str, Any]:
        """The TrainState and what a model exported from it needs of the data: class names, channels, the
        training split's mean and std."""
        splits = self.splits
        data = {"class_names": list(splits.class_names), "channels": splits.channels,
                "image_size": self.config.image_size, "dataset": self.config.dataset,
                "mean": splits.mean.flatten().cpu(), "std": splits.std.flatten().cpu()}
        return {**state_dict(self.state), "data": data}

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(path, self.state_payload())

    def load_payload(self, payload: dict[str, Any], reseed: int | None = None) -> None:
        """Load a checkpoint's payload; with ``reseed`` the RNG is seeded with it instead of being
        restored (a restore from another trial's checkpoint)."""
        load_state_dict(self.state, payload, restore_rng=reseed is None)
        if reseed is not None:
            torch.manual_seed(reseed)
        self.accumulator.reset()

    def restore(self, path: str | os.PathLike, reseed: int | None = None) -> None:
        self.load_payload(load_checkpoint(checkpoint_file(str(path)), map_location=self.device), reseed)


def pilot(config: Config, splits: Splits, device: torch.device, log: Callable[[str], None] | None = None,
          store: str | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base_aug=auto``: train C alone with each hand-made augmentation for ``config.pilot_epochs`` on the
    split, evaluated as the run is (``eval_every``, ``eval_ema``), and choose by the arms' validation scores
    and ``pilot_prior`` (raydaug/pilot_choice.py). An arm that ``store`` (a run folder) holds a record of is
    read, not trained (raydaug/pilot_arms.py); the arms trained here are added to it. ``values``: config keys
    the arms train with instead of the run's (a population's starting ``lr_c``). The random state is put
    back afterwards, so the run then trains exactly as with ``base_aug=<choice>``. Returns {"choice",
    "epochs", "acc_val": {name: best}, "acc_val_last": {…}, "val_best", "prior", "z", "reused": count}."""
    saved = rng_state()
    known = read_arms(store) if store else {}
    records: dict[str, dict[str, Any]] = {}
    trained: list[tuple[str, str, int, dict[str, Any]]] = []
    for name in HAND_MADE:
        arm = arm_config(config.replace(**(values or {})), name)
        key = arm_key(arm, device)
        if key in known:
            records[name], how = known[key], "read from the hand-made trials"
        else:
            records[name], how = _train_arm(arm, splits, device), f"trained for {arm.epochs} epochs"
            trained.append((key, name, arm.epochs, records[name]))
        if log is not None:
            log(f"pilot {len(records)}/{len(HAND_MADE)}: C alone with {name}, {how}, best acc/val "
                f"{records[name]['acc_val']:.4f}")
    set_rng_state(saved)
    if store and trained:
        save_arms(store, trained)
    best = {name: record["acc_val"] for name, record in records.items()}
    last = {name: record["acc_val_last"] for name, record in records.items()}
    correct = {name: record["correct"] for name, record in records.items()}
    return {**choose(best, last, correct, HAND_MADE, config.pilot_prior), "epochs": config.pilot_epochs,
            "acc_val": best, "acc_val_last": last, "reused": len(records) - len(trained)}


def _train_arm(arm: Config, splits: Splits, device: torch.device) -> dict[str, Any]:
    """A pilot's arm trained here, evaluated on the validation images only: the record (raydaug/pilot_arms.py)
    that a hand-made trial with this config ends with (the best evaluation the first of equals)."""
    trainer = Trainer(arm, device, splits)
    record: dict[str, Any] = {"acc_val": -1.0}
    while not trainer.done:
        trainer.train_to_evaluation()
        right = correct_predictions(trainer.state, splits, splits.val.images, splits.val.labels)
        record["acc_val_last"] = float(right.sum()) / max(1, right.numel())
        if record["acc_val_last"] > record["acc_val"]:
            record.update(acc_val=record["acc_val_last"], correct=right.cpu())
    return record


def log_pilot(trainer: Trainer, run_dir: str | None = None, trial_id: str = "") -> None:
    """After an iteration: if it ran the pilot, say so in one line (``trainer.log``) and, with ``run_dir``,
    write its rows as ``trial_id``'s."""
    outcome = trainer.take_pilot()
    if outcome is None:
        return
    if trainer.log is not None:
        trainer.log(pilot_line(outcome))
    if run_dir is not None:
        from .logging.parquet import write_pilot

        write_pilot(run_dir, trial_id, trainer.iteration, outcome)


# ---------------------------------------------------------------------- the `raydaug train` command
def write_json(path: Path, data: dict[str, Any]) -> None:
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def run_training(config: Config, out_dir: str | os.PathLike, resume: bool = False,
                 trial_id: str | None = None, log: Callable[[str], None] = print,
                 stop_after_epochs: int | None = None, data: LabelledImages | None = None) -> dict[str, Any]:
    """Train ``config`` to the end (or ``stop_after_epochs``), writing checkpoints, Parquet, TensorBoard,
    ``config.json`` and ``result.json`` under ``out_dir``. Returns the result dict. ``data``: images brought
    from Python (``dataset=memory``) instead of the dataset ``config`` names."""
    from .logging.parquet import metrics_row, metrics_writer, trial_row, trials_writer
    from .logging.tensorboard import TensorBoardSink, sample_grid

    out = Path(out_dir)
    ckpt = out / "checkpoints" / "state.pt"
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
    trainer = Trainer(config, data=data, log=log)
    trial_id = trial_id or out.resolve().name
    if resume:
        trainer.restore(ckpt)
        log(f"resumed from {ckpt} at epoch {trainer.state.epoch}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_logged())
    writer = metrics_writer(str(out), trial_id)
    trials = trials_writer(str(out))
    trials.append(trial_row(trial_id, "restore" if resume else "start", trainer.iteration, config.to_logged()))
    trials.flush()
    board = TensorBoardSink(str(out / "tensorboard"))
    log(f"training {config.aug} augmentation on {config.dataset} ({len(trainer.splits.train)} train / "
        f"{len(trainer.splits.val)} val / {len(trainer.splits.test)} test images) on {trainer.device}; "
        f"output in {out}")
    started = time.perf_counter()
    last: dict[str, Any] = {}
    try:
        while not trainer.done:
            if stop_after_epochs is not None and trainer.state.epoch >= stop_after_epochs:
                break
            last = trainer.train_iteration()
            log_pilot(trainer, str(out), trial_id)
            writer.append(metrics_row(last, trainer.iteration, time.perf_counter() - started))
            board.scalars(last, trainer.state.epoch)
            if "g" in trainer.state.nets:
                board.image("samples/x_then_G(x,z)", sample_grid(*trainer.sample_images()), trainer.state.epoch)
            log(Progress(trainer.state.epoch, config.epochs, last).line())
            if trainer.state.epoch % config.checkpoint_every == 0 or trainer.done:
                writer.flush()  # rows reported before a checkpoint are durable once it is
                trainer.save(ckpt)
    finally:
        writer.flush()
        board.close()
    result = {"final": last, "best": trainer.state.best, "epochs_done": trainer.state.epoch,
              "trial_id": trial_id, "checkpoint": str(ckpt)}
    write_json(out / "result.json", result)
    best = trainer.state.best
    log(f"done: best acc/val {best['acc/val']:.4f} at epoch {best['epoch']} → acc/test {best['acc/test']:.4f}; "
        f"results in {out}")
    return result
