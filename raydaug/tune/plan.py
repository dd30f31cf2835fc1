"""Phase 1 of ``raydaug tune``: from a tune_config and the command line to a validated :class:`TunePlan`.

Everything that needs no cluster is checked here, before Ray starts: config keys and search-space
points through the Config validator, PBT/PB2 settings, resources, storage, the address (format and
reachability), an existing RUN_DIR, and (on a local run) the dataset files.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Function, Integer

from raydaug.allowed import EMBEDDED_DATASETS
from raydaug.config import FIELD_TYPES, MUTABLE_HPARAMS, Config
from raydaug.errors import ConfigError, UsageError
from raydaug.experiment import BASELINES_STAGE, Experiment, TuneConfigModule, load_tune_config
from raydaug.images import LabelledImages
from raydaug.logging.parquet import join
from raydaug.overrides import parse_grid, parse_overrides
from raydaug.pilot_arms import NOT_READ_BY_HAND_MADE
from raydaug.tune.address import check_address
from raydaug.tune.options import TuneOptions
from raydaug.tune.schedulers import SCHEDULERS, PopulationSettings, checkpoint_interval, population_settings
from raydaug.tune.storage import check_run_dir, check_storage

DEFAULT_STORAGE = "runs"
MAX_CHECKED_COMBINATIONS = 512
# keys a PBT/PB2 population must not search over: they decide the split (an exploit across splits trains
# on another member's test images) or the players' shapes (the donor's checkpoint would not load)
POPULATION_SHARED = ("seed", "dataset", "data_dir", "train_per_class", "val_per_class", "image_size", "preset",
                     "aug", "classifier", "disc", "ngf", "noise_dim", "use_stn", "use_enc", "use_dec", "use_dc",
                     "use_dd", "use_gadv")


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
    max_failures: int
    checkpoints_to_keep: int | None
    metric: str
    mode: str
    options: TuneOptions                      # the command line as given (the follow-up and a resume repeat it)
    module: TuneConfigModule | None = None   # the loaded tune_config (its follow-up), when there is one
    stage_of: str | None = None               # a follow-up stage: the name of the run whose --resume continues it
    data: LabelledImages | None = None        # images from Python (dataset=memory), carried by Ray's object store
    # the searched keys a hand-made training reads (lr_c), at their value without the search (base, preset or
    # default): the pilots of every trial on a split train the same arms as the hand-made stage and read them
    pilot_values: dict[str, Any] = field(default_factory=dict)

    @property
    def pilot_store(self) -> str:
        """The run folder whose ``parquet/pilot_arms`` the pilots read and add to (raydaug/pilot_arms.py):
        --pilot-store, else the first stage's RUN_DIR, one store for every stage of the command."""
        if self.options.pilot_store:
            return self.options.pilot_store
        return join(self.storage, self.stage_of) if self.stage_of else self.run_dir

    @property
    def address(self) -> str | None:
        return self.options.address

    @property
    def resume(self) -> bool:
        return self.options.resume

    @property
    def smoke(self) -> bool:
        return self.options.smoke

    @property
    def config_path(self) -> str:
        return self.options.config

    def resources(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}

    @property
    def trial_count(self) -> int:
        """Trials Tune creates: ``num_samples`` per point of the grid (the product of every grid_search's length)."""
        points = math.prod(len(value["grid_search"]) for value in self.param_space.values()
                           if isinstance(value, Mapping) and "grid_search" in value)
        return self.num_samples * points


def plan_from_options(options: TuneOptions) -> TunePlan:
    """Load ``options.config`` (a tune_config path or packaged name) and plan its first stage."""
    module = load_tune_config(options.config)
    if options.no_followup and module.followup is None:
        raise UsageError(f"--no-followup: {options.config} has no follow-up stage")
    return plan_experiment(module.experiment, options, module=module)


def _is_search_value(value: Any) -> bool:
    return isinstance(value, Domain) or (isinstance(value, Mapping) and "grid_search" in value)


