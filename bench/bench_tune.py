"""Ray Tune costs on this machine (digits, 16 px, the small nets of Config's defaults).

1. **Tune overhead**: one trial through Tune against the plain ``Trainer`` loop (same config, same
   iterations, checkpoints at the same epochs, one torch thread each), alternated in one process:
   plain, Tune, plain (quick) or plain, Tune, plain, Tune, plain; medians. Throughput = training samples between
   the first and the last evaluation divided by the time between them (steady state; Ray start-up and actor
   start are reported apart).
   Goal: Tune/plain ≥ 0.95.
2. **Exploit cost**: a 2-trial PBT forced to exploit (one trial cannot learn: lr_c 1e-6; quantile 0.5,
   perturbation every iteration). For each exploit: time on the driver from the exploited trial's last
   report before it to its first report after it, minus one iteration (the median ``time_this_iter_s``
   of reports that did not follow a restore).
   Goal: ≤ 1 s.
3. **Population scaling**: 1, 2 and 4 concurrent trials (CPU share min(1, cores / trials), one torch
   thread each), aggregate training samples/s.
4. **S3 storage vs local**: the smoke PBT (``raydaug tune smoke --smoke``: 2 trials, 4 iterations, a
   checkpoint and a perturbation at every iteration) into a local folder and into a bucket of a loopback
   S3 endpoint (moto's standalone server, ``tests/s3.py``), alternated in one process: wall time of the
   run (from launch to the end of ``fit``) and the exploit cost (as in 2.), S3 / local.
(GPU packing, 1 × 1.0 … 8 × 0.125 GPU trials, is in ``bench_gpu``.)

``run(quick)`` returns the rows; ``python -m bench tune`` writes ``bench/results/tune.json``.
"""
from __future__ import annotations

import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DIGITS = {"dataset": "digits", "image_size": 16, "classifier": "small", "disc": "small", "device": "cpu"}
OVERHEAD_GOAL = 0.95
EXPLOIT_GOAL_S = 1.0


def _row(metric: str, value: float | None, unit: str, goal: str = "", met: bool | None = None, **extra: Any):
    return {"metric": metric, "value": None if value is None else round(float(value), 4), "unit": unit,
            "goal": goal, "met": None if met is None else bool(met), **extra}


def _args(storage: str, **changes: Any):
    from raydaug.tune.options import TuneOptions

    return TuneOptions(storage=storage, **changes)


def _recorder():
    from ray import tune

    class Recorder(tune.Callback):
        def __init__(self):
            self.rows: list[dict[str, Any]] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.rows.append({"time": time.perf_counter(), "trial": trial.trial_id,
                              "iteration": result["training_iteration"],
                              "iteration_s": result["time_this_iter_s"],
                              "after_restore": result["iterations_since_restore"] == 1,
                              "exploited_here": dict(result["config"]) != dict(trial.config)})

    return Recorder()


def _launch(experiment, storage: str):
    from raydaug.tune import runner

    recorder = _recorder()
    plan = runner.plan_experiment(experiment, _args(storage))
    started = time.perf_counter()
    results, plan = runner.launch(plan, [recorder], log=lambda _: None)
    wall = time.perf_counter() - started
    if results.errors:
        raise RuntimeError(f"benchmark run {experiment.name} failed: {results.errors[0]}")
    return plan, recorder.rows, wall


def _steady_rate(frame, samples_per_iteration: int) -> float:
    """samples/s between a trial's first and last metric row (one row per iteration)."""
    frame = frame.sort_values("timestamp").drop_duplicates("training_iteration", keep="last")
    span = frame["timestamp"].iloc[-1] - frame["timestamp"].iloc[0]
    return samples_per_iteration * (len(frame) - 1) / span


def _metrics(run_dir: str):
    import pandas as pd

    return pd.read_parquet(Path(run_dir) / "parquet" / "metrics")


# ---------------------------------------------------------------------- 1. overhead
def _plain_rate(values: dict[str, Any], folder: Path) -> tuple[float, float]:
    """The plain loop: Trainer.train_iteration + checkpoint at the same epochs. (steady samples/s, wall)."""
    import torch

    from raydaug.config import Config
    from raydaug.train import Trainer

    config = Config.from_dict(values)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        trainer = Trainer(config)
        stamps = []
        while not trainer.done:
            trainer.train_iteration()
            stamps.append(time.perf_counter())
            if trainer.state.epoch % config.checkpoint_every == 0 or trainer.done:
                trainer.save(folder / "state.pt")
        wall = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    per_iteration = len(trainer.splits.train) * config.eval_every
    return per_iteration * (len(stamps) - 1) / (stamps[-1] - stamps[0]), wall


