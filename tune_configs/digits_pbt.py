"""PBT over today's defaults on the embedded digits data (16 px, 10 training / 30 validation images per
class, small nets: the reference protocol of the method study), ≈ 15 minutes on 2 CPUs.

Four trials of 500 epochs (the study's budget per trial); PBT mutates α, β, γ, the teacher's weight and
the four learning rates every checkpoint (25 epochs). The starting population is spread log-uniformly
around the defaults (α 0.1, β 0.05, γ 0.005, teacher 1, lr_G/DC/DD 5e-4, lr_C 1e-3). The population shares
one split: run it once per seed (``--set seed=N --name digits_pbt_sN``).
"""
from ray import tune

from raydaug.experiment import Experiment

# log-uniform ranges around the paper's MNIST values (lr_c around the digits default 1e-3)
MUTATIONS = {
    "alpha": (0.01, 1.0),
    "beta": (0.005, 0.5),
    "gamma": (5e-4, 0.05),
    "teacher_weight": (0.3, 3.0),
    "lr_c": (2e-4, 5e-3),
    "lr_g": (1e-4, 2.5e-3),
    "lr_dc": (1e-4, 2.5e-3),
    "lr_dd": (1e-4, 2.5e-3),
}


def experiment() -> Experiment:
    return Experiment(
        name="digits_pbt",
        # Config's digits defaults: small nets, 16 px, train_per_class 10, val_per_class 30
        base={"dataset": "digits", "aug": "learned", "epochs": 500, "eval_every": 5, "checkpoint_every": 25},
        search_space={key: tune.loguniform(low, high) for key, (low, high) in MUTATIONS.items()},
        scheduler="pbt",
        scheduler_options={"mutations": MUTATIONS, "quantile_fraction": 0.25, "resample_probability": 0.25,
                           "metric": "acc/val", "mode": "max"},
        num_samples=4,
        cpus_per_trial=1.0,
        smoke={"epochs": 4, "eval_every": 1, "checkpoint_every": 2, "ngf": 4, "noise_dim": 8,
               "train_per_class": 3, "val_per_class": 3, "batch_size": 10},
        smoke_num_samples=2,
        checkpoints_to_keep=2,
        max_failures=2,
    )
