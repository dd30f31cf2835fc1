"""Table 3: the nine player combinations of the ablation (rows a…l of raydaug.presets.TABLE3_ROWS) on
reduced CIFAR-10 (4000 images, the authors' CIFAR hyperparameters), three split seeds each, as a grid.

27 trials of 1000 epochs; 0.25 GPU each. ``--smoke``: the same 9 × seeds grid on digits with tiny nets.
"""
from ray import tune

from raydaug.experiment import TINY_DIGITS, Experiment
from raydaug.presets import TABLE3_ROWS
from raydaug.tune_configs._common import GPUS_PER_TRIAL

SEEDS = [0, 1, 2]
SMOKE = {**TINY_DIGITS, "epochs": 2, "checkpoint_every": 1, "seed": tune.grid_search([0])}


def experiment() -> Experiment:
    return Experiment(
        name="table3_ablation",
        # the row's preset comes after paper_cifar10, so its switches win; no switch is set in base
        base={"preset": "paper_cifar10", "epochs": 1000, "eval_every": 5, "checkpoint_every": 25},
        search_space={"preset": tune.grid_search([f"paper_cifar10,table3_{row}" for row in TABLE3_ROWS]),
                      "seed": tune.grid_search(SEEDS)},
        scheduler="fifo",
        num_samples=1,
        cpus_per_trial=2.0,
        gpus_per_trial=GPUS_PER_TRIAL,
        smoke=dict(SMOKE),
        checkpoints_to_keep=2,
    )
