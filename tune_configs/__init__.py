"""Experiments as plain Python: each module defines ``experiment() -> raydaug.experiment.Experiment``.
``common`` holds the pieces several of them share."""
