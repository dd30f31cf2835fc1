"""The Ray 2.60 private names raydaug.tune relies on, each with a test that fails if Ray's behaviour
under it changes (docs/tune.md lists them and why they are used).

One asynchronous PBT population of two trials (one cannot learn: lr_c 1e-6, and PBT gives each clone an lr_c
below 1e-6, so the clone stays weak and exploits the same donor again) runs once for the module,
with every result the driver processed recorded. The trials ask for 1.5 of the session's 2 CPUs, so they
run one at a time: PBT pauses a trial at each report while the other waits, they alternate, and the
exploits (at every perturbation, by the weak trial) do not depend on how fast a worker process starts.
(Two concurrent trials exploited nothing when the first finished its iterations before the second had
reported once: PBT compares only unfinished trials.) The one case that needs concurrent trials (the
double registration) has a run of its own. Each test was checked to fail with its workaround removed.

Private name (Ray 2.60) — used in — test:

- ``PopulationBasedTraining._exploit`` (hook), ``._trial_state[t].last_result`` — schedulers._ExploitRecorder —
  ``test_every_exploit_is_recorded_with_the_donor_checkpoint_iteration``
- ``checkpoint_manager._latest_checkpoint_result``, ``_TrainingResult`` — schedulers._own_checkpoint —
  ``test_an_exploited_trial_restores_its_own_copy_of_the_donor_checkpoint``
- ``result["checkpoint_dir_name"]``, ``trial.storage.current_checkpoint_index`` — schedulers._sync_checkpoint_index —
  ``test_no_checkpoint_folder_is_written_twice``
- ``checkpoint_manager._checkpoint_results``, ``storage.trial_fs_path``, ``storage.storage_filesystem`` —
  schedulers._drop_unregistered_checkpoint — ``test_no_unregistered_checkpoint_folder_is_left_behind``
- ``trial.is_saving`` (with ``result["should_checkpoint"]``) — callbacks.RegisterCheckpointOnce —
  ``test_no_checkpoint_is_registered_or_deleted_twice``
- ``PopulationBasedTraining._synch`` — schedulers._ExploitRecorder —
  ``test_synch_decides_whether_the_exploited_trials_own_checkpoint_is_deleted``
- ``choose_trial_to_run`` (public hook) over ``._trial_state[t].last_train_time`` — schedulers._ExploitRecorder —
  ``test_an_exploited_trial_lets_its_waiting_donor_run_first``, ``test_no_exploit_clones_the_same_checkpoint_twice``
"""
from __future__ import annotations

import collections
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.train._internal import checkpoint_manager as ray_checkpoint_manager  # noqa: E402

from raydaug.config import Config  # noqa: E402
from raydaug.experiment import Experiment  # noqa: E402
from raydaug.tune import runner  # noqa: E402
from raydaug.tune.options import TuneOptions  # noqa: E402
from raydaug.tune.schedulers import RecordingPB2, RecordingPBT, population_settings  # noqa: E402
from tests.helpers import TINY  # noqa: E402

pytestmark = pytest.mark.slow

EPOCHS = 6
KEEP = 2
MAX_RESULTS = 10 * EPOCHS
MUTATIONS = {"lr_c": (1e-7, 1e-6)}
CHECKPOINT_NAME = re.compile(r"^checkpoint_\d{6}$")


class Driver(tune.Callback):
    """Every result the driver processed (with the config after the scheduler acted), and at the end
    the checkpoints each trial's checkpoint manager still holds."""

    def __init__(self):
        self.results: list[dict[str, Any]] = []
        self.registered: dict[str, set[str]] = {}
        self.trial_folders: dict[str, str] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append({"trial": trial.trial_id, "result": dict(result), "config_after": dict(trial.config)})
        if len(self.results) > MAX_RESULTS:  # the weak trial cloning one checkpoint forever would never end
            raise RuntimeError(f"over {MAX_RESULTS} results from 2 trials of {EPOCHS} epochs: an exploited "
                               "trial keeps restarting from the same donor checkpoint")

    def on_experiment_end(self, trials, **info):
        for trial in trials:
            manager = trial.run_metadata.checkpoint_manager
            self.registered[trial.trial_id] = {r.checkpoint.path for r in manager._checkpoint_results
                                               if r.checkpoint is not None}
            self.trial_folders[trial.trial_id] = trial.storage.trial_fs_path


