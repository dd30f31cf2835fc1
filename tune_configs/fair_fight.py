"""The fair fight: the learned augmentation's defaults against every hand-made augmentation raydaug has (none,
light, strong, TrivialAugment, RandAugment, AutoAugment, AugMix, elastic distortion), on fresh splits that no
choice was made on, with the same budget and checkpoint rule (best validation) for every arm.

Protocol, fixed before the runs: digits (10 training / 30 validation images per class, 500 epochs) and mnist5k
(MNIST-550: 55 / 50 per class, 16 px, small nets, 200 epochs), 12 paired split seeds each (100–111), every arm
evaluated with the EMA of C every 5 epochs.

Stage 1 (``experiment``): the learned defaults, 2 datasets × 12 seeds = 24 trials. Stage 2 (``followup``, into
RUN_DIR_baselines): the hand-made augmentations, 8 arms × 2 datasets × 12 seeds = 192 trials. ``raydaug analyze
RUN_DIR`` reads both and reports, per dataset, every arm's mean, the best hand-made one chosen on validation,
the learned error change with its paired 95 % interval and the probability of improvement.

Sizing: with a paired spread σ_d of the relative error change, n ≈ ((1.96 + 0.84)·σ_d / δ)² splits resolve a
margin δ at 80 % power; the study log's three-split intervals (about ±15 %) give σ_d ≈ 15 %, so 12 splits
resolve about δ ≈ 12 % and 20 splits about 9 %.

Cost: about 7 hours on 2 CPUs (1 CPU per trial); on one GPU at 0.25 GPU per trial several times less
(``--gpus-per-trial 0.25``). ``--smoke``: both stages on tiny digits, one seed.
"""
from ray import tune

from raydaug.allowed import BASE_AUGS
from raydaug.experiment import BASELINES_STAGE, TINY_DIGITS, Experiment
from raydaug.tune_configs.method_study import SPLIT_AND_BUDGET

SEEDS = list(range(100, 112))  # fresh: no choice of raydaug's was made on these splits
DATASETS = ["digits", "mnist5k"]
MNIST5K = {"image_size": 16, "classifier": "small", "disc": "small", "ngf": 16, "noise_dim": 32, "batch_size": 25,
           "lr_c": 1e-3}  # mnist5k_small's sizes: they are the defaults already, kept explicit here
SMOKE = {**TINY_DIGITS, "epochs": 2, "checkpoint_every": 2, "seed": tune.grid_search([SEEDS[0]]),
         "dataset": tune.grid_search(["digits"]), "train_per_class": 3, "val_per_class": 3}


def _arms(name: str, base: dict, grid: dict[str, list]) -> Experiment:
    return Experiment(
        name=name,
        base={"eval_every": 5, "eval_ema": True, **MNIST5K, **base},
        search_space={"dataset": tune.grid_search(DATASETS),
                      **{key: tune.grid_search(values) for key, values in grid.items()},
                      "seed": tune.grid_search(SEEDS), **SPLIT_AND_BUDGET},
        scheduler="fifo",
        cpus_per_trial=1.0,
        smoke=dict(SMOKE),
        checkpoints_to_keep=1,
    )


def experiment() -> Experiment:
    """The learned augmentation's defaults."""
    return _arms("fair_fight", {"aug": "learned"}, {})


def followup(run_dir: str) -> Experiment:
    """Every hand-made augmentation at its documented magnitudes (raydaug/config.py's defaults), on the same
    splits and budgets."""
    return _arms(BASELINES_STAGE, {}, {"aug": list(BASE_AUGS)})
