"""Ray Tune integration: the only package of raydaug that imports Ray.

- :mod:`raydaug.tune.options`    — the typed, frozen options of one stage (what the command line gave)
- :mod:`raydaug.tune.plan`       — ``raydaug tune`` phase 1: tune_config + options → a validated TunePlan (no Ray yet)
- :mod:`raydaug.tune.storage`    — ``--storage`` and RUN_DIR checks, creating RUN_DIR
- :mod:`raydaug.tune.address`    — the ``--address`` probe (form, something listening), before Ray is called
- :mod:`raydaug.tune.cluster`    — starting/joining Ray, the trial bundle vs the nodes
- :mod:`raydaug.tune.runner`     — the Tuner (new or ``--resume``), fit, follow-up experiments: ``run_tune``
- :mod:`raydaug.tune.summary`    — the best row, unfinished and failed trials of a finished run
- :mod:`raydaug.tune.replay`     — ``raydaug schedule replay``: ``run_replay``
- :mod:`raydaug.tune.trainable`  — the function trainable driving :class:`raydaug.train.Trainer`
- :mod:`raydaug.tune.schedulers` — PBT / PB2 that record ``pbt_events`` and own exploited checkpoints (the
  schedule check is :mod:`raydaug.schedule`)
- :mod:`raydaug.tune.callbacks`  — the progress table, the checkpoint-registration fix
- :mod:`raydaug.tune.api`        — ``raydaug.tune.sweep(...)``: a Tune experiment from Python
"""
from __future__ import annotations

from typing import Any

__all__ = ["sweep"]


def __getattr__(name: str) -> Any:
    # imported on first use, so that importing a submodule (the trainable on a worker) stays light
    if name == "sweep":
        from raydaug.tune.api import sweep

        return sweep
    raise AttributeError(f"module 'raydaug.tune' has no attribute {name!r}")
