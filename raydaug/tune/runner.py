"""``raydaug tune``: from a tune_config to a running (or resumed) Ray Tune experiment.

The work is split so that every check runs before Ray starts a trial:

1. :func:`plan_from_args` loads the tune_config, applies ``--smoke`` / ``--set`` / CLI resources and
   validates everything that needs no cluster (config keys and search-space bounds through the Config
   validator, PBT mutation ranges, GPU share format, storage, address format and reachability, existing
   RUN_DIR) → :class:`TunePlan`.
2. :func:`check_data` looks for the dataset files of a local run; :func:`connect` starts or joins Ray;
   :func:`check_cluster` compares the trial's bundle with the nodes.
3. :func:`build_tuner` makes the Tuner (or ``Tuner.restore`` for ``--resume``); :func:`run_tune` fits it.
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import logging
import math
import os
import re
import socket
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pyarrow.fs as pafs
import ray
from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Function, Integer

from raydaug.config import FIELD_TYPES, Config, parse_overrides
from raydaug.errors import ConfigError, TrialsFailedError, UsageError
from raydaug.experiment import Experiment, load_experiment
from raydaug.tune.callbacks import ProgressTable, RegisterCheckpointOnce
from raydaug.tune.schedulers import (SCHEDULERS, PopulationSettings, build_scheduler, check_schedule,
                                     checkpoint_interval, population_settings)
from raydaug.tune.trainable import REPLAY_KEY, train_trial

DEFAULT_STORAGE = "runs"
MAX_CHECKED_COMBINATIONS = 512
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")
ADDRESS_PROBE_TIMEOUT_S = 3.0  # ray.init retries an address where nothing listens for minutes


@dataclass
class TunePlan:
    experiment: Experiment
    name: str
    storage: str                      # absolute local path or a URI
    run_dir: str                      # storage/name
    base: Config                      # base config after --smoke and --set (what every trial starts from)
    param_space: dict[str, Any]
    scheduler: str
    settings: PopulationSettings | None
    num_samples: int
    cpus_per_trial: float
    gpus_per_trial: float
    gpus_from_cli: bool
    max_failures: int
    checkpoints_to_keep: int | None
    metric: str
    mode: str
    address: str | None = None
    resume: bool = False
    smoke: bool = False
    config_path: str = ""
    notes: list[str] = field(default_factory=list)

    def resources(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}


# ---------------------------------------------------------------------- 1. plan (no Ray, no trials)
def plan_from_args(args: argparse.Namespace) -> TunePlan:
    experiment = load_experiment(args.config)
    return plan_experiment(experiment, args, config_path=args.config)


def _is_search_value(value: Any) -> bool:
    return isinstance(value, Domain) or (isinstance(value, Mapping) and "grid_search" in value)


def plan_experiment(experiment: Experiment, args: argparse.Namespace, config_path: str = "") -> TunePlan:
    smoke = bool(_arg(args, "smoke", False))
    base_raw = dict(experiment.base)
    search = dict(experiment.search_space)
    unknown = sorted(set(base_raw) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"experiment {experiment.name!r}: unknown config key(s) {unknown} in base")
    if smoke:
        for key, value in experiment.smoke.items():
            if _is_search_value(value) or key in search:
                search[key] = value
            else:
                base_raw[key] = value
    overrides = parse_overrides(list(_arg(args, "set", []) or []))
    for key, value in overrides.items():
        base_raw[key] = value
        search.pop(key, None)  # an explicit --set wins over the search space
    unknown = sorted(set(search) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"experiment {experiment.name!r}: search space over unknown config key(s) {unknown}; "
                          f"known keys: {', '.join(sorted(FIELD_TYPES))}")
    check_search_space(base_raw, search)
    absolute_data_dir(base_raw, search)
    # the base alone may be incomplete (e.g. a grid supplies train_per_class): the first point stands for it
    base = Config.from_dict({**base_raw, **_discrete_combinations(search)[0]})

    scheduler = experiment.scheduler
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"experiment {experiment.name!r}: scheduler={scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    metric, mode = experiment.metric, experiment.mode
    settings = None
    if scheduler in ("pbt", "pb2"):
        if "seed" in search:
            raise ConfigError(f"experiment {experiment.name!r}: a {scheduler} population must share one seed: the "
                              "seed decides the train/val/test split, and an exploit across splits would train "
                              "on another member's test images (run one population per seed: --set seed=N)")
        settings = population_settings(experiment.scheduler_options, base, metric, mode)
        metric, mode = settings.metric, settings.mode
        intervals = {checkpoint_interval(Config.from_dict({**base_raw, **combo}))
                     for combo in _discrete_combinations(search)}
        if len(intervals) > 1:
            raise ConfigError("a population needs one checkpoint interval: do not search over "
                              "checkpoint_every/eval_every with scheduler=pbt/pb2")
        if "preset" not in search:  # PBT would otherwise sample a missing key at random
            for key in settings.mutations:
                if key not in base_raw and key not in search:
                    base_raw[key] = getattr(base, key)
    elif experiment.scheduler_options:
        raise ConfigError(f"experiment {experiment.name!r}: scheduler_options only apply to pbt/pb2")

    num_samples = _arg(args, "num_samples", None)
    if num_samples is None:
        num_samples = experiment.smoke_num_samples if smoke and experiment.smoke_num_samples else experiment.num_samples
    if int(num_samples) < 1:
        raise UsageError(f"--num-samples must be ≥ 1, got {num_samples}")
    cpus = _arg(args, "cpus_per_trial", None)
    cpus = float(experiment.cpus_per_trial if cpus is None else cpus)
    if not (math.isfinite(cpus) and cpus > 0):
        raise UsageError(f"--cpus-per-trial must be > 0, got {cpus}")
    gpus_cli = _arg(args, "gpus_per_trial", None)
    gpus = float(experiment.gpus_per_trial if gpus_cli is None else gpus_cli)
    check_gpu_share(gpus)
    if gpus > 0 and base.device == "cpu":
        raise ConfigError(f"device=cpu contradicts a GPU share of {gpus} per trial")
    if gpus == 0 and base.device == "cuda":
        raise ConfigError("device=cuda needs --gpus-per-trial > 0: a trial only sees the GPUs Ray assigns it")
    max_failures = _arg(args, "max_failures", None)
    max_failures = experiment.max_failures if max_failures is None else int(max_failures)
    if max_failures < -1:
        raise UsageError(f"--max-failures must be ≥ -1 (-1 = retry forever), got {max_failures}")
    keep = experiment.checkpoints_to_keep if experiment.checkpoints_to_keep else None
    if keep is not None and keep < 1:
        raise ConfigError(f"checkpoints_to_keep={keep} must be ≥ 1 (or 0/None to keep all)")

    name = _arg(args, "name", None) or (f"{experiment.name}_smoke" if smoke else experiment.name)
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"--name {name!r} must be a plain folder name")
    storage = check_storage(_arg(args, "storage", None) or DEFAULT_STORAGE)
    run_dir = f"{storage.rstrip('/')}/{name}"
    address = _arg(args, "address", None)
    check_address(address)
    resume = bool(_arg(args, "resume", False))
    restorable = tune.Tuner.can_restore(run_dir)
    if resume and not restorable:
        raise UsageError(f"--resume: no Tune experiment to resume at {run_dir} (check --name and --storage)")
    if not resume and (restorable or _non_empty(run_dir)):
        raise UsageError(f"{run_dir} already holds a run: pass --resume to continue it or --name for a new one")

    param_space = {**base_raw, **search}
    return TunePlan(experiment=experiment, name=name, storage=storage, run_dir=run_dir, base=base,
                    param_space=param_space, scheduler=scheduler, settings=settings, num_samples=int(num_samples),
                    cpus_per_trial=cpus, gpus_per_trial=gpus, gpus_from_cli=gpus_cli is not None,
                    max_failures=max_failures, checkpoints_to_keep=keep, metric=metric, mode=mode,
                    address=address, resume=resume, smoke=smoke, config_path=config_path)


def _arg(args: argparse.Namespace, name: str, default: Any) -> Any:
    value = getattr(args, name, default)
    return default if value is None else value


def check_gpu_share(gpus: float) -> None:
    if not math.isfinite(gpus) or gpus < 0:
        raise UsageError(f"--gpus-per-trial must be ≥ 0, got {gpus}")
    if gpus > 1 and not float(gpus).is_integer():
        raise UsageError(f"--gpus-per-trial {gpus}: a share above 1 GPU must be a whole number of GPUs")


def check_address(address: str | None) -> None:
    """A malformed ``--address``, or a HOST:PORT where nothing accepts a connection, is refused at once
    (``ray.init`` would keep retrying it for minutes). ``auto`` is left to ``ray.init``."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not _ADDRESS.match(address) or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} must be 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_PROBE_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise UsageError(f"--address {address}: no Ray cluster answers at {host}:{port} ({reason}); "
                          f"start the head with `ray start --head --port {port}` or fix the address") from None


