"""Experiments as plain Python: each module defines ``experiment() -> raydaug.experiment.Experiment``.
``_common`` holds the pieces (files starting with ``_`` are not experiments) several of them share."""