def plan_experiment(experiment: Experiment, options: TuneOptions,
                    module: TuneConfigModule | None = None) -> TunePlan:
    smoke = options.smoke
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
    overrides = parse_overrides(options.sets)
    for key, value in overrides.items():
        base_raw[key] = value
        search.pop(key, None)  # an explicit --set wins over the search space
    grid = parse_grid(options.grids)
    both = sorted(set(grid) & set(overrides))
    if both:
        raise UsageError(f"--set and --grid both give {', '.join(both)}: use one of them per key")
    for key, values in grid.items():
        base_raw.pop(key, None)
        search[key] = {"grid_search": values}  # --grid replaces the key's search space (or its base value)
    unknown = sorted(set(search) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"experiment {experiment.name!r}: search space over unknown config key(s) {unknown}; "
                          f"known keys: {', '.join(sorted(FIELD_TYPES))}")
    check_search_space(base_raw, search)
    absolute_data_dir(base_raw, search)
    # the base alone may be incomplete (e.g. a grid supplies train_per_class): the first point stands for it
    first = discrete_combinations(search, base_raw)[0]
    base = Config.from_dict({**base_raw, **first})
    sampled = [key for key in MUTABLE_HPARAMS if key in search and key not in NOT_READ_BY_HAND_MADE]
    unsampled = Config.from_dict({**base_raw, **{key: value for key, value in first.items() if key not in sampled}})

    scheduler = experiment.scheduler
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"experiment {experiment.name!r}: scheduler={scheduler!r}; "
                          f"choose one of {', '.join(SCHEDULERS)}")
    metric, mode = experiment.metric, experiment.mode
    settings = None
    if scheduler in ("pbt", "pb2"):
        split_keys = sorted(set(search) & set(POPULATION_SHARED))
        if split_keys:
            raise ConfigError(f"experiment {experiment.name!r}: a {scheduler} population must share "
                              f"{', '.join(split_keys)}: they decide the train/val/test split or the nets, and an "
                              "exploit across splits would train on another member's test images (and across nets "
                              "cannot load the donor's checkpoint); run one population per value, e.g. --set seed=N")
        settings = population_settings(experiment.scheduler_options, base, metric, mode)
        metric, mode = settings.metric, settings.mode
        intervals = {checkpoint_interval(Config.from_dict({**base_raw, **combo}))
                     for combo in discrete_combinations(search, base_raw)}
        if len(intervals) > 1:
            raise ConfigError("a population needs one checkpoint interval: do not search over "
                              "checkpoint_every/eval_every with scheduler=pbt/pb2")
        if "preset" not in search:  # PBT would otherwise sample a missing key at random
            for key in settings.mutations:
                if key not in base_raw and key not in search:
                    base_raw[key] = getattr(base, key)
    elif experiment.scheduler_options:
        raise ConfigError(f"experiment {experiment.name!r}: scheduler_options only apply to pbt/pb2")

    num_samples = options.num_samples
    if num_samples is None:
        num_samples = experiment.smoke_num_samples if smoke and experiment.smoke_num_samples else experiment.num_samples
    if int(num_samples) < 1:
        raise UsageError(f"--num-samples must be ≥ 1, got {num_samples}")
    cpus = float(experiment.cpus_per_trial if options.cpus_per_trial is None else options.cpus_per_trial)
    if not (math.isfinite(cpus) and cpus > 0):
        raise UsageError(f"--cpus-per-trial must be > 0, got {cpus}")
    gpus = float(experiment.gpus_per_trial if options.gpus_per_trial is None else options.gpus_per_trial)
    check_gpu_share(gpus)
    if gpus > 0 and base.device == "cpu":
        raise ConfigError(f"device=cpu contradicts a GPU share of {gpus} per trial")
    if gpus == 0 and base.device == "cuda":
        raise ConfigError("device=cuda needs --gpus-per-trial > 0: a trial only sees the GPUs Ray assigns it")
    max_failures = experiment.max_failures if options.max_failures is None else int(options.max_failures)
    if max_failures < -1:
        raise UsageError(f"--max-failures must be ≥ -1 (-1 = retry forever), got {max_failures}")
    keep = experiment.checkpoints_to_keep if experiment.checkpoints_to_keep else None
    if keep is not None and keep < 1:
        raise ConfigError(f"checkpoints_to_keep={keep} must be ≥ 1 (or 0/None to keep all)")

    name = options.name or (f"{experiment.name}_smoke" if smoke else experiment.name)
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"--name {name!r} must be a plain folder name")
    storage = check_storage(options.storage or DEFAULT_STORAGE)
    if options.pilot_store:  # made absolute: a trial runs in a working folder of its own
        try:
            options = replace(options, pilot_store=check_storage(options.pilot_store))
        except UsageError as error:
            raise UsageError(str(error).replace("--storage", "--pilot-store", 1)) from None
    run_dir = join(storage, name)
    check_address(options.address)
    if options.resume and not tune.Tuner.can_restore(run_dir) \
            and tune.Tuner.can_restore(join(storage, f"{name}_{BASELINES_STAGE}")):
        # the command's hand-made stage runs first (raydaug/tune/runner.py) and stopped before this one started:
        # RUN_DIR holds only the records of the arms it trained (parquet/pilot_arms)
        options = replace(options, resume=False)
    else:
        check_run_dir(run_dir, options.resume)

    param_space = {**base_raw, **search}
    return TunePlan(experiment=experiment, name=name, storage=storage, run_dir=run_dir, base=base,
                    pilot_values={key: getattr(unsampled, key) for key in sampled},
                    param_space=param_space, scheduler=scheduler, settings=settings, num_samples=int(num_samples),
                    cpus_per_trial=cpus, gpus_per_trial=gpus, max_failures=max_failures,
                    checkpoints_to_keep=keep, metric=metric, mode=mode, options=options, module=module)


