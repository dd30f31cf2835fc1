"""``raydaug schedule replay``: retrain one trial on an exported PBT schedule."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import ray
from ray import tune

from raydaug.experiment import Experiment
from raydaug.logging.parquet import join
from raydaug.schedule import check_schedule
from raydaug.tune.cluster import alive_nodes, check_cluster, connect
from raydaug.tune.options import TuneOptions
from raydaug.tune.plan import check_data, plan_experiment
from raydaug.tune.runner import build_run_config, build_trainable, quiet_tune
from raydaug.tune.storage import make_run_dir, write_text
from raydaug.tune.summary import raise_on_errors, summarize
from raydaug.tune.trainable import REPLAY_KEY


def run_replay(schedule: Mapping[str, Any], storage: str, name: str, cpus_per_trial: float | None = None,
               gpus_per_trial: float = 0.0, address: str | None = None,
               callbacks: Sequence[tune.Callback] = (), log: Callable[[str], None] = print) -> str:
    """Retrain one trial on an exported PBT schedule (format in docs/tune.md); writes the usual Parquet
    layout into ``storage/name`` (plus ``schedule.json``). Returns RUN_DIR.

    Equivalent to Ray's PopulationBasedTrainingReplay (a change at iteration k governs the iterations
    after k) but the trial applies each change itself, in place, after its report of iteration k: Ray's
    replay pauses and restores the trial at every change, and in Ray 2.60 the save it schedules before
    pausing leaves a stale STOP decision behind that ends the trial one iteration after the last change."""
    initial, changes = check_schedule(schedule, f"the schedule of trial {schedule.get('trial_id', '?')}")
    # the recorded config names the device the source trial ran on; the replay follows its own resources
    values = {**initial.to_dict(), "preset": "", "device": "auto"}
    experiment = Experiment(name=name, base=values, scheduler="fifo",
                            cpus_per_trial=1.0 if cpus_per_trial is None else cpus_per_trial,
                            gpus_per_trial=gpus_per_trial,
                            max_failures=1, checkpoints_to_keep=2)
    plan = plan_experiment(experiment, TuneOptions(storage=storage, name=name, address=address))
    check_data(plan)
    quiet_tune()
    started = connect(plan)
    try:
        nodes = alive_nodes()
        if cpus_per_trial is None:  # the one trial gets the whole largest node
            plan = replace(plan, cpus_per_trial=max(1.0, max(float(n.get("CPU", 1)) for n in nodes)))
        plan = check_cluster(plan, nodes, log)
        make_run_dir(plan.run_dir)
        write_text(join(plan.run_dir, "schedule.json"),
                   json.dumps(schedule, indent=2, sort_keys=True, default=str) + "\n")
        log(f"replaying {len(changes)} change(s) of trial {schedule.get('trial_id', '?')} → {plan.run_dir}")
        param_space = {**values, REPLAY_KEY: [[iteration, change] for iteration, change in changes]}
        tuner = tune.Tuner(build_trainable(plan), param_space=param_space,
                           tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True),
                           run_config=build_run_config(plan, callbacks))
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    summarize(results, plan, log)
    raise_on_errors(results, plan)
    return plan.run_dir
