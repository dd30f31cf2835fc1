"""Fig. 3: test accuracy against the number of training images on CIFAR-10, for no augmentation, the
hand-made strong augmentation and the learned one (a grid; split seed 0).

``--smoke``: the same 3 augmentations × 2 sizes grid on digits with tiny nets.
"""
from ray import tune

from raydaug.experiment import TINY_DIGITS, Experiment
from raydaug.tune_configs._common import GPUS_PER_TRIAL

PER_CLASS = [50, 100, 200, 400, 800]          # 500 … 8000 training images
AUGS = ["none", "strong", "learned"]
SMOKE = {**TINY_DIGITS, "epochs": 2, "checkpoint_every": 1, "train_per_class": tune.grid_search([2, 4])}


def experiment() -> Experiment:
    return Experiment(
        name="fig3_samples",
        base={"preset": "paper_cifar10", "epochs": 500, "eval_every": 5, "checkpoint_every": 25},
        search_space={"train_per_class": tune.grid_search(PER_CLASS), "aug": tune.grid_search(AUGS)},
        scheduler="fifo",
        cpus_per_trial=2.0,
        gpus_per_trial=GPUS_PER_TRIAL,
        smoke=dict(SMOKE),
        checkpoints_to_keep=1,
    )