def check_gpu_share(gpus: float) -> None:
    if not math.isfinite(gpus) or gpus < 0:
        raise UsageError(f"--gpus-per-trial must be ≥ 0, got {gpus}")
    if gpus > 1 and not float(gpus).is_integer():
        raise UsageError(f"--gpus-per-trial {gpus}: a share above 1 GPU must be a whole number of GPUs")


def absolute_data_dir(base_raw: dict[str, Any], search: Mapping[str, Any]) -> None:
    """Ray Tune runs every trial in a working folder of its own: a relative ``data_dir`` is made
    absolute here, from the driver's working folder, when a trial reads dataset files."""
    if "data_dir" in search:
        return
    configs = [Config.from_dict({**base_raw, **combo}) for combo in discrete_combinations(search, base_raw)]
    if all(config.dataset in EMBEDDED_DATASETS for config in configs):
        return
    path = Path(configs[0].data_dir).expanduser()
    if not path.is_absolute():
        base_raw["data_dir"] = str(path.resolve())


def check_data(plan: TunePlan) -> None:
    """On a local run every dataset a trial would read must be there before Ray starts (on a cluster the
    nodes' files are not visible from here: each trial checks its own)."""
    from raydaug.data import check_available

    if plan.base.dataset == "memory" and plan.data is None:
        raise UsageError("dataset=memory: the images come from Python: raydaug.tune.sweep(..., images=..., "
                         "labels=...) hands them to the trials")
    if plan.address or plan.resume:
        return
    values = {key: value for key, value in plan.param_space.items() if key in FIELD_TYPES}
    seen = set()
    for combo in discrete_combinations(values):
        config = Config.from_dict(combo)
        key = (config.dataset, config.data_dir, config.download)
        if key not in seen:
            seen.add(key)
            check_available(config)


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


def discrete_combinations(search: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The points to validate: every grid/categorical value and both ends of every range (at most
    MAX_CHECKED_COMBINATIONS of their product), each with its ``tune.sample_from`` values drawn from the
    point's config (``base`` and the point) as Ray would draw them; ``[{}]`` for an empty search space."""
    keys, lists, sampled = [], [], {}
    for key, value in search.items():
        values = _candidates(value)
        if values is not None:
            keys.append(key)
            lists.append(values)
        elif isinstance(value, Function):
            sampled[key] = value
    combos = []
    for combo in itertools.islice(itertools.product(*lists), MAX_CHECKED_COMBINATIONS):
        point = dict(zip(keys, combo))
        for key, function in sampled.items():
            context = {**(base or {}), **point}
            try:
                point[key] = function.sample(config=context)
            except Exception as error:  # the tune_config's own function: any error is the user's to see
                raise ConfigError(f"search space: tune.sample_from for {key!r} failed on {point}: "
                                  f"{type(error).__name__}: {error}") from None
        combos.append(point)
    return combos or [{}]


def check_search_space(base_raw: Mapping[str, Any], search: Mapping[str, Any]) -> None:
    """Every grid point / categorical value / range end must pass the Config validator with the base."""
    for combo in discrete_combinations(search, base_raw):
        try:
            Config.from_dict({**base_raw, **combo})
        except ConfigError as error:
            if not combo:  # no search space: the base config itself (tune_config + --set) is wrong
                raise
            shown = {key: value for key, value in combo.items()}
            raise ConfigError(f"search space point {shown} is invalid: {error}") from None
