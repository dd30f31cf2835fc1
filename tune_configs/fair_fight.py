"""The fair fight: the learned augmentation's defaults against every hand-made augmentation raydaug has (none,
light, strong, TrivialAugment, RandAugment, AutoAugment, AugMix, elastic distortion), on fresh splits that no
choice was made on, with the same budget and checkpoint rule (best validation) for every arm.

Every arm uses the hand-made magnitudes chosen on validation for its dataset by tune_configs/magnitudes.py
(raydaug.presets.MAGNITUDES), on tuning splits that are not these.

Protocol, fixed before the runs: digits (10 training / 30 validation images per class, 500 epochs) and mnist5k
(MNIST-550: 55 / 50 per class, 16 px, small nets, 200 epochs), 12 paired split seeds each (100–111), every arm
evaluated with the EMA of C every 5 epochs.

Stage 1 (``experiment``): the learned defaults, 2 datasets × 12 seeds = 24 trials. Stage 2 (``followup``, into
RUN_DIR_baselines, which ``raydaug tune`` runs first): the hand-made augmentations, 8 arms × 2 datasets × 12
seeds = 192 trials; the learned trials' pilots read these arms instead of training them again. ``raydaug analyze
RUN_DIR`` reads both and reports, per dataset, every arm's mean, the best hand-made one chosen on validation,
the learned error change with its paired 95 % interval and the probability of improvement.

Sizing: with a paired spread σ_d of the per-split relative error change, n ≈ ((1.96 + 0.84)·σ_d / δ)² splits
resolve a margin δ at 80 % power. Measured on digits at a fifth of the budget (the learned defaults against
RandAugment, the best hand-made there): σ_d ≈ 0.28 on seeds 100–111 and 0.40 on fresh seeds 112–123, where
G's base changed from split to split, and 0.20 on seeds 124–147, where the pilot's prior kept G on RandAugment
on every split; so 12 splits resolve about δ ≈ 16–32 %, 24 splits about 11 %. The 50 splits 148–197, sized
in advance for the 8 % margin seen on 124–147, gave σ_d ≈ 0.18 (resolving about 7 %) and a margin of 11.6 %
(docs/study-log.md, "Fifty fresh digits splits").

Cost: roughly 7 hours on 2 CPUs (1 CPU per trial; before the pilots read the hand-made stage's arms, about 2
hours more); on one GPU at 0.25 GPU per trial several times less
(``--gpus-per-trial 0.25``). ``--smoke``: both stages on tiny digits, one seed (method_study's smoke).
"""
from ray import tune

from raydaug.allowed import BASE_AUGS, MAGNITUDE_KEYS
from raydaug.config import Config
from raydaug.experiment import BASELINES_STAGE, Experiment
from raydaug.presets import MAGNITUDES
from raydaug.tune_configs.method_study import on_the_protocol

SEEDS = list(range(100, 112))  # fresh: no choice of raydaug's was made on these splits
MAGNITUDES_READ = [key for keys in MAGNITUDE_KEYS.values() for key in keys]


def _tuned(key: str):
    default = getattr(Config(), key)
    return tune.sample_from(lambda config: MAGNITUDES.get(config["dataset"], {}).get(key, default))


# every arm, learned (its pilot, G's base) and hand-made, at the magnitudes chosen on validation for its dataset
TUNED = {key: _tuned(key) for key in MAGNITUDES_READ}


def experiment() -> Experiment:
    """The learned augmentation's defaults, evaluated with the EMA of C as every arm is."""
    return on_the_protocol("fair_fight", {"aug": "learned", "eval_ema": True}, {}, seeds=SEEDS, per_dataset=TUNED)


def followup(run_dir: str) -> Experiment:
    """Every hand-made augmentation at the magnitudes chosen on validation for its dataset
    (raydaug.presets.MAGNITUDES, else raydaug/config.py's defaults), on the same splits and budgets."""
    return on_the_protocol(BASELINES_STAGE, {"eval_ema": True}, {"aug": list(BASE_AUGS)}, seeds=SEEDS,
                           per_dataset=TUNED)