class Bookkeeping:
    """Every checkpoint registration and deletion of Ray's checkpoint managers on the driver."""

    def __init__(self):
        self.registrations: list[tuple[int, str]] = []  # (manager, checkpoint path)
        self.deletions: list[str] = []
        self._patch = pytest.MonkeyPatch()

    def __enter__(self) -> Bookkeeping:
        real_register = ray_checkpoint_manager._CheckpointManager.register_checkpoint
        real_delete = ray_checkpoint_manager._delete_fs_path

        def register(manager, checkpoint_result):
            self.registrations.append((id(manager), checkpoint_result.checkpoint.path))
            return real_register(manager, checkpoint_result)

        def delete(fs, fs_path):
            self.deletions.append(fs_path)
            return real_delete(fs=fs, fs_path=fs_path)

        self._patch.setattr(ray_checkpoint_manager._CheckpointManager, "register_checkpoint", register)
        self._patch.setattr(ray_checkpoint_manager, "_delete_fs_path", delete)
        return self

    def __exit__(self, *exc) -> None:
        self._patch.undo()


def run_population(storage: Path, epochs: int, cpus_per_trial: float, callbacks=()):
    experiment = Experiment(
        name="private", base={**TINY, "epochs": epochs},
        search_space={"alpha": tune.loguniform(0.02, 0.5), "lr_c": tune.grid_search([1e-6, 3e-3])},
        scheduler="pbt",
        # only lr_c mutates, always resampled in (1e-7, 1e-6): a clone of the strong trial stays weak (its C
        # barely moves) and so exploits the same donor again at the next perturbation, whatever the seeds,
        # and each exploit changes the config (a clamped ×1.2 could give the clone its old lr_c again)
        scheduler_options={"perturbation_interval": 1, "quantile_fraction": 0.5, "resample_probability": 1.0,
                           "mutations": MUTATIONS},
        cpus_per_trial=cpus_per_trial, checkpoints_to_keep=KEEP, max_failures=0)
    plan = runner.plan_experiment(experiment, TuneOptions(storage=str(storage)))
    results, plan = runner.launch(plan, list(callbacks), log=lambda _: None)
    assert not results.errors, results.errors
    return Path(plan.run_dir)


@pytest.fixture(scope="module")
def population(ray_session, tmp_path_factory):
    """(run_dir, Driver, pbt_events) of one PBT run, its trials one at a time."""
    driver = Driver()
    run_dir = run_population(tmp_path_factory.mktemp("private"), EPOCHS, 1.5, [driver])
    events = pd.read_parquet(run_dir / "parquet" / "pbt_events")
    assert not events.empty, "the weak trial never exploited the other one"
    return run_dir, driver, events


