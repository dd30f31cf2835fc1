"""PBT over today's defaults on the embedded digits data (16 px, 10 training / 30 validation images per
class, small nets: the reference protocol of the method study), ≈ 15 minutes on 2 CPUs.

Four trials of 500 epochs (the study's budget per trial); PBT mutates α, β, γ, the teacher's weight and
the four learning rates every checkpoint (25 epochs). The starting population is spread log-uniformly
over the mutation ranges (``raydaug.experiment.PBT_MUTATIONS``, around the defaults). The population shares
one split: run it once per seed (``--set seed=N --name digits_pbt_sN``).
"""
from ray import tune

from raydaug.experiment import PBT_MUTATIONS, TINY_DIGITS, Experiment


def experiment() -> Experiment:
    return Experiment(
        name="digits_pbt",
        # Config's digits defaults: small nets, 16 px, train_per_class 10, val_per_class 30
        base={"dataset": "digits", "aug": "learned", "epochs": 500, "eval_every": 5, "checkpoint_every": 25},
        search_space={key: tune.loguniform(low, high) for key, (low, high) in PBT_MUTATIONS.items()},
        scheduler="pbt",
        scheduler_options={"mutations": dict(PBT_MUTATIONS), "quantile_fraction": 0.25, "resample_probability": 0.25,
                           "metric": "acc/val", "mode": "max"},
        num_samples=4,
        cpus_per_trial=1.0,
        smoke=dict(TINY_DIGITS),
        smoke_num_samples=2,
        checkpoints_to_keep=2,
        max_failures=2,
    )
