"""After the method study: the mode-seeking term (``div_weight``) on top of the study's winner.

The method study's winner (trivial under G, the EMA teacher) keeps G healthy, but G uses its noise little
(``aug/z_div`` 0.04-0.11 on digits and 0.01-0.32 on mnist5k at the chosen checkpoints). ``div_weight`` adds
Mao et al.'s mode-seeking term to G's loss, so two noises must give two different images. This grid runs the
learned augmentation with ``div_weight`` 0.003 / 0.03 on the method study's splits and budgets (digits 10 /
30 per class, 500 epochs; mnist5k 55 / 50 per class, 200 epochs), three split seeds each. Its hand-made
baselines are the method study's (same splits, same budgets), so there is no follow-up stage:
``raydaug analyze RUN_DIR --baselines runs/method_study_baselines`` opens with the comparison.

About 6 min per digits trial and 14-19 per mnist5k trial on one CPU. ``--smoke``: one seed, tiny nets, digits.
"""
from ray import tune

from raydaug.experiment import Experiment
from tune_configs._common import SEEDS
from tune_configs.method_study import PROTOCOL, SMOKE, SPLIT_AND_BUDGET


def experiment() -> Experiment:
    return Experiment(
        name="diversity_study",
        base={"aug": "learned", "eval_every": 5, "eval_ema": False},  # measured on C, as method_study's baselines
        search_space={"dataset": tune.grid_search(list(PROTOCOL)), "div_weight": tune.grid_search([0.003, 0.03]),
                      "seed": tune.grid_search(SEEDS), **SPLIT_AND_BUDGET},
        scheduler="fifo",
        cpus_per_trial=1.0,
        smoke=dict(SMOKE),
        checkpoints_to_keep=1,
    )
