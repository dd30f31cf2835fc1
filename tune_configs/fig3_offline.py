"""Fig. 3 on the offline datasets: test accuracy against the number of training images per class (3, 5,
10, 20, 50) on digits and on real MNIST (mnist5k, 16 px, small nets), for none / light / trivial and the
learned augmentation (today's defaults), three split seeds each: 120 trials, one CPU each. The validation
split is 30 (digits) / 50 (mnist5k) images per class at every size; the budget is 200 (digits) / 100
(mnist5k) epochs for every augmentation (about an hour on 2 CPUs). ``raydaug analyze`` draws it as the Fig. 3 plot.
It pins ``eval_ema=false`` (C itself, as first measured); today's protocol is ``--set eval_ema=true``
(docs/reproducing.md runs it one size at a time: ``--set train_per_class=N``).

``--smoke``: two sizes, two augmentations, one seed, tiny nets on digits.
"""
from ray import tune

from raydaug.experiment import TINY_DIGITS, Experiment
from raydaug.tune_configs._common import SEEDS

PER_CLASS = [3, 5, 10, 20, 50]
AUGS = ["none", "light", "trivial", "learned"]
# per dataset: (val_per_class, epochs)
PROTOCOL = {"digits": (30, 200), "mnist5k": (50, 100)}


def _protocol(index: int):
    return tune.sample_from(lambda config: PROTOCOL[config["dataset"]][index])


def experiment() -> Experiment:
    return Experiment(
        name="fig3_offline",
        base={"eval_every": 10, "checkpoint_every": 100, "eval_ema": False},  # as measured: C itself
        search_space={"dataset": tune.grid_search(list(PROTOCOL)), "train_per_class": tune.grid_search(PER_CLASS),
                      "aug": tune.grid_search(AUGS), "seed": tune.grid_search(SEEDS),
                      "val_per_class": _protocol(0), "epochs": _protocol(1)},
        scheduler="fifo",
        cpus_per_trial=1.0,
        smoke={**TINY_DIGITS, "epochs": 2, "eval_every": 1, "checkpoint_every": 2,
               "dataset": tune.grid_search(["digits"]), "train_per_class": tune.grid_search([2, 3]),
               "aug": tune.grid_search(["none", "learned"]), "seed": tune.grid_search([0])},
        checkpoints_to_keep=1,
    )
