"""The method study: which of raydaug's additions make the learned augmentation pay for itself, on the two
offline datasets, against the hand-made augmentations on the same splits and budgets.

Stage 1 (``experiment``): the learned augmentation as a 2 × 2 factorial — the hand-made augmentation under G
(``base_aug`` none / trivial) × the EMA teacher's term in G's loss (``teacher_weight`` 0 / 1), everything
else at today's defaults but the mode-seeking term (``div_weight`` 0) and the evaluation (``eval_ema``
false: C itself is measured), as when the study was run — on
digits (10 training / 30 validation images per class, 500 epochs) and on real MNIST (mnist5k: 55 / 50 per
class, 16 px, small nets, 200 epochs), three split seeds each: 24 trials.
Stage 2 (``followup``, into RUN_DIR_baselines): none / light / strong / trivial on the same splits and
budgets: 24 trials. ``raydaug analyze RUN_DIR`` merges both and opens with the comparison table (mean ±
std per variant and baseline, the relative test-error change against the best hand-made augmentation, and
whether each learned G stayed healthy).

About 2 hours on 2 CPUs. ``--smoke``: the same two stages, one seed, tiny nets on digits.
"""
from typing import Any

from ray import tune

from raydaug.allowed import BASE_AUGS
from raydaug.experiment import BASELINES_STAGE, TINY_DIGITS, Experiment
from raydaug.tune_configs._common import MNIST5K_SMALL_EPOCHS, SEEDS

# per dataset: (train_per_class, val_per_class, epochs) — the reference digits protocol and MNIST-550
PROTOCOL = {"digits": (10, 30, 500), "mnist5k": (55, 50, MNIST5K_SMALL_EPOCHS)}


def _protocol(index: int):
    return tune.sample_from(lambda config: PROTOCOL[config["dataset"]][index])


SPLIT_AND_BUDGET = {"train_per_class": _protocol(0), "val_per_class": _protocol(1), "epochs": _protocol(2),
                    "checkpoint_every": _protocol(2)}
SMOKE = {**TINY_DIGITS, "epochs": 2, "checkpoint_every": 2, "seed": tune.grid_search([0]),
         "dataset": tune.grid_search(["digits"]), "train_per_class": 3, "val_per_class": 3}


def on_the_protocol(name: str, base: dict, grid: dict[str, list], seeds: list[int] = SEEDS,
                    per_dataset: dict[str, Any] | None = None) -> Experiment:
    """A FIFO grid on the study's splits and budgets: both datasets × ``grid`` (Config key → values) × the
    split ``seeds``, evaluated every 5 epochs, one CPU per trial (method_study's stages, diversity_study,
    ema_study, fair_fight). ``per_dataset``: Config keys whose value follows the trial's dataset (Tune
    ``sample_from`` domains)."""
    return Experiment(
        name=name,
        base={"eval_every": 5, **base},
        search_space={"dataset": tune.grid_search(list(PROTOCOL)),
                      **{key: tune.grid_search(values) for key, values in grid.items()},
                      "seed": tune.grid_search(seeds), **SPLIT_AND_BUDGET, **(per_dataset or {})},
        scheduler="fifo",
        cpus_per_trial=1.0,
        smoke=dict(SMOKE),
        checkpoints_to_keep=1,
    )


def experiment() -> Experiment:
    # div_weight 0: the study as measured, before its follow-up (diversity_study) made 0.003 a default;
    # eval_ema false: acc/* measured C itself then (ema_study measures the EMA)
    return on_the_protocol("method_study", {"aug": "learned", "div_weight": 0.0, "eval_ema": False},
                           {"base_aug": ["none", "trivial"], "teacher_weight": [0.0, 1.0]})


def baselines(eval_ema: bool) -> Experiment:
    """The hand-made baselines on the same splits and budgets, evaluated as ``eval_ema`` says."""
    return on_the_protocol(BASELINES_STAGE, {"eval_ema": eval_ema}, {"aug": list(BASE_AUGS)})


def followup(run_dir: str) -> Experiment:
    """The study's baselines, measured as the study was (C itself)."""
    return baselines(eval_ema=False)
