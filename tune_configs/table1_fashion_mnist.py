"""Table 1, Fashion-MNIST: the paper's reduced set (550 training images) and the authors' hyperparameters
(preset paper_fashion_mnist) as the centre of the starting population; PBT mutates α, β, γ and the four learning
rates every checkpoint (25 epochs). Eight trials share GPUs (0.25 each, 2 CPUs each).

Needs the dataset under data_dir (torchvision layout; add ``--set download=true`` once).
``--smoke`` keeps the population/PBT shape but runs tiny nets on the embedded digits data.
"""
from ray import tune

from raydaug.config import PRESETS
from raydaug.experiment import Experiment

PRESET = "paper_fashion_mnist"
PAPER = PRESETS[PRESET]
KEYS = ("alpha", "beta", "gamma", "lr_c", "lr_g", "lr_dc", "lr_dd")
# starting population within ×/÷2 of the paper's values; PBT explores ×/÷10
START = {key: tune.loguniform(PAPER[key] / 2, PAPER[key] * 2) for key in KEYS}
MUTATIONS = {key: (PAPER[key] / 10, PAPER[key] * 10) for key in KEYS}
SMOKE = {"dataset": "digits", "image_size": 16, "classifier": "small", "disc": "small", "ngf": 4,
         "noise_dim": 8, "train_per_class": 3, "val_per_class": 3, "batch_size": 10, "epochs": 4,
         "eval_every": 1, "checkpoint_every": 2}


def experiment() -> Experiment:
    return Experiment(
        name="table1_fashion_mnist",
        base={"preset": PRESET, "aug": "learned", "epochs": 1000, "eval_every": 5, "checkpoint_every": 25},
        search_space=dict(START),
        scheduler="pbt",
        scheduler_options={"mutations": MUTATIONS, "quantile_fraction": 0.25, "resample_probability": 0.25},
        num_samples=8,
        cpus_per_trial=2.0,
        gpus_per_trial=0.25,
        smoke=dict(SMOKE),
        smoke_num_samples=2,
        checkpoints_to_keep=3,
        max_failures=3,
    )
