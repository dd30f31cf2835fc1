"""The Tune trainable (``raydaug.tune.trainable.train_trial``) driven in this process through a stand-in
for the four ``ray.tune`` calls it makes (context, checkpoint, report, Checkpoint): what a restore
does with the random numbers, without starting Ray.

A restore of the trial's own checkpoint (a retry, ``--resume``) continues exactly: the same metrics as
an uninterrupted run. A restore of another trial's checkpoint (a PBT exploit) re-seeds the RNG from the
recipient's id and the iteration: donor and recipient, with the same weights and hyperparameters, then
draw different batches and noise, and a rerun of the same exploit draws the same numbers again.
"""
from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("ray")
from raydaug.tune import trainable  # noqa: E402
from tests.helpers import TINY, comparable  # noqa: E402

TIMING = ("time/step_ms", "time/samples_per_s", "worker/pid")
CONFIG = {**TINY, "epochs": 4, "checkpoint_every": 2}


class FakeCheckpoint:
    def __init__(self, path: Path):
        self.path = str(path)

    @contextlib.contextmanager
    def as_directory(self):
        yield self.path


class FakeTune:
    """The slice of ``ray.tune`` the trainable uses; reported checkpoints are kept under ``keep``."""

    def __init__(self, trial_id: str, keep: Path, restore: Path | None = None):
        self.trial_id, self.keep, self.restore = trial_id, keep, restore
        self.reports: list[dict[str, Any]] = []
        self.checkpoints: dict[int, Path] = {}
        self.Checkpoint = SimpleNamespace(from_directory=FakeCheckpoint)

    def get_context(self):
        return SimpleNamespace(get_trial_id=lambda: self.trial_id, get_trial_resources=lambda: {"CPU": 1.0})

    def get_checkpoint(self):
        return FakeCheckpoint(self.restore) if self.restore else None

    def report(self, result: dict[str, Any], checkpoint: FakeCheckpoint | None = None) -> None:
        self.reports.append(dict(result))
        if checkpoint is not None:  # the trainable's folder is temporary: keep a copy, as Ray would
            target = self.keep / f"checkpoint_{self.trial_id}_{uuid.uuid4().hex[:8]}"
            shutil.copytree(checkpoint.path, target)
            self.checkpoints[int(result["epoch"])] = target  # eval_every=1: epoch = iteration


def run_trial(monkeypatch, tmp_path: Path, trial_id: str, restore: Path | None = None) -> FakeTune:
    fake = FakeTune(trial_id, tmp_path, restore)
    monkeypatch.setattr(trainable, "tune", fake)
    trainable.train_trial(dict(CONFIG), str(tmp_path / "run"))
    return fake


def numbers(report: dict[str, Any]) -> dict[str, Any]:
    return comparable({k: v for k, v in report.items() if k not in TIMING and not k.startswith("checkpoint/")})


@pytest.fixture()
def donor(monkeypatch, tmp_path) -> FakeTune:
    """Trial A trained uninterrupted for 4 iterations, with its checkpoint of iteration 2 kept."""
    fake = run_trial(monkeypatch, tmp_path, "a")
    assert len(fake.reports) == 4 and len(fake.checkpoints) == 2
    return fake


def checkpoint_of_iteration_2(fake: FakeTune) -> Path:
    assert sorted(fake.checkpoints) == [2, 4]  # checkpoint_every=2
    path = fake.checkpoints[2]
    assert '"training_iteration": 2' in (path / trainable.META_FILE).read_text()
    return path


def test_restoring_its_own_checkpoint_continues_exactly(monkeypatch, tmp_path, donor):
    resumed = run_trial(monkeypatch, tmp_path, "a", restore=checkpoint_of_iteration_2(donor))
    assert len(resumed.reports) == 2  # iterations 3 and 4
    assert resumed.reports[0]["checkpoint/restored_trial"] == "a"
    for again, uninterrupted in zip(resumed.reports, donor.reports[2:]):
        assert numbers(again) == numbers(uninterrupted)


def test_restoring_another_trials_checkpoint_draws_new_numbers(monkeypatch, tmp_path, donor):
    checkpoint = checkpoint_of_iteration_2(donor)
    recipient = run_trial(monkeypatch, tmp_path, "b", restore=checkpoint)
    first = recipient.reports[0]
    assert first["checkpoint/restored_trial"] == "a" and first["epoch"] == 3
    assert first["checkpoint/restored_path"] == str(checkpoint)
    # same weights, same hyperparameters, other random numbers: other batches, noise and losses
    assert first["hp/alpha"] == donor.reports[2]["hp/alpha"] and first["lr/c"] == donor.reports[2]["lr/c"]
    assert first["loss/c"] != donor.reports[2]["loss/c"] and first["loss/g"] != donor.reports[2]["loss/g"]
    # ... and the same exploit, done again, draws the same numbers (seeded by recipient and iteration)
    again = run_trial(monkeypatch, tmp_path, "b", restore=checkpoint)
    assert [numbers(r) for r in again.reports] == [numbers(r) for r in recipient.reports]
    assert trainable.restore_seed("b", 2) != trainable.restore_seed("a", 2) != trainable.restore_seed("b", 3)


def test_two_recipients_of_one_donor_checkpoint_draw_numbers_of_their_own(monkeypatch, tmp_path, donor):
    """The seed of an exploit comes from the *recipient*: two trials that clone the same checkpoint of the
    same donor (a population where several members exploit one leader) must not train on the same batches
    and noise, which a seed taken from the donor's id would give them."""
    checkpoint = checkpoint_of_iteration_2(donor)
    first = run_trial(monkeypatch, tmp_path, "b", restore=checkpoint)
    second = run_trial(monkeypatch, tmp_path, "c", restore=checkpoint)
    assert first.reports[0]["checkpoint/restored_trial"] == second.reports[0]["checkpoint/restored_trial"] == "a"
    assert first.reports[0]["hp/alpha"] == second.reports[0]["hp/alpha"]  # the same hyperparameters ...
    assert first.reports[0]["loss/c"] != second.reports[0]["loss/c"]     # ... other numbers
    assert first.reports[0]["loss/g"] != second.reports[0]["loss/g"]
