"""Fig. 4: joint training against training C on frozen G snapshots.

Stage 1 (``experiment``): the joint four-player training on reduced CIFAR-10, three split seeds, every
checkpoint kept (each 100 epochs). Stage 2 (``followup``, run by ``raydaug tune`` right after stage 1
into RUN_DIR_separate): for each seed and each snapshot epoch (200, 500, 700, 1000) a fresh C trained
with ``joint=false`` on that frozen G. Compare the stage-2 curves with stage 1's to read the figure.

``--smoke``: the same two stages on digits with tiny nets (snapshots at every kept checkpoint).
"""
from __future__ import annotations

import json
from pathlib import Path

from ray import tune

from raydaug.experiment import TINY_DIGITS, Experiment
from raydaug.tune_configs._common import GPUS_PER_TRIAL

SEEDS = [0, 1, 2]
SNAPSHOT_EPOCHS = (200, 500, 700, 1000)
BASE = {"preset": "paper_cifar10", "aug": "learned", "epochs": 1000, "eval_every": 5, "checkpoint_every": 100}
SMOKE = {**TINY_DIGITS, "seed": tune.grid_search([0])}


def experiment() -> Experiment:
    return Experiment(
        name="fig4_joint_vs_separate",
        base=dict(BASE),
        search_space={"seed": tune.grid_search(SEEDS)},
        scheduler="fifo",
        cpus_per_trial=2.0,
        gpus_per_trial=GPUS_PER_TRIAL,
        smoke=dict(SMOKE),
        checkpoints_to_keep=0,  # keep every checkpoint: they are the G snapshots of stage 2
    )


def snapshots(run_dir: str) -> list[tuple[int, int, str]]:
    """(seed, epoch, checkpoint folder) of stage 1's kept checkpoints (local storage)."""
    found = []
    for meta in sorted(Path(run_dir).glob("*/checkpoint_*/trial.json")):
        params = meta.parent.parent / "params.json"
        seed = int(json.loads(params.read_text())["seed"]) if params.exists() else 0
        found.append((seed, int(json.loads(meta.read_text())["epoch"]), str(meta.parent)))
    wanted = [item for item in found if item[1] in SNAPSHOT_EPOCHS]
    return wanted or found  # a --smoke stage 1 is too short for the paper's epochs: use what it kept


def followup(run_dir: str) -> Experiment | None:
    found = snapshots(run_dir)
    if not found:
        return None
    seed_of = {path: seed for seed, _, path in found}
    return Experiment(
        name="separate",
        base={**BASE, "joint": False, "g_checkpoint": found[0][2]},
        search_space={"g_checkpoint": tune.grid_search(sorted(seed_of)),
                      # the frozen G was trained on its seed's split: C must see the same split
                      "seed": tune.sample_from(lambda config: seed_of[config["g_checkpoint"]])},
        scheduler="fifo",
        cpus_per_trial=2.0,
        gpus_per_trial=GPUS_PER_TRIAL,
        smoke={key: value for key, value in SMOKE.items() if key != "seed"},
        checkpoints_to_keep=1,
    )