def bench_overhead(quick: bool, storage: str) -> list[dict[str, Any]]:
    from raydaug.config import Config
    from raydaug.experiment import Experiment

    epochs = 30 if quick else 50
    values = {**DIGITS, "epochs": epochs, "eval_every": 5, "checkpoint_every": 10}
    per_iteration = Config.from_dict(values).train_per_class * 10 * values["eval_every"]
    # alternate plain and Tune runs so that a change in the machine's load hits both alike
    plain, tuned, plain_walls, tune_walls = [], [], [], []
    for repeat in range(1 if quick else 2):
        rate, wall = _plain_rate(values, Path(storage))
        plain.append(rate)
        plain_walls.append(wall)
        experiment = Experiment(name=f"overhead{repeat}", base=values, scheduler="fifo", cpus_per_trial=1.0)
        plan, _, wall = _launch(experiment, storage)
        tuned.append(_steady_rate(_metrics(plan.run_dir), per_iteration))
        tune_walls.append(wall)
    rate, _ = _plain_rate(values, Path(storage))
    plain.append(rate)
    ratio = statistics.median(tuned) / statistics.median(plain)
    return [
        _row("tune overhead: Tune/plain throughput", ratio, "ratio", f"≥ {OVERHEAD_GOAL}", ratio >= OVERHEAD_GOAL,
             tune_samples_per_s=[round(r, 2) for r in tuned], plain_samples_per_s=[round(r, 2) for r in plain],
             epochs=epochs),
        _row("tune overhead: plain loop throughput", statistics.median(plain), "samples/s"),
        _row("tune overhead: one trial through Tune throughput", statistics.median(tuned), "samples/s"),
        _row("tune overhead: end-to-end wall, Tune (incl. trial start) − plain",
             statistics.median(tune_walls) - statistics.median(plain_walls), "s",
             tune_wall_s=[round(w, 2) for w in tune_walls], plain_wall_s=[round(w, 2) for w in plain_walls]),
    ]


# ---------------------------------------------------------------------- 2. exploit cost
def bench_exploit(quick: bool, storage: str) -> list[dict[str, Any]]:
    from ray import tune

    from raydaug.experiment import Experiment

    epochs = 8 if quick else 16
    experiment = Experiment(
        name="exploit", base={**DIGITS, "epochs": epochs, "eval_every": 1, "checkpoint_every": 1},
        search_space={"lr_c": tune.grid_search([1e-6, 1e-3])}, scheduler="pbt",
        scheduler_options={"perturbation_interval": 1, "quantile_fraction": 0.5, "resample_probability": 0.25},
        cpus_per_trial=1.0, checkpoints_to_keep=2)
    plan, rows, _ = _launch(experiment, storage)
    costs, iteration = _exploit_costs(rows)
    if not costs:
        return [_row("exploit cost (digits)", None, "s", f"≤ {EXPLOIT_GOAL_S} s", None, note="no exploit happened")]
    cost = statistics.median(costs)
    return [
        _row("exploit cost (digits): last report before → first after, − 1 iteration", cost, "s",
             f"≤ {EXPLOIT_GOAL_S} s", cost <= EXPLOIT_GOAL_S, exploits=len(costs),
             max_s=round(max(costs), 3), iteration_s=round(iteration, 3)),
    ]


def _exploit_costs(rows: list[dict[str, Any]]) -> tuple[list[float], float]:
    """(cost of each exploit, the steady iteration time): the driver-side gap from the report that
    triggered an exploit to the exploited trial's next report, minus one steady iteration (Tune's
    ``time_this_iter_s`` of reports that did not follow a restore)."""
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_trial.setdefault(row["trial"], []).append(row)
    gaps = [after["time"] - before["time"]
            for trial_rows in by_trial.values() for before, after in zip(trial_rows, trial_rows[1:])
            if before["exploited_here"]]
    steady = [row["iteration_s"] for row in rows if not row["after_restore"]]
    if not gaps or not steady:
        return [], float("nan")
    iteration = statistics.median(steady)
    return [gap - iteration for gap in gaps], iteration


# ---------------------------------------------------------------------- 3. population scaling
def _population_rate(values: dict[str, Any], trials: int, cpus: float, gpus: float, storage: str, name: str) -> float:
    from ray import tune

    from raydaug.config import Config
    from raydaug.experiment import Experiment

    experiment = Experiment(name=name, base=values, search_space={"seed": tune.grid_search(list(range(trials)))},
                            scheduler="fifo", cpus_per_trial=cpus, gpus_per_trial=gpus)
    plan, _, _ = _launch(experiment, storage)
    config = Config.from_dict(values)
    per_iteration = config.train_per_class * 10 * config.eval_every
    metrics = _metrics(plan.run_dir)
    return sum(_steady_rate(frame, per_iteration) for _, frame in metrics.groupby("trial_id", observed=True))


