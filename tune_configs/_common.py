"""Shared by the tune_configs: split seeds, budgets, the GPU share and the paper-population PBT (the tiny
digits settings of ``--smoke`` are :data:`raydaug.experiment.TINY_DIGITS`)."""
from __future__ import annotations

from ray import tune

from raydaug.config import MUTABLE_HPARAMS, Config
from raydaug.experiment import TINY_DIGITS, Experiment

# split seeds of every multi-seed experiment (the seed decides the train/val/test split)
SEEDS = [0, 1, 2]
# the budget of the CPU-sized MNIST-550 runs (mnist5k_small: 22 minibatches of 25 per epoch)
MNIST5K_SMALL_EPOCHS = 200

# A GPU share for the paper's nets (32 px, batch 16-32): one such trial leaves an H200 mostly idle (its
# step is bound by kernel launches); 4 trials on one card trained 3.3x the samples/s of one alone, 8 only
# 3.5x, and each needs 1.1-1.9 GiB of CUDA memory (bench/results/gpu.json, docs/scaling.md).
GPUS_PER_TRIAL = 0.25


def paper_population(name: str, preset: str, epochs: int, eval_every: int, checkpoint_every: int,
                     gpus_per_trial: float = GPUS_PER_TRIAL, num_samples: int = 8) -> Experiment:
    """PBT around the authors' published values of ``preset``: the starting population within ×/÷2 of
    them, mutations within ×/÷10, every checkpoint."""
    paper = Config.from_dict({"preset": preset}).to_dict()
    return Experiment(
        name=name,
        base={"preset": preset, "aug": "learned", "epochs": epochs, "eval_every": eval_every,
              "checkpoint_every": checkpoint_every},
        search_space={key: tune.loguniform(paper[key] / 2, paper[key] * 2) for key in MUTABLE_HPARAMS},
        scheduler="pbt",
        scheduler_options={"mutations": {key: (paper[key] / 10, paper[key] * 10) for key in MUTABLE_HPARAMS},
                           "quantile_fraction": 0.25, "resample_probability": 0.25},
        num_samples=num_samples,
        cpus_per_trial=2.0,
        gpus_per_trial=gpus_per_trial,
        smoke=dict(TINY_DIGITS),
        smoke_num_samples=2,
        checkpoints_to_keep=3,
        max_failures=3,
    )
