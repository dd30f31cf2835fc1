"""The evaluation protocol study: today's learned defaults with ``eval_ema`` (``acc/*`` measure the EMA of
C), and the hand-made baselines measured the same way, on the method study's splits and budgets (digits:
10 / 30 per class, 500 epochs; mnist5k: 55 / 50 per class, 16 px, small nets, 200 epochs), three split seeds.

Stage 1 (``experiment``): the learned augmentation at its defaults, 6 trials. Stage 2 (``followup``, into
RUN_DIR_baselines): none / light / strong / trivial, 24 trials (method_study's baselines, with eval_ema).
42 min on 2 CPUs. The variants of docs/reproducing.md are the same command with ``--set`` (e.g. ``--set
base_aug=strong``, ``--set g_every=5 --set dataset=digits``), with ``--no-followup`` (stage 1 only) and
compared with this run's baselines through ``raydaug analyze RUN --baselines runs/ema_study_baselines``.
"""
from raydaug.experiment import Experiment
from raydaug.tune_configs.method_study import baselines, on_the_protocol


def experiment() -> Experiment:
    return on_the_protocol("ema_study", {"aug": "learned"}, {})


def followup(run_dir: str) -> Experiment:
    """The hand-made baselines, evaluated with the EMA of C as the learned trials are."""
    return baselines(eval_ema=True)
