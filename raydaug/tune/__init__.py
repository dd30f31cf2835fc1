"""Ray Tune integration: the only package of raydaug that imports Ray.

- :mod:`raydaug.tune.trainable`  — the function trainable driving :class:`raydaug.train.Trainer`
- :mod:`raydaug.tune.schedulers` — PBT / PB2 that record ``pbt_events`` and own exploited checkpoints; replay
- :mod:`raydaug.tune.runner`     — ``raydaug tune``: validation before launch, Tuner, resume, replay
- :mod:`raydaug.tune.callbacks`  — the progress table
"""