def absolute_data_dir(base_raw: dict[str, Any], search: Mapping[str, Any]) -> None:
    """Ray Tune runs every trial in a working folder of its own: a relative ``data_dir`` is made
    absolute here, from the driver's working folder, when a trial reads dataset files."""
    if "data_dir" in search:
        return
    configs = [Config.from_dict({**base_raw, **combo}) for combo in _discrete_combinations(search)]
    if all(config.dataset == "digits" for config in configs):
        return
    path = Path(configs[0].data_dir).expanduser()
    if not path.is_absolute():
        base_raw["data_dir"] = str(path.resolve())


def check_data(plan: TunePlan) -> None:
    """On a local run every dataset a trial would read must be there before Ray starts (on a cluster the
    nodes' files are not visible from here: each trial checks its own)."""
    from raydaug.data import check_available

    if plan.address or plan.resume:
        return
    values = {key: value for key, value in plan.param_space.items() if key in FIELD_TYPES}
    seen = set()
    for combo in _discrete_combinations(values):
        config = Config.from_dict(combo)
        key = (config.dataset, config.data_dir, config.download)
        if key not in seen:
            seen.add(key)
            check_available(config)


def check_storage(storage: str) -> str:
    """A URI pyarrow can open, or a local folder that exists or can be created; returns it normalised."""
    if "://" in storage:
        try:
            pafs.FileSystem.from_uri(storage)
        except Exception as error:  # pyarrow raises several types for bad/unsupported URIs
            raise UsageError(f"--storage {storage!r}: pyarrow cannot open it ({error})") from None
        return storage.rstrip("/")
    path = Path(storage).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--storage {storage!r} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"--storage {storage!r}: {existing} is not a writable folder")
    return str(path)


