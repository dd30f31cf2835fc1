"""Table 2: the full CIFAR-10 training set (49 000 images + 1000 validation) with PBT over α, β, γ and
the learning rates, starting around the authors' CIFAR values. 8 trials at 0.5 GPU each.

``--smoke``: the same PBT shape on digits with tiny nets.
"""
from ray import tune

from raydaug.config import PRESETS
from raydaug.experiment import Experiment

PAPER = PRESETS["full_cifar10"]
KEYS = ("alpha", "beta", "gamma", "lr_c", "lr_g", "lr_dc", "lr_dd")
START = {key: tune.loguniform(PAPER[key] / 2, PAPER[key] * 2) for key in KEYS}
MUTATIONS = {key: (PAPER[key] / 10, PAPER[key] * 10) for key in KEYS}
SMOKE = {"dataset": "digits", "image_size": 16, "classifier": "small", "disc": "small", "ngf": 4,
         "noise_dim": 8, "train_per_class": 3, "val_per_class": 3, "batch_size": 10, "epochs": 4,
         "eval_every": 1, "checkpoint_every": 2}


def experiment() -> Experiment:
    return Experiment(
        name="cifar_full",
        base={"preset": "full_cifar10", "aug": "learned", "epochs": 300, "eval_every": 2, "checkpoint_every": 10},
        search_space=dict(START),
        scheduler="pbt",
        scheduler_options={"mutations": MUTATIONS, "quantile_fraction": 0.25, "resample_probability": 0.25},
        num_samples=8,
        cpus_per_trial=2.0,
        gpus_per_trial=0.5,
        smoke=dict(SMOKE),
        smoke_num_samples=2,
        checkpoints_to_keep=3,
        max_failures=3,
    )
