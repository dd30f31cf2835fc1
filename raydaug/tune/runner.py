"""``raydaug tune``: from a tune_config to a running (or resumed) Ray Tune experiment.

The phases, one module each, so that every check runs before Ray starts a trial:

1. :mod:`raydaug.tune.plan` — :func:`plan_from_options` loads the tune_config, applies ``--smoke`` /
   ``--set`` / CLI resources (a :class:`TuneOptions`) and validates everything that needs no cluster →
   :class:`TunePlan` (storage and RUN_DIR checks in :mod:`raydaug.tune.storage`, the address probe in
   :mod:`raydaug.tune.address`).
2. :mod:`raydaug.tune.cluster` — start or join Ray, check the trial's bundle against the nodes.
3. this module — build the Tuner (or ``Tuner.restore`` for ``--resume``), fit it, run a follow-up;
   :mod:`raydaug.tune.summary` says how it ended.

``raydaug schedule replay`` is :mod:`raydaug.tune.replay`.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace

import ray
from ray import tune

from raydaug.experiment import BASELINES_STAGE, Experiment
from raydaug.images import LabelledImages
from raydaug.logging.parquet import join
from raydaug.tune.callbacks import ProgressTable, RegisterCheckpointOnce
from raydaug.tune.cluster import alive_nodes, check_cluster, connect
from raydaug.tune.options import TuneOptions
from raydaug.tune.plan import TunePlan, check_data, plan_experiment, plan_from_options
from raydaug.tune.schedulers import build_scheduler
from raydaug.tune.storage import make_run_dir
from raydaug.tune.summary import raise_on_errors, summarize
from raydaug.tune.trainable import train_trial


def build_trainable(plan: TunePlan):
    """The function trainable with run_dir (and the plan's in-memory images) bound and the trial's resource
    bundle attached."""
    # images from Python travel through Ray's object store (with_parameters puts them there once)
    trainable = tune.with_parameters(train_trial, run_dir=plan.run_dir, data=plan.data,
                                     pilot_store=plan.pilot_store, pilot_values=plan.pilot_values)
    return tune.with_resources(trainable, plan.resources())


def build_run_config(plan: TunePlan, callbacks: Sequence[tune.Callback] = ()) -> tune.RunConfig:
    return tune.RunConfig(
        name=plan.name,
        storage_path=plan.storage,
        failure_config=tune.FailureConfig(max_failures=plan.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=plan.checkpoints_to_keep),
        callbacks=[RegisterCheckpointOnce(), ProgressTable(plan.metric, interval_s=5.0 if plan.smoke else 30.0),
                   *callbacks],
        verbose=0,
    )


def build_tuner(plan: TunePlan, callbacks: Sequence[tune.Callback] = ()) -> tune.Tuner:
    trainable = build_trainable(plan)
    if plan.resume:
        tuner = tune.Tuner.restore(plan.run_dir, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
        # callbacks come back from the pickled experiment; give this session's instead
        internal = getattr(tuner, "_local_tuner", None)
        if internal is not None:
            internal.get_run_config().callbacks = list(build_run_config(plan, callbacks).callbacks)
        return tuner
    scheduler = build_scheduler(plan.scheduler, plan.run_dir, plan.settings)
    population = plan.scheduler in ("pbt", "pb2")
    tune_config = tune.TuneConfig(
        scheduler=scheduler, num_samples=plan.num_samples, reuse_actors=True,
        # a population scheduler carries metric/mode itself; Tune refuses them twice
        metric=None if population else plan.metric, mode=None if population else plan.mode)
    return tune.Tuner(trainable, param_space=plan.param_space, tune_config=tune_config,
                      run_config=build_run_config(plan, callbacks))


def quiet_tune() -> None:
    """Keep Ray's own lines out of the way of the progress table and the summary.

    * Ray's output engine prints a configuration box and "To visualize your results with TensorBoard,
      run: tensorboard --logdir /tmp/ray/session_*/.../driver_artifacts", the driver's staging folder,
      not RUN_DIR; its legacy engine (``RAY_AIR_NEW_OUTPUT=0``, read by ``tune.run`` at ``fit()``) prints
      nothing at ``verbose=0``; our summary names the TensorBoard folder instead (tested).
    * Snapshots forced by num_to_keep (frequent with short iterations, harmless), and PBT's
      num_to_keep ≤ 2 caution (exploits copy the donor's checkpoint)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    warnings.filterwarnings("ignore", message=r"Using `CheckpointConfig.num_to_keep <= 2` with PBT")


def launch(plan: TunePlan, callbacks: Sequence[tune.Callback] = (), log: Callable[[str], None] = print):
    """Connect, check the cluster, make RUN_DIR, fit. Returns (ResultGrid, plan as run)."""
    check_data(plan)
    quiet_tune()
    started = connect(plan)
    try:
        plan = check_cluster(plan, alive_nodes(), log)
        make_run_dir(plan.run_dir)
        samples = f" ({plan.num_samples} sample(s) per grid point)" if plan.trial_count != plan.num_samples else ""
        log(f"{'resuming' if plan.resume else 'starting'} {plan.name}: {plan.trial_count} trial(s){samples}, "
            f"scheduler {plan.scheduler}, {plan.cpus_per_trial:g} CPU + {plan.gpus_per_trial:g} GPU per trial; "
            f"results in {plan.run_dir}")
        results = build_tuner(plan, callbacks).fit()
    finally:
        if started:
            ray.shutdown()
    return results, plan


def run_tune(options: TuneOptions, callbacks: Sequence[tune.Callback] = (),
             log: Callable[[str], None] = print, data: LabelledImages | None = None):
    """``raydaug tune``. Raises ConfigError/UsageError before any trial on bad input, and
    TrialsFailedError when trials ended in ERROR (after printing where to --resume). ``data``: images from
    Python for ``dataset=memory`` (:func:`raydaug.tune.sweep`). A follow-up stage of hand-made baselines
    (BASELINES_STAGE) runs first: the first stage's pilots (base_aug=auto) then read the arms its trials
    trained (raydaug/pilot_arms.py) instead of training them again. Returns the first stage's ResultGrid (the
    hand-made stage's when the command stopped there)."""
    plan = replace(plan_from_options(options), data=data)
    hand_made = plan_followup(plan, resume=options.resume)
    if hand_made is not None and hand_made.experiment.name == BASELINES_STAGE:
        log(f"hand-made stage {hand_made.name} first: the pilots of {plan.name} read its trials")
        done, finished = _run_stage(hand_made, callbacks, log)
        if not finished:
            log(f"{plan.name} was not started; the --resume command above finishes this stage, then runs it")
            return done
    else:
        hand_made = None
    results, plan = launch(plan, callbacks, log)
    unfinished = summarize(results, plan, log)
    raise_on_errors(results, plan)
    if unfinished:
        # a stopped first stage (Ctrl-C) stops the command: its follow-up would compare with, or be built
        # from, trials that did not finish; --resume finishes them and then runs the follow-up
        if hand_made is None and plan.module is not None and plan.module.followup is not None \
                and not plan.options.no_followup:
            log("the follow-up stage was not started; the --resume command above finishes this stage, then runs it")
        return results
    second = None if hand_made is not None else plan_followup(plan, resume=options.resume)  # built from its results
    if second is not None:
        log(f"follow-up experiment {second.name}")
        _run_stage(second, callbacks, log)
    return results


def _run_stage(plan: TunePlan, callbacks: Sequence[tune.Callback], log: Callable[[str], None]):
    """Launch a stage, print its summary, raise on its errors: (its ResultGrid, whether it finished)."""
    results, plan = launch(plan, callbacks, log)
    unfinished = summarize(results, plan, log)
    raise_on_errors(results, plan)
    return results, not unfinished


def plan_followup(plan: TunePlan, resume: bool | None = None) -> TunePlan | None:
    """The plan of the tune_config's follow-up stage, into RUN_DIR_<its name>: the first stage's options
    (--smoke, --set, --grid, address, resources) and storage, resumed when the command is (``resume``,
    default the first stage's) and the follow-up had started. None when the tune_config has none or
    ``--no-followup`` was given."""
    followup = None if plan.options.no_followup else _followup(plan)
    if followup is None:
        return None
    name = f"{plan.name}_{followup.name}"
    resume = plan.resume if resume is None else resume
    options = replace(plan.options, name=name, storage=plan.storage,
                      resume=resume and tune.Tuner.can_restore(join(plan.storage, name)))
    return replace(plan_experiment(followup, options), stage_of=plan.name, data=plan.data)


def _followup(plan: TunePlan) -> Experiment | None:
    """A tune_config may define ``followup(run_dir) -> Experiment`` for a second stage built from the
    first one's checkpoints (Fig. 4: C on frozen G snapshots); the module loaded for the plan has it."""
    return plan.module.followup_experiment(plan.run_dir) if plan.module is not None else None


__all__ = ["TuneOptions", "TunePlan", "plan_from_options", "plan_experiment", "plan_followup", "build_tuner",
           "build_trainable", "build_run_config", "launch", "run_tune"]
