"""What a ``tune_configs/*.py`` module describes: plain data, no Ray import here.

A tune_config defines ``experiment() -> Experiment`` and, optionally, ``followup(run_dir) -> Experiment |
None`` (a second stage built from the first one's results). Search-space values may be Ray Tune domains
(``tune.loguniform``...), built by the tune_config itself; only ``raydaug.tune`` interprets them.

:func:`load_tune_config` takes a path to a file, or the bare name of a module of the installed
``tune_configs`` package (found through ``importlib``, so ``raydaug tune digits_pbt`` works from any folder).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError

PACKAGE = "raydaug.tune_configs"
# the tiny digits settings of every ``--smoke`` run and of the tests (16 px, small nets, three images per class,
# 4 epochs: seconds per trial on a shared CPU core); each user changes only the budget keys it needs
TINY_DIGITS: Mapping[str, Any] = MappingProxyType({
    "dataset": "digits", "image_size": 16, "classifier": "small", "disc": "small", "ngf": 4, "noise_dim": 8,
    "train_per_class": 3, "val_per_class": 3, "batch_size": 10, "epochs": 4, "eval_every": 1,
    "checkpoint_every": 2,
})
# PBT/PB2's mutation ranges {key: (low, high)}, sampled log-uniformly, of the main job (mnist5k_pbt) and of every
# population that gives none: around today's defaults (α 0.1, β 0.05, γ 0.005, teacher 1, lr_C 1e-3, lr_G/DC/DD
# 5e-4); the paper-preset populations (tune_configs/_common.py) span ×/÷10 around the preset's own values instead
PBT_MUTATIONS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "alpha": (0.02, 0.5),
    "beta": (0.01, 0.25),
    "gamma": (1e-3, 0.05),
    "teacher_weight": (0.3, 3.0),
    "lr_c": (3e-4, 3e-3),
    "lr_g": (1e-4, 2.5e-3),
    "lr_dc": (1e-4, 2.5e-3),
    "lr_dd": (1e-4, 2.5e-3),
})
# the name of a follow-up stage of hand-made baselines: ``raydaug tune`` runs it first (it never reads the first
# stage; the first stage's pilots read its arms: raydaug/pilot_arms.py), writes it to RUN_DIR_baselines, and
# ``raydaug analyze RUN_DIR`` merges that run's baselines into the comparison
BASELINES_STAGE = "baselines"


@dataclass(frozen=True)
class Experiment:
    name: str
    base: dict[str, Any]                                    # Config keys shared by every trial
    search_space: dict[str, Any] = field(default_factory=dict)  # Config key → value or Tune domain
    scheduler: str = "fifo"                                 # fifo | pbt | pb2
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    # PBT/PB2: mutations {key: (low, high)} log-uniform (default PBT_MUTATIONS), perturbation_interval (iterations),
    # quantile_fraction, resample_probability, metric, mode
    num_samples: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    smoke: dict[str, Any] = field(default_factory=dict)     # overrides applied by --smoke
    smoke_num_samples: int | None = None
    metric: str = "acc/val"
    mode: str = "max"
    max_failures: int = 2
    checkpoints_to_keep: int = 2


@dataclass(frozen=True)
class TuneConfigModule:
    """A loaded tune_config module: its experiment and its optional follow-up factory."""

    path: Path
    experiment: Experiment
    followup: Callable[[str], Experiment | None] | None = None

    def followup_experiment(self, run_dir: str) -> Experiment | None:
        """The follow-up stage for the first stage's ``run_dir``, or None."""
        if self.followup is None:
            return None
        experiment = self.followup(run_dir)
        if experiment is not None and not isinstance(experiment, Experiment):
            raise ConfigError(f"{self.path}: followup() must return an Experiment or None, "
                              f"got {type(experiment).__name__}")
        return experiment


def packaged_names() -> list[str]:
    """The experiments of the installed ``tune_configs`` package (modules not starting with ``_``)."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    return sorted({path.stem for folder in folders for path in Path(folder).glob("*.py")
                   if not path.stem.startswith("_")})


def tune_config_file(path_or_name: str) -> Path:
    """The file of a tune_config: ``path_or_name`` itself when it names a file (``x.py``, ``dir/x.py``),
    else the module of that name in the installed ``tune_configs`` package."""
    path = Path(path_or_name).expanduser()
    if path.suffix or "/" in path_or_name:
        if not path.is_file():
            raise ConfigError(f"tune_config {path_or_name!r} not found (no file {path})")
        return path
    spec = importlib.util.find_spec(f"{PACKAGE}.{path_or_name}") if path_or_name.isidentifier() else None
    if spec is None or spec.origin is None or path_or_name.startswith("_"):
        raise ConfigError(f"tune_config {path_or_name!r} not found: not a file and not one of the "
                          f"{PACKAGE} package's experiments ({', '.join(packaged_names())})")
    return Path(spec.origin)


def load_tune_config(path_or_name: str) -> TuneConfigModule:
    """Import a tune_config (by path or bare name) once: its ``experiment()`` and ``followup``."""
    path = tune_config_file(path_or_name)
    spec = importlib.util.spec_from_file_location(f"raydaug_tune_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a broken user file: report it on one line
        raise ConfigError(f"tune_config {path} failed to import: {type(error).__name__}: {error}") from error
    factory = getattr(module, "experiment", None)
    if not callable(factory):
        raise ConfigError(f"tune_config {path} does not define experiment()")
    experiment = factory()
    if not isinstance(experiment, Experiment):
        raise ConfigError(f"tune_config {path}: experiment() must return raydaug.experiment.Experiment, "
                          f"got {type(experiment).__name__}")
    followup = getattr(module, "followup", None)
    if followup is not None and not callable(followup):
        raise ConfigError(f"tune_config {path}: followup must be a function (run_dir) -> Experiment | None")
    return TuneConfigModule(path=path, experiment=experiment, followup=followup)


def load_experiment(path_or_name: str) -> Experiment:
    """The Experiment of a tune_config (see :func:`load_tune_config`)."""
    return load_tune_config(path_or_name).experiment