def bench_scaling(quick: bool, storage: str, cores: int) -> list[dict[str, Any]]:
    epochs = 15 if quick else 25
    values = {**DIGITS, "epochs": epochs, "eval_every": 5, "checkpoint_every": 10}
    rows, single = [], None
    for trials in (1, 2, 4):
        cpus = min(1.0, cores / trials)  # one torch thread per trial: the scaling is across processes
        rate = _population_rate(values, trials, cpus, 0.0, storage, f"scale{trials}")
        single = single or rate
        rows.append(_row(f"population scaling: {trials} concurrent trial(s), {cpus:g} CPU each", rate,
                         "samples/s", "", None, speedup=round(rate / single, 3)))
    return rows


# ---------------------------------------------------------------------- 4. S3 storage vs local
def bench_s3(quick: bool, storage: str, server) -> list[dict[str, Any]]:
    from raydaug.experiment import load_experiment

    smoke = load_experiment("smoke")
    walls: dict[str, list[float]] = {"local": [], "s3": []}
    costs: dict[str, list[float]] = {"local": [], "s3": []}
    for repeat in range(2 if quick else 3):
        for kind in ("local", "s3"):  # alternated: a change in the machine's load hits both alike
            target = storage if kind == "local" else server.uri("bench/runs")
            from raydaug.tune import runner

            recorder = _recorder()
            plan = runner.plan_experiment(smoke, _args(target, smoke=True, name=f"smoke_{kind}_{repeat}"))
            started = time.perf_counter()
            results, plan = runner.launch(plan, [recorder], log=lambda _: None)
            walls[kind].append(time.perf_counter() - started)
            if results.errors:
                raise RuntimeError(f"benchmark run {plan.name} failed: {results.errors[0]}")
            costs[kind] += _exploit_costs(recorder.rows)[0]
    wall = {kind: statistics.median(values) for kind, values in walls.items()}
    cost = {kind: statistics.median(values) if values else None for kind, values in costs.items()}
    rows = [
        _row("S3 vs local: smoke PBT wall time, S3 / local", wall["s3"] / wall["local"], "ratio",
             local_s=[round(w, 2) for w in walls["local"]], s3_s=[round(w, 2) for w in walls["s3"]]),
        _row("S3 vs local: smoke PBT wall time, local storage", wall["local"], "s"),
        _row("S3 vs local: smoke PBT wall time, S3 storage (loopback endpoint)", wall["s3"], "s"),
    ]
    for kind in ("local", "s3"):
        # (no goal here: in the smoke run both trials share the 2 CPUs, so an exploit also waits for PBT to
        # pause the other trial; the goal applies to the exploit cost of 2.)
        rows.append(_row(f"S3 vs local: exploit cost in the smoke PBT, {kind} storage (median)", cost[kind], "s",
                         exploits=len(costs[kind]),
                         max_s=round(max(costs[kind]), 3) if costs[kind] else None))
    ratio = cost["s3"] / cost["local"] if cost["s3"] is not None and cost["local"] else None
    rows.append(_row("S3 vs local: exploit cost in the smoke PBT, S3 / local", ratio, "ratio"))
    return rows


def _s3_endpoint():
    """The loopback S3 endpoint of the tests (moto[server], a test dependency), or None without moto."""
    try:
        from tests.s3 import MotoS3, export_credentials
    except ImportError:
        return None
    export_credentials()  # before Ray starts: its workers inherit the environment
    server = MotoS3().start()
    server.create_bucket("bench")
    return server


# ---------------------------------------------------------------------- entry point
def run(quick: bool) -> list[dict[str, Any]]:
    import ray

    cores = os.cpu_count() or 1
    storage = tempfile.mkdtemp(prefix="raydaug-bench-tune-")
    server = _s3_endpoint()
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        rows = []
        rows += bench_overhead(quick, storage)
        rows += bench_exploit(quick, storage)
        rows += bench_scaling(quick, storage, cores)
        if server is not None:
            rows += bench_s3(quick, storage, server)
        else:
            rows.append(_row("S3 vs local", None, "", note="moto[server] not installed (pip install -e '.[test]')"))
        return rows
    finally:
        if started_ray:
            ray.shutdown()
        if server is not None:
            server.stop()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
