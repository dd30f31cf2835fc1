"""Ray Tune integration: the only package of raydaug that imports Ray.

- :mod:`raydaug.tune.plan`       — ``raydaug tune`` phase 1: tune_config + CLI → a validated TunePlan (no Ray started)
- :mod:`raydaug.tune.storage`    — ``--storage`` and RUN_DIR checks, creating RUN_DIR
- :mod:`raydaug.tune.cluster`    — the ``--address`` probe, starting/joining Ray, the trial bundle vs the nodes
- :mod:`raydaug.tune.runner`     — the Tuner (new or ``--resume``), fit, follow-up experiments: ``run_tune``
- :mod:`raydaug.tune.summary`    — the best row, unfinished and failed trials of a finished run
- :mod:`raydaug.tune.replay`     — ``raydaug schedule replay``: ``run_replay``
- :mod:`raydaug.tune.trainable`  — the function trainable driving :class:`raydaug.train.Trainer`
- :mod:`raydaug.tune.schedulers` — PBT / PB2 that record ``pbt_events`` and own exploited checkpoints (the
  schedule check is :mod:`raydaug.schedule`)
- :mod:`raydaug.tune.callbacks`  — the progress table, the checkpoint-registration fix
"""