def _non_empty(run_dir: str) -> bool:
    from raydaug.logging.parquet import resolve

    filesystem, path = resolve(run_dir)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type != pafs.FileType.Directory:
        return True
    return bool(filesystem.get_file_info(pafs.FileSelector(path)))


def _candidates(value: Any) -> list[Any] | None:
    """Values to check for one search-space entry; None when it cannot be enumerated (sample_from)."""
    if isinstance(value, Mapping) and "grid_search" in value:
        return list(value["grid_search"])
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Integer):
        return [value.lower, value.upper - 1]
    if isinstance(value, Float):
        return [value.lower, value.upper]
    if isinstance(value, (Function, Domain)):
        return None
    return [value]


def _discrete_combinations(search: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys, lists = [], []
    for key, value in search.items():
        values = _candidates(value)
        if values is not None:
            keys.append(key)
            lists.append(values)
    combos = []
    for combo in itertools.islice(itertools.product(*lists), MAX_CHECKED_COMBINATIONS):
        combos.append(dict(zip(keys, combo)))
    return combos or [{}]


def check_search_space(base_raw: Mapping[str, Any], search: Mapping[str, Any]) -> None:
    """Every grid point / categorical value / range end must pass the Config validator with the base."""
    for combo in _discrete_combinations(search):
        try:
            Config.from_dict({**base_raw, **combo})
        except ConfigError as error:
            if not combo:  # no search space: the base config itself (tune_config + --set) is wrong
                raise
            shown = {key: value for key, value in combo.items()}
            raise ConfigError(f"search space point {shown} is invalid: {error}") from None


# ---------------------------------------------------------------------- 2. cluster
def connect(plan: TunePlan) -> bool:
    """Join ``--address`` or start a local Ray; returns True when this call started Ray."""
    if ray.is_initialized():
        return False
    if plan.address:
        try:
            ray.init(address=plan.address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as error:  # ConnectionError, RuntimeError, ValueError depending on the failure
            raise UsageError(f"--address {plan.address}: cannot connect to a Ray cluster ({error})") from None
        return True
    # the workers' own log lines (a line per checkpoint and restore) would bury the progress table;
    # a trial's failure still reaches the driver with its traceback
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    return True


def alive_nodes() -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def check_cluster(plan: TunePlan, nodes: Sequence[Mapping[str, float]], log: Callable[[str], None] = print) -> TunePlan:
    """A trial's bundle must fit on one node. A --smoke run of a GPU experiment falls back to CPU
    when the cluster has no GPU (unless --gpus-per-trial was given)."""
    total_gpus = sum(float(node.get("GPU", 0)) for node in nodes)
    if plan.gpus_per_trial > 0 and total_gpus == 0 and plan.smoke and not plan.gpus_from_cli:
        log(f"note: the cluster has no GPU; this --smoke run uses CPU instead of {plan.gpus_per_trial} GPU/trial")
        plan = replace(plan, gpus_per_trial=0.0)
    if plan.gpus_per_trial > 0 and not any(float(node.get("GPU", 0)) >= plan.gpus_per_trial for node in nodes):
        raise UsageError(f"each trial asks for {plan.gpus_per_trial} GPU but the cluster has {total_gpus:g} "
                          f"GPU(s){' in all' if len(nodes) > 1 else ''}; use --gpus-per-trial 0 to run on CPU")
    if not any(float(node.get("CPU", 0)) >= plan.cpus_per_trial for node in nodes):
        best = max((float(node.get("CPU", 0)) for node in nodes), default=0.0)
        raise UsageError(f"each trial asks for {plan.cpus_per_trial:g} CPUs but the largest node has {best:g}")
    return plan


# ---------------------------------------------------------------------- 3. tuner
def build_trainable(plan: TunePlan):
    """The function trainable with run_dir bound and the trial's resource bundle attached."""
    return tune.with_resources(tune.with_parameters(train_trial, run_dir=plan.run_dir), plan.resources())


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
    """Silence two Tune warnings that do not apply here: snapshots forced by num_to_keep (frequent with
    short iterations, harmless), and PBT's num_to_keep ≤ 2 caution (exploits copy the donor's checkpoint)."""
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    warnings.filterwarnings("ignore", message=r"Using `CheckpointConfig.num_to_keep <= 2` with PBT")


def launch(plan: TunePlan, callbacks: Sequence[tune.Callback] = (), log: Callable[[str], None] = print):
    """Connect, check the cluster, make RUN_DIR, fit. Returns (ResultGrid, plan as run)."""
    check_data(plan)
    quiet_tune()
    started = connect(plan)
    try:
        plan = check_cluster(plan, alive_nodes(), log)
        _make_dirs(plan.run_dir)
        log(f"{'resuming' if plan.resume else 'starting'} {plan.name}: {plan.num_samples} sample(s), "
            f"scheduler {plan.scheduler}, {plan.cpus_per_trial:g} CPU + {plan.gpus_per_trial:g} GPU per trial; "
            f"results in {plan.run_dir}")
        results = build_tuner(plan, callbacks).fit()
    finally:
        if started:
            ray.shutdown()
    return results, plan


def best_row(run_dir: str, metric: str = "acc/val", mode: str = "max") -> dict[str, Any] | None:
    """The best metrics row of the run, from its Parquet (the last written row of each
    (trial, iteration) counts, as in analysis.load)."""
    import pyarrow.dataset as ds

    from raydaug.logging.parquet import resolve

    filesystem, root = resolve(run_dir)
    folder = f"{root}/parquet/metrics"
    if filesystem.get_file_info(folder).type != pafs.FileType.Directory:
        return None
    frame = ds.dataset(folder, filesystem=filesystem, format="parquet", partitioning="hive",
                       exclude_invalid_files=True).to_table().to_pandas()
    frame = frame.dropna(subset=[metric]) if metric in frame else frame.iloc[0:0]
    if frame.empty:
        return None
    frame = frame.sort_values("timestamp").drop_duplicates(["trial_id", "training_iteration"], keep="last")
    index = frame[metric].idxmax() if mode == "max" else frame[metric].idxmin()
    return frame.loc[index].to_dict()


def summarize(results, plan: TunePlan, log: Callable[[str], None] = print) -> None:
    best = best_row(plan.run_dir, plan.metric, plan.mode)
    if best is not None:
        log(f"best {plan.metric} {best[plan.metric]:.4f} (trial {best['trial_id']}, iteration "
            f"{int(best['training_iteration'])}) → acc/test {best['acc/test']:.4f}")
    unfinished = [result.metrics.get("trial_id", "?") for result in results
                  if not result.error and _unfinished(result)]
    if unfinished:
        log(f"interrupted: {len(unfinished)} trial(s) did not reach their last epoch; continue with: "
            f"raydaug tune {plan.config_path or plan.name} --name {plan.name} --storage {plan.storage} --resume")
    log(f"results in {plan.run_dir} (Parquet under parquet/); report: raydaug analyze {plan.run_dir}")


def _unfinished(result) -> bool:
    """Every trial trains to its config's last epoch; fewer epochs mean the run was stopped."""
    epoch = result.metrics.get("epoch")
    epochs = (result.config or {}).get("epochs")
    return epoch is None or (epochs is not None and int(epoch) < int(epochs))


def run_tune(args: argparse.Namespace, callbacks: Sequence[tune.Callback] = (),
             log: Callable[[str], None] = print):
    """``raydaug tune``. Raises ConfigError/UsageError before any trial on bad input, and
    TrialsFailedError when trials ended in ERROR (after printing where to --resume)."""
    plan = plan_from_args(args)
    results, plan = launch(plan, callbacks, log)
    summarize(results, plan, log)
    _raise_on_errors(results, plan)
    followup = _followup(plan)
    if followup is not None:
        second = plan_experiment(followup, argparse.Namespace(
            smoke=plan.smoke, set=list(_arg(args, "set", []) or []), storage=plan.storage,
            name=f"{plan.name}_{followup.name}", address=plan.address,
            resume=plan.resume and tune.Tuner.can_restore(f"{plan.run_dir}_{followup.name}"),
            cpus_per_trial=_arg(args, "cpus_per_trial", None), gpus_per_trial=_arg(args, "gpus_per_trial", None),
            max_failures=_arg(args, "max_failures", None)), config_path=plan.config_path)
        log(f"follow-up experiment {second.name}")
        results, second = launch(second, callbacks, log)
        summarize(results, second, log)
        _raise_on_errors(results, second)
    return results


def _raise_on_errors(results, plan: TunePlan) -> None:
    failed = failed_trials(results)
    if failed:
        causes = "; ".join(f"trial {trial_id}: {cause}" for trial_id, cause in failed)
        raise TrialsFailedError(f"{len(failed)} trial(s) failed after {plan.max_failures} retries ({causes}); "
                                f"fix the cause and continue with: raydaug tune {plan.config_path or plan.name} "
                                f"--name {plan.name} --storage {plan.storage} --resume")


_TRIAL_ID_IN_PATH = re.compile(r"_([0-9a-f]{5}_\d{5})(_|$)")


def failed_trials(results) -> list[tuple[str, str]]:
    """(trial id, ``Type: first line`` of its error) of every trial that ended in ERROR."""
    failed = []
    for result in results:
        if result.error is None:
            continue
        trial_id = (result.metrics or {}).get("trial_id")
        if not trial_id:
            match = _TRIAL_ID_IN_PATH.search(Path(str(result.path or "")).name)
            trial_id = match.group(1) if match else "?"
        failed.append((str(trial_id), error_line(result.error)))
    return failed


def error_line(error: BaseException) -> str:
    """A trial's error on one line: Ray's task error is unwrapped to the trainable's own exception."""
    cause = getattr(error, "cause", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


def _followup(plan: TunePlan) -> Experiment | None:
    """A tune_config may define ``followup(run_dir) -> Experiment`` for a second stage built from the
    first one's checkpoints (Fig. 4: C on frozen G snapshots)."""
    if not plan.config_path:
        return None
    path = Path(plan.config_path)
    if not path.suffix:
        path = Path("tune_configs") / f"{plan.config_path}.py"
        if not path.exists():
            path = Path(__file__).resolve().parents[2] / "tune_configs" / f"{plan.config_path}.py"
    spec = importlib.util.spec_from_file_location(f"raydaug_followup_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    factory = getattr(module, "followup", None)
    if not callable(factory):
        return None
    experiment = factory(plan.run_dir)
    if experiment is not None and not isinstance(experiment, Experiment):
        raise ConfigError(f"{path}: followup() must return an Experiment or None")
    return experiment


def _make_dirs(run_dir: str) -> None:
    from raydaug.logging.parquet import resolve

    filesystem, path = resolve(run_dir)
    filesystem.create_dir(path, recursive=True)


# ---------------------------------------------------------------------- replay
def run_replay(schedule: Mapping[str, Any], storage: str, name: str, cpus_per_trial: float | None = None,
               gpus_per_trial: float = 0.0, address: str | None = None,
               callbacks: Sequence[tune.Callback] = (), log: Callable[[str], None] = print) -> str:
    """Retrain one trial on an exported PBT schedule (format in docs/tune.md); writes the usual Parquet
    layout into ``storage/name`` (plus ``schedule.json``). Returns RUN_DIR.

    Equivalent to Ray's PopulationBasedTrainingReplay (a change at iteration k governs the iterations
    after k) but the trial applies each change itself, in place, after its report of iteration k: Ray's
    replay pauses and restores the trial at every change, and in Ray 2.60 the save it schedules before
    pausing leaves a stale STOP decision behind that ends the trial one iteration after the last change."""
    initial, changes = check_schedule(schedule)
    # the recorded config names the device the source trial ran on; the replay follows its own resources
    values = {**initial.to_dict(), "preset": "", "device": "auto"}
    experiment = Experiment(name=name, base=values, scheduler="fifo",
                            cpus_per_trial=cpus_per_trial or 1.0, gpus_per_trial=gpus_per_trial,
                            max_failures=1, checkpoints_to_keep=2)
    plan = plan_experiment(experiment, argparse.Namespace(storage=storage, name=name, address=address))
    quiet_tune()
    started = connect(plan)
    try:
        nodes = alive_nodes()
        if cpus_per_trial is None:  # the one trial gets the whole largest node
            plan = replace(plan, cpus_per_trial=max(1.0, max(float(n.get("CPU", 1)) for n in nodes)))
        plan = check_cluster(plan, nodes, log)
        _make_dirs(plan.run_dir)
        _write_text(f"{plan.run_dir}/schedule.json", _json(schedule))
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
    _raise_on_errors(results, plan)
    return plan.run_dir


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def _write_text(uri_or_path: str, text: str) -> None:
    from raydaug.logging.parquet import resolve

    filesystem, path = resolve(uri_or_path)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


__all__ = ["TunePlan", "plan_from_args", "plan_experiment", "check_cluster", "check_search_space",
           "build_tuner", "build_trainable", "launch", "run_tune", "run_replay", "TrialsFailedError",
           "check_address", "check_data", "failed_trials"]
