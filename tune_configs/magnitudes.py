"""The hand-made augmentations' magnitudes, chosen on validation: a fair fight tunes the opponents too.

Every hand-made augmentation at its documented magnitudes (as fair_fight's baselines stage), on six *tuning*
split seeds (0–5) that the fair fight never scores, with the fair fight's split sizes, budgets and checkpoint
rule. ``--grid`` then adds each magnitude the grid tries, one augmentation at a time::

    raydaug tune magnitudes --grid dataset=digits --name magnitudes_digits
    raydaug tune magnitudes --grid dataset=digits --grid aug=randaugment --grid randaugment_magnitude=5,13 \\
        --name magnitudes_digits_randaugment
    raydaug tune magnitudes --grid dataset=digits --grid aug=augmix --grid augmix_severity=1,6,10 \\
        --name magnitudes_digits_augmix
    raydaug tune magnitudes --grid dataset=digits --grid aug=elastic --grid elastic_alpha=8,17,68 \\
        --name magnitudes_digits_elastic
    raydaug analyze runs/magnitudes_digits --pool runs/magnitudes_digits_randaugment \\
        --pool runs/magnitudes_digits_augmix --pool runs/magnitudes_digits_elastic

The report's Table 1 gives each magnitude's mean test accuracy, and its trials.csv each trial's best
validation accuracy: the magnitude with the best mean validation accuracy is the one kept
(raydaug/presets.py, MAGNITUDES; docs/study-log.md, "The opponents' magnitudes"). The same runs tell how
long a pilot of ``base_aug=auto`` must be: its scores are the first ``pilot_share`` of these arms' curves.
"""
from raydaug.allowed import BASE_AUGS
from raydaug.experiment import Experiment
from raydaug.tune_configs.method_study import on_the_protocol

TUNING_SEEDS = list(range(6))  # the fair fight's seeds are 100–111: no choice is made on those


def experiment() -> Experiment:
    return on_the_protocol("magnitudes", {"eval_ema": True}, {"aug": list(BASE_AUGS)}, seeds=TUNING_SEEDS)
