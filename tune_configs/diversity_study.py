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
from raydaug.experiment import Experiment
from raydaug.tune_configs.method_study import on_the_protocol


def experiment() -> Experiment:
    # measured on C (eval_ema false), as method_study's baselines that it is compared with
    return on_the_protocol("diversity_study", {"aug": "learned", "eval_ema": False}, {"div_weight": [0.003, 0.03]})
