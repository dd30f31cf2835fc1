"""Failure injection (slow, several processes): a trial's worker, the driver and a cluster node are
SIGKILLed mid-run, and one trial's loss turns non-finite. After each, the Parquet logs must hold every
iteration of every trial exactly once (``analysis.load``), and the work done twice is measured: the rows
written twice (raw Parquet rows before de-duplication) and, where the driver is ours, the results reported
twice. docs/reliability.md reports the numbers; run with ``pytest -m slow -s`` to see them.

The drivers of the driver-kill and cluster tests are separate ``raydaug tune`` processes with their own Ray
(RAY_ADDRESS removed from their environment, so they never join the pytest session's Ray), each started
in a process group of its own: Ray's processes (GCS, raylet, workers) inherit it, and killing the group
kills all of them. Every group is killed again in a ``finally`` so nothing outlives a failed test. The
process and cluster helpers (``tests/processes.py``) and the Parquet measurements (``tests/runlogs.py``)
are shared with ``tests/test_s3.py``, which repeats these kills with the run in S3.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from raydaug.analysis.load import load  # noqa: E402
from raydaug.cli import main  # noqa: E402
from raydaug.experiment import Experiment  # noqa: E402
from raydaug.tune import runner  # noqa: E402
from raydaug.tune.options import TuneOptions  # noqa: E402
from raydaug.tune.trainable import REPLAY_KEY  # noqa: E402
from tests.folders import write_folder  # noqa: E402
from tests.helpers import TINY  # noqa: E402
from tests.processes import LoopbackCluster, child_env, finish, kill_group, spawn, wait_for  # noqa: E402
from tests.runlogs import (  # noqa: E402
    assert_every_iteration_once,
    durable_iterations,
    every_trial_reached,
    report,
    rows_written_twice,
    trial_events,
)

pytestmark = pytest.mark.slow

INTERVAL = 2           # checkpoint_every / eval_every: iterations between two checkpoints
KEEP = 2               # CheckpointConfig(num_to_keep)


# ---------------------------------------------------------------------- experiments
def write_experiment(path: Path, name: str, base: dict[str, Any], search: str, scheduler: str = "fifo",
                     options: str = "{}", max_failures: int = 1) -> str:
    """A tune_config file; ``search`` and ``options`` are Python source (they may use ``tune``)."""
    path.write_text(
        "from ray import tune\nfrom raydaug.experiment import Experiment\n\n\n"
        "def experiment():\n"
        f"    return Experiment(name={name!r}, base={base!r}, search_space={search}, scheduler={scheduler!r},\n"
        f"                      scheduler_options={options}, cpus_per_trial=1.0, max_failures={max_failures},\n"
        f"                      checkpoints_to_keep={KEEP})\n")
    return str(path)


# ---------------------------------------------------------------------- 0. the check itself
def _fake_run(run_dir: Path, written: list[int], restores: int) -> None:
    """A run of one trial whose metrics rows are the iterations ``written`` (one part file each, as a
    trial's flushes write them) and whose trials table has ``restores`` restore rows."""
    from raydaug.config import Config
    from raydaug.logging import parquet as P

    for iteration in written:
        writer = P.metrics_writer(str(run_dir), "t0")
        writer.append(P.metrics_row({"acc/val": 0.5}, iteration, float(iteration)))
        writer.flush()
    trials = P.trials_writer(str(run_dir))
    for index in range(1 + restores):
        trials.append(P.trial_row("t0", "restore" if index else "start", 0, Config.from_dict(TINY).to_dict()))
    trials.flush()


def test_the_once_check_reads_the_raw_rows(tmp_path):
    """``analysis.load`` keeps one row per (trial, iteration), so "once" must be checked on the raw rows:
    rows written twice beyond what the restores may redo fail, within it pass."""
    _fake_run(tmp_path / "ok", [1, 2, 3, 2, 3, 4], restores=1)
    assert assert_every_iteration_once(tmp_path / "ok", trials=1, epochs=4, redone_per_restore=2) == {"t0": 2}
    _fake_run(tmp_path / "twice", [1, 2, 3, 2, 3, 4], restores=0)
    with pytest.raises(AssertionError, match="2 rows written twice"):
        assert_every_iteration_once(tmp_path / "twice", trials=1, epochs=4, redone_per_restore=2)
    _fake_run(tmp_path / "beyond", [1, 2, 3, 4, 1, 2, 3, 4], restores=1)
    with pytest.raises(AssertionError, match="4 rows written twice"):
        assert_every_iteration_once(tmp_path / "beyond", trials=1, epochs=4, redone_per_restore=2)


# ---------------------------------------------------------------------- 1. a trial's worker
class KillWorkerAt(tune.Callback):
    """SIGKILL the worker process of the first trial that reports ``iteration`` (once)."""

    def __init__(self, iteration: int):
        self.iteration = iteration
        self.killed: tuple[str, int] | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is None and result["training_iteration"] == self.iteration:
            os.kill(result["worker/pid"], signal.SIGKILL)
            self.killed = (trial.trial_id, result["worker/pid"])


class Reports(tune.Callback):
    """(trial, iteration, worker pid) of every result the driver received."""

    def __init__(self):
        self.rows: list[tuple[str, int, int]] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.append((trial.trial_id, result["training_iteration"], result["worker/pid"]))


def test_trial_worker_sigkill_retries_from_the_last_checkpoint(ray_session, tmp_path):
    epochs = 6
    experiment = Experiment(name="worker_kill", base={**TINY, "epochs": epochs, "checkpoint_every": INTERVAL},
                            search_space={"seed": tune.grid_search([0, 1])}, scheduler="fifo",
                            cpus_per_trial=1.0, max_failures=0, checkpoints_to_keep=KEEP)
    plan = runner.plan_experiment(experiment, TuneOptions(storage=str(tmp_path), max_failures=1))
    assert runner.build_run_config(plan).failure_config.max_failures == 1  # --max-failures wins
    # iteration 3's result: the checkpoint of iteration 2 is registered, iteration 3 is not durable
    killer, reports = KillWorkerAt(INTERVAL + 1), Reports()
    results, plan = runner.launch(plan, [killer, reports], log=lambda _: None)

    assert killer.killed, "no trial reached the iteration to kill at"
    victim, pid = killer.killed
    assert not results.errors, "the killed trial was not retried to the end"
    run_dir = Path(plan.run_dir)
    assert_every_iteration_once(run_dir, trials=2, epochs=epochs, redone_per_restore=INTERVAL)
    restores = trial_events(run_dir).query("event == 'restore'")
    assert list(zip(restores["trial_id"], restores["training_iteration"])) == [(victim, INTERVAL)]
    after = [row for row in reports.rows if row[0] == victim and row[2] != pid]
    assert after and after[0][1] == INTERVAL + 1, "the retry did not continue from the checkpoint"

    reported = collections.Counter((trial, it) for trial, it, _ in reports.rows)
    reported_twice = sum(count - 1 for (trial, _), count in reported.items() if trial == victim)
    written_twice = rows_written_twice(run_dir)
    report("worker SIGKILL", killed_at_iteration=INTERVAL + 1, restored_from=INTERVAL,
           iterations_reported_twice=reported_twice, rows_written_twice=written_twice)
    assert 1 <= reported_twice <= INTERVAL
    assert max(written_twice.values()) <= INTERVAL


# ---------------------------------------------------------------------- 2. the driver
def state_names_a_checkpoint_of_each(run_dir: Path, trials: int) -> bool:
    """Whether Tune's newest saved experiment state holds ``trials`` trials and names a checkpoint of each:
    the state lags the checkpoints (under load by more than a checkpoint interval). Read through Tune's
    public ``ExperimentAnalysis``, which loads the state as ``--resume`` does."""
    if not any(run_dir.glob("experiment_state-*.json")):
        return False
    try:
        saved = tune.ExperimentAnalysis(str(run_dir.resolve())).trials
    except (OSError, ValueError):  # the state file is replaced while we read it
        return False
    return len(saved) == trials and all(trial.checkpoint is not None for trial in saved)


def test_driver_sigkill_then_resume_completes_the_experiment(tmp_path):
    epochs = 14  # room for the saved state to catch up before the trials finish
    config = write_experiment(tmp_path / "driver_kill.py", "driver_kill",
                              {**TINY, "epochs": epochs, "checkpoint_every": INTERVAL},
                              "{'seed': tune.grid_search([0, 1])}")
    storage = tmp_path / "runs"
    run_dir = storage / "driver_kill"
    argv = [sys.executable, "-m", "raydaug", "tune", config, "--storage", str(storage)]
    log = tmp_path / "driver.log"

    driver = spawn(argv, log, child_env())
    try:
        # both trials past their second checkpoint's rows, and Tune's saved experiment state (what --resume
        # reads) naming a checkpoint of each: killed before that, a resume rightly starts a trial again
        wait_for(lambda: every_trial_reached(run_dir, 2, 2 * INTERVAL) and state_names_a_checkpoint_of_each(run_dir, 2),
                 "two checkpoints per trial, named in the experiment state", process=driver, log=log)
    finally:
        kill_group(driver)
    killed_at = time.time()
    before = durable_iterations(run_dir)
    assert min(before.values()) < epochs, f"the driver was killed after the trials finished: {before}"

    resume = spawn([*argv, "--resume"], log, child_env())
    try:
        code, output = finish(resume, log)
    finally:
        kill_group(resume)
    assert code == 0, output[-3000:]
    assert "resuming driver_kill" in output

    assert_every_iteration_once(run_dir, trials=2, epochs=epochs, redone_per_restore=KEEP * INTERVAL)
    events = trial_events(run_dir)
    after = events[events["timestamp"] > killed_at]
    restored = after[after["event"] == "restore"]
    restored_from = dict(zip(restored["trial_id"], restored["training_iteration"]))
    unfinished = {trial for trial, iteration in before.items() if iteration < epochs}
    assert unfinished <= set(restored_from), (
        f"an unfinished trial did not continue from its checkpoint: {restored_from}")
    written_twice = rows_written_twice(run_dir)
    report("driver SIGKILL", durable_before_kill=before, restored_from=restored_from,
           rows_written_twice=written_twice)
    # Tune's experiment state names each trial's checkpoint; it is saved at least every 10 s and as soon
    # as a trial has written num_to_keep checkpoints since the last save: a resumed trial is at most
    # KEEP checkpoints behind the rows it had made durable
    seen = f"durable before the kill {before}, restored from {restored_from}, rows written twice {written_twice}"
    assert max(written_twice.values()) <= KEEP * INTERVAL, seen
    for trial, iteration in restored_from.items():
        assert before[trial] - iteration <= KEEP * INTERVAL, seen


# ---------------------------------------------------------------------- 3. a node of a cluster
def test_killing_a_worker_node_reschedules_its_trial(tmp_path):
    epochs = 10
    config = write_experiment(
        tmp_path / "multi_node.py", "multi_node", {**TINY, "epochs": epochs, "checkpoint_every": INTERVAL},
        "{'alpha': tune.loguniform(0.02, 0.5), 'lr_c': tune.grid_search([1e-5, 2e-3])}", scheduler="pbt",
        options=f"{{'perturbation_interval': {INTERVAL}, 'quantile_fraction': 0.5, 'resample_probability': 0.25}}",
        max_failures=2)
    storage = tmp_path / "shared"  # every node of a loopback cluster sees this folder
    run_dir = storage / "multi_node"
    log = tmp_path / "driver.log"
    cluster = LoopbackCluster()
    driver = None
    try:
        cluster.start(workers=2)
        driver = spawn([sys.executable, "-m", "raydaug", "tune", config, "--address", cluster.address,
                        "--storage", str(storage)], log, cluster.env)
        wait_for(lambda: every_trial_reached(run_dir, 2, INTERVAL) and cluster.runs_a_trial("worker1"),
                 "a checkpoint of each trial, and a trial on worker1", process=driver, log=log)
        running, killed_at, before = cluster.kill_worker_midway("worker1", driver, log,
                                                                lambda: durable_iterations(run_dir), epochs)
    finally:
        if driver is not None:
            kill_group(driver)
        cluster.stop()

    assert_every_iteration_once(run_dir, trials=2, epochs=epochs, redone_per_restore=INTERVAL)
    failed = [path.parent.name for path in run_dir.glob("train_trial_*/error.txt")]
    assert len(failed) == 1, f"expected the killed node's trial to fail once and be retried: {failed}"
    victim = re.search(r"train_trial_([0-9a-f]{5}_\d{5})", failed[0]).group(1)
    events = trial_events(run_dir)
    restores = events[(events["trial_id"] == victim) & (events["timestamp"] > killed_at)]
    assert not restores.empty, "the killed node's trial never came back"
    report("worker node SIGKILL", victim=victim, durable_before_kill=before,
           restored_from=int(restores["training_iteration"].iloc[0]),
           back_after_s=round(float(restores["timestamp"].iloc[0]) - killed_at, 1),
           rows_written_twice=rows_written_twice(run_dir),
           killed=sorted({command.split()[0] for command in running if command.startswith("ray::")}))


# ---------------------------------------------------------------------- 3b. a cluster with token authentication
def test_a_token_cluster_runs_the_smoke_test_and_refuses_a_driver_without_its_token(tmp_path):
    """A loopback cluster (head and one worker on 127.0.0.1) started with RAY_AUTH_MODE=token and a token of
    its own: ``raydaug tune smoke --smoke --address`` with that token runs to the end, on a folder of the
    user's images (``dataset=folder``: the trials on the worker node read and cache it); a driver without the
    token (no RAY_AUTH_TOKEN, no ~/.ray/auth_token) fails with exit 2 and one line saying it is the token,
    without Ray's retry lines (one per second for about 20 s) nor the node IP Ray gives up on."""
    cluster = LoopbackCluster(RAYDAUG_CACHE=str(tmp_path / "cache"))
    home = tmp_path / "home"  # a user without ~/.ray/auth_token
    home.mkdir()
    images = write_folder(tmp_path / "images", dict.fromkeys(["ant", "bee", "wasp"], 6))
    try:
        cluster.start(workers=1)
        log = tmp_path / "driver.log"
        argv = [sys.executable, "-m", "raydaug", "tune", "smoke", "--smoke", "--address", cluster.address]
        folder = ["--set", "dataset=folder", "--set", f"data_dir={images}", "--set", "train_per_class=3",
                  "--set", "val_per_class=2"]
        driver = spawn([*argv, *folder, "--storage", str(tmp_path / "runs")], log, cluster.env)
        try:
            code, output = finish(driver, log)
        finally:
            kill_group(driver)
        assert code == 0, output[-3000:]
        assert "results in" in output and (tmp_path / "runs" / "smoke_smoke" / "parquet" / "metrics").is_dir()
        assert list((tmp_path / "cache" / "folders").glob("*.npz")), "the trials decoded the folder into the cache"

        # RAY_AUTH_MODE=token without a token (Ray refuses it itself), and no RAY_AUTH_MODE at all (the cluster
        # refuses the connection)
        without = {key: value for key, value in cluster.env.items() if key != "RAY_AUTH_TOKEN"}
        unaware = {key: value for key, value in without.items() if key != "RAY_AUTH_MODE"}
        for env in ({**without, "HOME": str(home)}, {**unaware, "HOME": str(home)}):
            done = subprocess.run([*argv, "--storage", str(tmp_path / "refused")], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 2, done.stderr[-3000:]
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"raydaug: error: --address {cluster.address}: "), lines
            assert "token" in lines[0] and "RAY_AUTH_TOKEN" in lines[0], lines[0]
    finally:
        cluster.stop()


# ---------------------------------------------------------------------- 4. NaN / inf in a population
def test_non_finite_loss_fails_that_trial_only_and_keeps_its_rows(ray_session, tmp_path, monkeypatch, capsys):
    epochs, poisoned_after = 6, INTERVAL + 1
    config = write_experiment(tmp_path / "nan.py", "nan", {**TINY, "epochs": epochs, "checkpoint_every": INTERVAL},
                              "{}")
    # one trial of the pair follows a schedule that raises lr_g to 1e4 after iteration 3 (a real config
    # value, applied by the trial in its worker): its losses overflow during iteration 4
    schedule = [[poisoned_after, {"lr_g": 1e4}]]
    original = runner.plan_from_options

    def with_a_poisoned_trial(options):
        plan = original(options)
        return dataclasses.replace(plan, param_space={**plan.param_space,
                                                      REPLAY_KEY: tune.grid_search([None, schedule])})

    monkeypatch.setattr(runner, "plan_from_options", with_a_poisoned_trial)
    code = main(["tune", config, "--storage", str(tmp_path / "runs"), "--max-failures", "1"])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("raydaug: error:")]
    assert len(lines) == 1, err
    match = re.search(r"1 trial\(s\) failed after 1 retries \(trial (\w+): NonFiniteLossError: (G|C|DC|DD)'s loss "
                      rf"\(loss/\w+\) became non-finite at step \d+ \(epoch {poisoned_after + 1}, "
                      rf"iteration {poisoned_after + 1}\)\); .* --resume$", lines[0])
    assert match, lines[0]
    victim = match.group(1)

    run_dir = tmp_path / "runs" / "nan"
    run = load(str(run_dir))
    iterations = run.metrics.groupby("trial_id", observed=True)["training_iteration"].apply(list).to_dict()
    assert len(iterations) == 2
    # the poisoned trial keeps the rows of every iteration before the failure, even the one after its
    # last checkpoint; the other trial trains to the end
    assert iterations.pop(victim) == list(range(1, poisoned_after + 1))
    assert list(iterations.values()) == [list(range(1, epochs + 1))]
    report("non-finite loss", error=lines[0].split("(trial ", 1)[1].split(");")[0],
           rows_kept=poisoned_after, rows_written_twice=rows_written_twice(run_dir))
