"""Smoke test of the whole Tune path: 2 tiny trials on digits, PBT forced to exploit at every iteration.

≈ 30 s on 2 CPUs: ``raydaug tune smoke``. Run together (the default on 2 CPUs) the two trials usually
exploit, but not always: a worker that starts late can find the other trial finished, and PBT compares only
unfinished trials. With ``--cpus-per-trial 1.5`` they alternate (PBT pauses each at every report while the
other waits) and exploits are certain; the tests run it that way.
"""
from ray import tune

from raydaug.experiment import TINY_DIGITS, Experiment


def experiment() -> Experiment:
    return Experiment(
        name="smoke",
        base={**TINY_DIGITS, "epochs": 6, "checkpoint_every": 1},
        # two trials: one classifier learns far too slowly (lr_c 1e-5), so it is the lower half and,
        # with quantile 0.5 and a perturbation at every checkpoint, clones the other one
        search_space={"alpha": tune.loguniform(0.02, 0.5), "lr_c": tune.grid_search([1e-5, 2e-3])},
        scheduler="pbt",
        scheduler_options={"perturbation_interval": 1, "quantile_fraction": 0.5, "resample_probability": 0.25},
        num_samples=1,
        cpus_per_trial=1.0,
        smoke={"epochs": 4},
        checkpoints_to_keep=2,
        max_failures=1,
    )
