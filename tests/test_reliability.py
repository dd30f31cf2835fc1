"""Failure injection (slow, several processes): a trial's worker, the driver and a cluster node are
SIGKILLed mid-run, and one trial's loss turns non-finite. After each, the Parquet logs must hold every
iteration of every trial exactly once (``analysis.load``), and the work done twice is measured: the rows
written twice (raw Parquet rows before de-duplication) and, where the driver is ours, the results reported
twice. docs/reliability.md reports the numbers; run with ``pytest -m slow -s`` to see them.

The drivers of the driver-kill and cluster tests are separate ``raydaug tune`` processes with their own Ray
(RAY_ADDRESS removed from their environment, so they never join the pytest session's Ray), each started
in a process group of its own: Ray's processes (GCS, raylet, workers) inherit it, and killing the group
kills all of them. Every group is killed again in a ``finally`` so nothing outlives a failed test.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from analysis.load import load  # noqa: E402
from raydaug.cli import main  # noqa: E402
from raydaug.experiment import Experiment  # noqa: E402
from raydaug.tune import runner  # noqa: E402
from raydaug.tune.trainable import REPLAY_KEY  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RAY_CLI = str(Path(sys.executable).with_name("ray"))
# digits, 16 px, tiny nets: an iteration (one epoch + evaluation) takes about a second on a shared core
TINY: dict[str, Any] = {"dataset": "digits", "image_size": 16, "ngf": 4, "noise_dim": 8, "train_per_class": 3,
                        "val_per_class": 3, "batch_size": 10, "eval_every": 1}
INTERVAL = 2           # checkpoint_every / eval_every: iterations between two checkpoints
KEEP = 2               # CheckpointConfig(num_to_keep)
PROCESS_TIMEOUT_S = 300


# ---------------------------------------------------------------------- experiments
def tune_args(**changes: Any) -> argparse.Namespace:
    values = dict(config="", set=[], smoke=False, name=None, storage=None, address=None, num_samples=None,
                  cpus_per_trial=None, gpus_per_trial=None, max_failures=None, resume=False)
    values.update(changes)
    return argparse.Namespace(**values)


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


# ---------------------------------------------------------------------- Parquet measurements
def raw_metrics(run_dir: Path) -> pd.DataFrame:
    """Every metrics row on disk, the rows a restore wrote again included (``analysis.load`` keeps the
    last of each (trial, iteration))."""
    folder = run_dir / "parquet" / "metrics"
    columns = ["trial_id", "training_iteration", "timestamp"]
    if not folder.is_dir():
        return pd.DataFrame(columns=columns)
    partitioning = ds.partitioning(pa.schema([("trial_id", pa.string())]), flavor="hive")
    return ds.dataset(folder, format="parquet", partitioning=partitioning).to_table(columns=columns).to_pandas()


def durable_iterations(run_dir: Path) -> dict[str, int]:
    """trial id → highest iteration with a row on disk (rows are flushed at every checkpoint)."""
    frame = raw_metrics(run_dir)
    return {str(k): int(v) for k, v in frame.groupby("trial_id")["training_iteration"].max().items()}


def every_trial_reached(run_dir: Path, trials: int, iteration: int) -> bool:
    durable = durable_iterations(run_dir)
    return len(durable) == trials and min(durable.values()) >= iteration


def rows_written_twice(run_dir: Path) -> dict[str, int]:
    """trial id → rows on disk minus distinct iterations (what restores wrote again)."""
    grouped = raw_metrics(run_dir).groupby("trial_id")["training_iteration"]
    return {str(trial): int(count - grouped.nunique()[trial]) for trial, count in grouped.size().items()}


def trial_events(run_dir: Path) -> pd.DataFrame:
    return ds.dataset(run_dir / "parquet" / "trials", format="parquet").to_table().to_pandas()


def assert_every_iteration_once(run_dir: Path, trials: int, epochs: int) -> None:
    """After analysis.load, each trial has the iterations 1..epochs, each exactly once, and no part
    file was skipped."""
    run = load(str(run_dir))
    assert run.skipped == []
    by_trial = run.metrics.groupby("trial_id", observed=True)["training_iteration"].apply(list).to_dict()
    assert len(by_trial) == trials, sorted(by_trial)
    for trial_id, iterations in by_trial.items():
        assert iterations == list(range(1, epochs + 1)), trial_id


def report(title: str, **numbers: Any) -> None:
    """One line per measurement (visible with -s; docs/reliability.md quotes them)."""
    print(f"\n[reliability] {title}: " + ", ".join(f"{key}={value}" for key, value in numbers.items()))


# ---------------------------------------------------------------------- processes
def child_env(**extra: str) -> dict[str, str]:
    """A separate driver's environment: never the pytest session's Ray (no RAY_ADDRESS)."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(extra)
    return env


def spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``argv`` in a process group of its own (the Ray processes it starts inherit it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_group(process: subprocess.Popen) -> dict[int, str]:
    """SIGKILL ``process``'s group and every descendant of its members (Ray gives each worker process a
    group of its own), then reap ``process``; returns pid → command line of what was killed."""
    killed = process_tree(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    return killed


def finish(process: subprocess.Popen, log: Path, timeout_s: float = PROCESS_TIMEOUT_S) -> tuple[int, str]:
    """Wait for ``process`` (killing its group on timeout); returns (exit code, its output)."""
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise AssertionError(f"{process.args} did not finish in {timeout_s} s:\n{log.read_text()[-3000:]}")
    return code, log.read_text()


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = PROCESS_TIMEOUT_S,
             process: subprocess.Popen | None = None, log: Path | None = None) -> Any:
    """Poll ``condition`` until it is truthy; fail on timeout or when ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise AssertionError(f"waiting for {what}: the process exited with {process.returncode}\n{tail}")
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(pgid: int) -> dict[int, str]:
    """pid → command line of the live processes of group ``pgid`` and of all their descendants (/proc)."""
    parents: dict[int, int] = {}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        pid = int(stat.parent.name)
        if state != "Z":
            parents[pid] = int(ppid)
            if int(group) == pgid:
                members.add(pid)
    frontier = list(members)
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    commands = {}
    for pid in members:
        try:
            commands[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return commands


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
    plan = runner.plan_experiment(experiment, tune_args(storage=str(tmp_path), max_failures=1))
    assert runner.build_run_config(plan).failure_config.max_failures == 1  # --max-failures wins
    # iteration 3's result: the checkpoint of iteration 2 is registered, iteration 3 is not durable
    killer, reports = KillWorkerAt(INTERVAL + 1), Reports()
    results, plan = runner.launch(plan, [killer, reports], log=lambda _: None)

    assert killer.killed, "no trial reached the iteration to kill at"
    victim, pid = killer.killed
    assert not results.errors, "the killed trial was not retried to the end"
    run_dir = Path(plan.run_dir)
    assert_every_iteration_once(run_dir, trials=2, epochs=epochs)
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
def test_driver_sigkill_then_resume_completes_the_experiment(tmp_path):
    epochs = 10
    config = write_experiment(tmp_path / "driver_kill.py", "driver_kill",
                              {**TINY, "epochs": epochs, "checkpoint_every": INTERVAL},
                              "{'seed': tune.grid_search([0, 1])}")
    storage = tmp_path / "runs"
    run_dir = storage / "driver_kill"
    argv = [sys.executable, "-m", "raydaug", "tune", config, "--storage", str(storage)]
    log = tmp_path / "driver.log"

    driver = spawn(argv, log, child_env())
    try:
        # both trials past their second checkpoint's rows, and Tune's experiment state on disk
        wait_for(lambda: any(run_dir.glob("experiment_state-*.json")) and every_trial_reached(run_dir, 2, 2 * INTERVAL),
                 "two checkpoints per trial", process=driver, log=log)
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

    assert_every_iteration_once(run_dir, trials=2, epochs=epochs)
    events = trial_events(run_dir)
    restored = events[(events["event"] == "restore") & (events["timestamp"] > killed_at)]
    restored_from = dict(zip(restored["trial_id"], restored["training_iteration"]))
    unfinished = {trial for trial, iteration in before.items() if iteration < epochs}
    assert unfinished <= set(restored_from), "an unfinished trial was not resumed"
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
class LoopbackCluster:
    """A head (no CPUs: trials run on the workers) and worker nodes of one CPU each, all on this
    machine, started with the venv's ``ray start --block`` in process groups of their own. Token
    authentication is on (Ray 2.60's default for a head when a token exists), with a token of its own."""

    def __init__(self):
        # Ray's unix socket paths must fit in 107 bytes: a short folder, not pytest's tmp_path
        self.temp_dir = tempfile.mkdtemp(prefix="rdc-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = child_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.nodes: dict[str, subprocess.Popen] = {}

    def _ports(self) -> list[str]:  # several nodes on one host: every per-node port must differ
        return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]

    def _start(self, name: str, argv: list[str]) -> None:
        log = Path(self.temp_dir) / f"{name}.log"
        self.nodes[name] = node = spawn([RAY_CLI, "start", "--block", "--disable-usage-stats", *argv,
                                         *self._ports()], log, self.env)
        wait_for(lambda: "Ray runtime started" in log.read_text(), f"node {name}", timeout_s=120,
                 process=node, log=log)

    def start(self, workers: int) -> "LoopbackCluster":
        self._start("head", ["--head", f"--port={self.port}", "--num-cpus=0", f"--temp-dir={self.temp_dir}",
                             "--include-dashboard=false", f"--dashboard-port={free_port()}"])
        for index in range(workers):  # one at a time: nodes starting together race for socket names
            self._start(f"worker{index}", [f"--address={self.address}", "--num-cpus=1",
                                           f'--resources={{"worker{index}": 1}}'])
        return self

    def runs_a_trial(self, name: str) -> bool:
        """Whether a trial's actor process (``ray::ImplicitFunc``) lives on node ``name``."""
        return any("ImplicitFunc" in command for command in process_tree(self.nodes[name].pid).values())

    def kill(self, name: str) -> list[str]:
        """SIGKILL a node (its raylet and every worker process on it); returns what was running there."""
        return list(kill_group(self.nodes[name]).values())

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            kill_group(node)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


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
        running = cluster.kill("worker1")
        killed_at = time.time()
        before = durable_iterations(run_dir)
        code, output = finish(driver, log)
    finally:
        if driver is not None:
            kill_group(driver)
        cluster.stop()
    assert any("ImplicitFunc" in command for command in running), f"no trial ran on the killed node: {running}"
    assert max(before.values()) < epochs, f"the node was killed after the trials finished: {before}"
    assert code == 0, output[-3000:]

    assert_every_iteration_once(run_dir, trials=2, epochs=epochs)
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


# ---------------------------------------------------------------------- 4. NaN / inf in a population
def test_non_finite_loss_fails_that_trial_only_and_keeps_its_rows(ray_session, tmp_path, monkeypatch, capsys):
    epochs, poisoned_after = 6, INTERVAL + 1
    config = write_experiment(tmp_path / "nan.py", "nan", {**TINY, "epochs": epochs, "checkpoint_every": INTERVAL},
                              "{}")
    # one trial of the pair follows a schedule that raises lr_g to 1e4 after iteration 3 (a real config
    # value, applied by the trial in its worker): its losses overflow during iteration 4
    schedule = [[poisoned_after, {"lr_g": 1e4}]]
    original = runner.plan_from_args

    def with_a_poisoned_trial(args):
        plan = original(args)
        return dataclasses.replace(plan, param_space={**plan.param_space,
                                                      REPLAY_KEY: tune.grid_search([None, schedule])})

    monkeypatch.setattr(runner, "plan_from_args", with_a_poisoned_trial)
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
