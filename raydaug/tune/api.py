"""``raydaug.tune.sweep(...)``: a Tune experiment from Python, on images handed over as arrays, tensors or a
Dataset, or on any dataset a config names; returns one row per trial as a pandas DataFrame.

    import raydaug.tune
    trials = raydaug.tune.sweep("mnist5k_pbt", images=x, labels=y, class_names=names, storage="runs", name="mine")

The images go to the trials through Ray's object store; nothing is written outside the run folder.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from raydaug.api import as_labelled_images
from raydaug.logging.reader import read_metrics
from raydaug.tune.options import TuneOptions
from raydaug.tune.runner import run_tune


def sweep(config: str = "smoke", *, images: Any = None, labels: Any = None, test_images: Any = None,
          test_labels: Any = None, class_names: Any = None, dataset: Any = None, test_dataset: Any = None,
          sets: Mapping[str, Any] | None = None, grids: Mapping[str, list] | None = None, storage: str = "runs",
          name: str | None = None, smoke: bool = False, address: str | None = None, num_samples: int | None = None,
          cpus_per_trial: float | None = None, gpus_per_trial: float | None = None, followup: bool = True,
          log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run the tune_config ``config`` (a packaged name such as ``"mnist5k_pbt"`` or a path) as ``raydaug tune``
    does, with config keys from ``sets`` (``--set``) and ``grids`` (``--grid``), on the images given (they set
    ``dataset=memory``) or on the dataset the keys name. Returns the run's trials (its first stage; a
    tune_config's baselines stage goes to ``storage/name_baselines``), one row each: ``trial_id``, the best
    ``acc/val``, the ``acc/test`` at it and its iteration. The run folder is ``storage/name``; ``raydaug
    analyze`` reads it as any other."""
    data = as_labelled_images(images, labels, test_images=test_images, test_labels=test_labels,
                              class_names=class_names, dataset=dataset, test_dataset=test_dataset)
    pairs = {**(sets or {}), **({"dataset": "memory"} if data is not None else {})}
    options = TuneOptions(config=config, sets=tuple(f"{key}={value}" for key, value in pairs.items()),
                          grids=tuple(f"{key}={','.join(map(str, values))}" for key, values in (grids or {}).items()),
                          smoke=smoke, no_followup=not followup, name=name, storage=storage, address=address,
                          num_samples=num_samples, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial)
    results = run_tune(options, log=log, data=data)
    run_dir = str(results.experiment_path)
    return best_per_trial(run_dir)


def best_per_trial(run_dir: str, metric: str = "acc/val") -> pd.DataFrame:
    """One row per trial of ``run_dir``: its best ``metric`` row (the first of ties)."""
    frame, _ = read_metrics(run_dir)
    if frame.empty:
        return frame
    best = frame.loc[frame.dropna(subset=[metric]).groupby("trial_id")[metric].idxmax()]
    columns = ["trial_id", "training_iteration", metric, "acc/test"]
    return best[[c for c in columns if c in best]].reset_index(drop=True)
