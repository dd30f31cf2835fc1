"""Table 2: the full CIFAR-10 training set (49 000 images + 1000 validation) with PBT over α, β, γ and
the learning rates, starting around the authors' CIFAR values. 8 trials at 0.25 GPU each.

``--smoke``: the same PBT shape on digits with tiny nets.
"""
from raydaug.experiment import Experiment
from raydaug.tune_configs._common import paper_population


def experiment() -> Experiment:
    return paper_population("cifar_full", "full_cifar10", epochs=300, eval_every=2, checkpoint_every=10)