def exploits(events: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per exploit (its rows share timestamp, src, dst), in time order."""
    grouped = events.groupby(["timestamp", "src_trial", "dst_trial", "training_iteration"], sort=True)
    return [{"time": t, "src": src, "dst": dst, "iteration": int(it), "new": dict(zip(rows["key"], rows["new_value"]))}
            for (t, src, dst, it), rows in grouped]


def first_report_after(driver: Driver, dst: str, config: dict[str, float]) -> dict[str, Any] | None:
    """The exploited trial's first result with the exploit's new values in its config."""
    for row in driver.results:
        values = {key: float(row["result"]["config"][key]) for key in config}
        if row["trial"] == dst and values == pytest.approx(config) and "checkpoint/restored_sha256" in row["result"]:
            return row["result"]
    return None


def test_every_exploit_is_recorded_with_the_donor_checkpoint_iteration(population):
    """``_exploit`` is the hook that records pbt_events; ``_trial_state[donor].last_result`` gives the
    iteration of the checkpoint PBT clones: the exploited trial continues right after it, from the
    donor's checkpoint of that iteration (payload hash), with the recorded values live."""
    _, driver, events = population
    sha_at = {(row["trial"], row["result"]["training_iteration"]): row["result"]["checkpoint/sha256"]
              for row in driver.results if "checkpoint/sha256" in row["result"]}
    changed = [row for row in driver.results if dict(row["result"]["config"]) != row["config_after"]]
    found = exploits(events)
    assert len(found) == len(changed), "every config change made by PBT is one recorded exploit"
    assert set(events["key"]) == set(MUTATIONS)
    checked = 0
    for exploit in found:
        report = first_report_after(driver, exploit["dst"], exploit["new"])
        if report is None:
            continue  # exploited at its last perturbation and then ended
        assert report["training_iteration"] == exploit["iteration"] + 1
        assert report["checkpoint/restored_sha256"] == sha_at[(exploit["src"], exploit["iteration"])]
        assert report["checkpoint/restored_trial"] == exploit["src"]
        assert report["lr/c"] == pytest.approx(exploit["new"]["lr_c"], rel=1e-12)
        checked += 1
    assert checked >= 1


def test_an_exploited_trial_restores_its_own_copy_of_the_donor_checkpoint(population):
    """Setting ``checkpoint_manager._latest_checkpoint_result`` (a ``_TrainingResult``) is how PBT itself
    points a trial at the donor's checkpoint; we point it at a copy under RUN_DIR/exploit_checkpoints/
    <trial>/ instead. The restored folder (reported by the trial) must be that copy, not the donor's
    folder, and hold the donor's payload."""
    run_dir, driver, events = population
    restored_from_copy = 0
    for exploit in exploits(events):
        report = first_report_after(driver, exploit["dst"], exploit["new"])
        if report is None:
            continue
        copy = Path(report["checkpoint/restored_path"])
        assert copy.parent == run_dir / "exploit_checkpoints" / exploit["dst"], copy
        restored_from_copy += 1
    assert restored_from_copy >= 1
    # only the latest copy of each exploited trial is kept
    for folder in (run_dir / "exploit_checkpoints").iterdir():
        assert len(list(folder.iterdir())) == 1, folder


def test_no_checkpoint_folder_is_written_twice(population):
    """Ray names the folder of each reported checkpoint in ``result["checkpoint_dir_name"]``; the driver's
    ``trial.storage.current_checkpoint_index`` must stay ahead of every folder an exploited trial wrote,
    or the trial's next checkpoint overwrites an older folder: no (trial, folder) may be reported with
    two different payloads. (If Ray stopped sending the name, the fix would be skipped silently: every
    checkpoint result must carry it.)"""
    _, driver, _ = population
    payloads: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for row in driver.results:
        result = row["result"]
        if "checkpoint/sha256" not in result:
            continue
        name = result.get("checkpoint_dir_name")
        assert isinstance(name, str) and CHECKPOINT_NAME.match(name), f"checkpoint_dir_name is {name!r}"
        payloads[(row["trial"], name)].add(result["checkpoint/sha256"])
    assert payloads
    rewritten = {key: shas for key, shas in payloads.items() if len(shas) > 1}
    assert not rewritten, f"checkpoint folders written twice: {rewritten}"


def test_no_unregistered_checkpoint_folder_is_left_behind(population):
    """The checkpoint an exploited trial reported just before PBT paused it is never registered; it is
    deleted through ``storage.storage_filesystem`` at ``storage.trial_fs_path`` unless
    ``checkpoint_manager._checkpoint_results`` holds it. After the run every checkpoint folder of a
    trial is one its checkpoint manager holds, at most ``num_to_keep`` of them."""
    _, driver, _ = population
    assert driver.registered and set(driver.registered) == set(driver.trial_folders)
    for trial_id, folder in driver.trial_folders.items():
        on_disk = {str(path) for path in Path(folder).glob("checkpoint_*")}
        assert on_disk, trial_id
        assert on_disk <= driver.registered[trial_id], f"orphans of {trial_id}: {on_disk - driver.registered[trial_id]}"
        assert len(on_disk) <= KEEP


class SavesOfRunningTrials(tune.Callback):
    """Counts the results for which PBT had already scheduled a save of the (running) trial while the
    result itself carried a checkpoint: where Tune used to register that checkpoint a second time."""

    def __init__(self):
        self.count = 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.is_saving and result.get("checkpoint_dir_name"):
            self.count += 1


def test_no_checkpoint_is_registered_or_deleted_twice(ray_session, tmp_path):
    """With a function trainable, PBT's own save of an upper-quantile trial and Tune's save of the
    same result registered one checkpoint twice, and ``num_to_keep`` then deleted its folder twice
    (seen in Ray 2.60 whenever both trials run at once). ``RegisterCheckpointOnce`` clears
    ``should_checkpoint`` when ``trial.is_saving`` says PBT already scheduled the save. Here the two
    trials run concurrently (1 CPU each), the case that needs it; should they not overlap at all (a
    worker that starts late), nothing is tested, and the run is repeated (at most three times)."""
    for attempt in range(3):
        saves = SavesOfRunningTrials()
        with Bookkeeping() as book:
            run_population(tmp_path / f"attempt{attempt}", 10, 1.0, [saves])
        if saves.count:
            break
    assert saves.count, "PBT never saved a running trial in three runs: the trials never overlapped"
    assert book.registrations and book.deletions, "the run registered and rotated checkpoints"
    twice = [item for item, count in collections.Counter(book.registrations).items() if count > 1]
    assert not twice, f"registered twice: {twice}"
    assert len(book.deletions) == len(set(book.deletions)), f"deleted twice: {sorted(book.deletions)}"


class FakeTrial:
    def __init__(self, trial_id: str, status: str, folder: Path | None = None):
        self.trial_id, self.status, self.experiment_tag = trial_id, status, trial_id
        self.config = {"epochs": 4, "alpha": 0.1}
        # what _drop_unregistered_checkpoint reads: the trial's folder and Ray's registered checkpoints (none)
        self.storage = SimpleNamespace(trial_fs_path=str(folder), storage_filesystem=pafs.LocalFileSystem())
        self.run_metadata = SimpleNamespace(checkpoint_manager=SimpleNamespace(
            _checkpoint_results=[], _latest_checkpoint_result=None))


@pytest.mark.parametrize("synch", [False, True])
@pytest.mark.parametrize("kind", [RecordingPBT, RecordingPB2])
def test_synch_decides_whether_the_exploited_trials_own_checkpoint_is_deleted(kind, synch, tmp_path, monkeypatch):
    """``_synch`` (set from the constructor's ``synch``) tells the recorder how PBT paused the exploited
    trial: asynchronous PBT pauses it after a checkpoint Ray never registers (the recorder deletes that
    orphan folder); synchronous PBT pauses it with a registered checkpoint, which must stay. Ray's own
    exploit is replaced by a no-op: what is tested is what the recorder does on ``_synch``."""
    from ray.tune.schedulers.pbt import _PBTTrialState

    settings = population_settings({"synch": synch}, Config.from_dict(TINY), "acc/val", "max")
    scheduler = kind(str(tmp_path / "run"), settings)
    for base in kind.__mro__[2:]:
        if "_exploit" in vars(base):
            monkeypatch.setattr(base, "_exploit", lambda self, controller, trial, donor: None)
    donor, exploited = FakeTrial("donor", "RUNNING"), FakeTrial("exploited", "RUNNING", tmp_path / "exploited")
    own = tmp_path / "exploited" / "checkpoint_000003"
    own.mkdir(parents=True)
    for trial in (donor, exploited):
        scheduler._trial_state[trial] = _PBTTrialState(trial)
        scheduler._trial_state[trial].last_result = {"training_iteration": 3, "checkpoint_dir_name": own.name}
    scheduler._exploit(None, exploited, donor)
    assert own.exists() is synch
    assert len(pd.read_parquet(tmp_path / "run" / "parquet" / "pbt_events")) == len(settings.mutations)


@pytest.mark.parametrize("kind", [RecordingPBT, RecordingPB2])
def test_an_exploited_trial_lets_its_waiting_donor_run_first(kind, tmp_path):
    """Ray's PBT runs the waiting trial with the least ``_trial_state[t].last_train_time``, and an
    exploited trial inherits its donor's: on that tie the donor runs first (else the exploited trial
    runs, scores below the donor's stale result and clones the same donor checkpoint again)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers.pbt import _PBTTrialState

    scheduler = kind(str(tmp_path), population_settings({}, Config.from_dict(TINY), "acc/val", "max"))
    exploited, donor, behind = (FakeTrial(name, Trial.PAUSED) for name in ("exploited", "donor", "behind"))
    controller = type("Controller", (), {"get_trials": lambda self: [exploited, donor, behind]})()
    for trial, time in ((exploited, 3), (donor, 3), (behind, 5)):
        scheduler._trial_state[trial] = _PBTTrialState(trial)
        scheduler._trial_state[trial].last_train_time = time
    assert scheduler.choose_trial_to_run(controller) is exploited  # Ray's order: first of the least trained
    scheduler._waiting_after_exploit().add("exploited")
    assert scheduler.choose_trial_to_run(controller) is donor
    scheduler._trial_state[exploited].last_train_time = 2  # no tie: the least trained runs, exploited or not
    assert scheduler.choose_trial_to_run(controller) is exploited
    scheduler.on_trial_result(controller, exploited, {"epoch": 4})  # it ran (its last report): not waiting
    assert "exploited" not in scheduler._waiting_after_exploit()


def test_no_exploit_clones_the_same_checkpoint_twice(population):
    """With the trials one at a time, an exploited trial used to clone one donor checkpoint again and
    again while the donor waited (37 times in one run); each exploit must now take a newer checkpoint."""
    _, _, events = population
    found = exploits(events)
    # the precondition: a trial exploited the same donor at least twice, else no clone could repeat
    per_pair = collections.Counter((e["dst"], e["src"]) for e in found)
    assert max(per_pair.values(), default=0) >= 2, f"too few exploits to test anything: {per_pair}"
    taken = collections.Counter((e["dst"], e["src"], e["iteration"]) for e in found)
    assert not [key for key, count in taken.items() if count > 1], taken
