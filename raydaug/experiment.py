"""What a ``tune_configs/*.py`` module describes: plain data, no Ray import here.

A tune_config defines ``experiment() -> Experiment``. Search-space values may be Ray Tune domains
(``tune.loguniform``...), built by the tune_config itself; only ``raydaug.tune`` interprets them.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError


@dataclass(frozen=True)
class Experiment:
    name: str
    base: dict[str, Any]                                    # Config keys shared by every trial
    search_space: dict[str, Any] = field(default_factory=dict)  # Config key → value or Tune domain
    scheduler: str = "fifo"                                 # fifo | pbt | pb2
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    # PBT/PB2: mutations {key: (low, high)} log-uniform, perturbation_interval (iterations),
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

    def base_config(self, overrides: dict[str, Any] | None = None, smoke: bool = False) -> Config:
        values = dict(self.base)
        if smoke:
            values.update(self.smoke)
        values.update(overrides or {})
        return Config.from_dict(values)


def load_experiment(path_or_name: str) -> Experiment:
    """Import a tune_config by path (``tune_configs/x.py``) or bare name (``x``) and call experiment()."""
    path = Path(path_or_name)
    if not path.suffix:
        path = Path("tune_configs") / f"{path_or_name}.py"
        if not path.exists():
            path = Path(__file__).resolve().parent.parent / "tune_configs" / f"{path_or_name}.py"
    if not path.is_file():
        raise ConfigError(f"tune_config {path_or_name!r} not found (looked for {path})")
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
    return experiment
