"""Table 1, mnist: the paper's reduced set (550 training images) and the authors' hyperparameters
(preset paper_mnist) as the centre of the starting population; PBT mutates α, β, γ and the four learning
rates every checkpoint (25 epochs). Eight trials share GPUs (0.25 each, 2 CPUs each).

Needs the dataset under data_dir (torchvision layout; add ``--set download=true`` once).
``--smoke`` keeps the population/PBT shape but runs tiny nets on the embedded digits data.
"""
from raydaug.experiment import Experiment
from raydaug.tune_configs._common import paper_population


def experiment() -> Experiment:
    return paper_population("table1_mnist", "paper_mnist", epochs=1000, eval_every=5, checkpoint_every=25)
