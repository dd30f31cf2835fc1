"""Smoke test of the whole Tune path: 2 tiny trials on digits, PBT forced to exploit at every iteration.

≈ 30 s on 2 CPUs: ``raydaug tune smoke``.
"""
from ray import tune

from raydaug.experiment import Experiment

TINY = {"dataset": "digits", "image_size": 16, "epochs": 6, "eval_every": 1, "checkpoint_every": 1,
        "ngf": 4, "noise_dim": 8, "train_per_class": 3, "val_per_class": 3, "batch_size": 10}


def experiment() -> Experiment:
    return Experiment(
        name="smoke",
        base=dict(TINY),
        search_space={"alpha": tune.loguniform(0.02, 0.5), "lr_c": tune.loguniform(3e-4, 3e-3)},
        scheduler="pbt",
        # 2 trials, quantile 0.5: at every checkpoint the worse one clones the better one
        scheduler_options={"perturbation_interval": 1, "quantile_fraction": 0.5, "resample_probability": 0.25},
        num_samples=2,
        cpus_per_trial=1.0,
        smoke={"epochs": 4},
        checkpoints_to_keep=2,
        max_failures=1,
    )
