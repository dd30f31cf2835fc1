"""The schema: one frozen dataclass with strict, validated keys, and the values each key allows.

Keys are flat so Ray Tune can sample and mutate them. ``Config.from_dict`` is the only way in from
untyped input (CLI ``--set``, tune_configs): it expands ``preset`` (raydaug/presets.py) and rejects unknown
keys, wrong types and out-of-range values with a :class:`ConfigError` that names the key and what is
allowed. ``Config.from_logged`` reads a config a run logged (checkpoints, schedules), brought to today's
keys by raydaug/migrations.py from the ``config_version`` it was logged with (``Config.to_logged``).
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from .allowed import (
    ALLOWED_VALUES,
    DATASET_TRAIN_LIMIT,
    EMBEDDED_DATASETS,
    INTERVALS,
    RANGES,
    SUPPORTED_IMAGE_SIZES,
    USER_DATASETS,
    classifier_spec_error,
)
from .errors import ConfigError
from .migrations import MIGRATIONS, VERSION_KEY, migrate
from .presets import PRESETS, preset_names

# the version of the keys and values below that every logged config carries (VERSION_KEY): one migration step
# per earlier version (raydaug/migrations.py) brings an older logged config to it
CONFIG_VERSION = len(MIGRATIONS)

# Hyperparameters PBT may mutate; apply_hparams() pushes them into a live TrainState.
MUTABLE_HPARAMS = ("alpha", "beta", "gamma", "teacher_weight", "lr_c", "lr_g", "lr_dc", "lr_dd")
# the metric that reports each one's live value (docs/analysis.md, "Columns"): the loss weights as hp/*, a
# player's learning rate as lr/<player>, read from its optimiser
HPARAM_METRICS = {key: f"lr/{key[3:]}" if key.startswith("lr_") else f"hp/{key}" for key in MUTABLE_HPARAMS}


@dataclass(frozen=True)
class Config:
    # data
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    image_size: int = 16
    train_per_class: int = 10  # 0: every image a class has left after validation (and test_per_class)
    val_per_class: int = 30
    test_per_class: int = 0  # data without a test set of its own: 0 = the test split is what train and val leave
    # augmentation and the training regime
    aug: str = "learned"
    base_aug: str = "auto"  # the hand-made augmentation under G (aug=learned only); auto: the pilot's choice
    pilot_share: float = 1.0  # base_aug=auto: each hand-made augmentation trains C alone for this share of
    # `epochs`; G stands on the one with the best validation accuracy (raydaug/train.py, pilot). At 1 the
    # pilot's arms are the hand-made baselines themselves; shorter pilots favour the weak ones (study log)
    pilot_prior: str = "randaugment"  # base_aug=auto: G stands on this one unless the validation-best beats it
    # by a paired test on the validation images (raydaug/pilot_choice.py); none: the validation-best alone
    joint: bool = True
    g_checkpoint: str = ""
    # players (Table 3 ablation switches)
    use_stn: bool = True
    use_enc: bool = True
    use_dec: bool = True
    use_dc: bool = True
    use_dd: bool = True
    use_gadv: bool = True
    gadv_form: str = "paper"
    div_weight: float = 0.003  # mode-seeking term on G: two noises must give two images (0 = the paper)
    # keeping G class-preserving on few images (extensions of the paper, docs/reproducing.md; the paper's
    # method alone is preset=paper_method)
    teacher_weight: float = 1.0  # weight of CE(teacher(G(x)), y) in L_G; the teacher is an EMA of C
    teacher_decay: float = 0.99  # EMA decay of the teacher (also the reference of aug/label_kept)
    eval_ema: bool = True  # acc/* (best checkpoint, PBT's metric) measure the EMA of C, for every aug
    disc_aug_p: float = 0.0  # probability of a differentiable translation + cutout of each DC/DD input
    stn_bound: float = 0.0  # θ = I + stn_bound·tanh(·) entrywise; 0 = unbounded (the paper)
    res_bound: float = 0.0  # U-Net residual = res_bound·tanh(·) in normalised units; 0 = unbounded
    g_every: int = 1  # G, DC and DD update on every g_every-th step; C trains on G(x) at every step
    soft_weight: float = 0.0  # C learns G(x) from (1−w)·CE(·, y) + w·CE(·, teacher's softmax); 0 = hard labels
    g_class_cond: bool = False  # G(x, z, y): a learned per-class shift of z (the mean of G's noise per class)
    # the hand-made augmentations' magnitudes (raydaug/augment.py; defaults: the literature's)
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    augmix_severity: int = 3
    elastic_alpha: float = 34.0  # px at 28 px (Simard et al. 2003), scaled with the image size
    elastic_sigma: float = 4.0
    # loss weights and optimisers
    alpha: float = 0.1
    beta: float = 0.05
    gamma: float = 0.005
    lr_c: float = 1e-3
    lr_g: float = 5e-4
    lr_dc: float = 5e-4
    lr_dd: float = 5e-4
    adam_beta1: float = 0.5
    weight_decay_c: float = 1e-4
    # sizes
    batch_size: int = 25
    epochs: int = 200
    noise_dim: int = 32
    noise_std: float = 1.0
    ngf: int = 16
    classifier: str = "small"
    disc: str = "small"
    # run
    seed: int = 0
    replicate: int = 0  # a re-run on the same split: 0 trains from seed; k > 0 from a seed derived from (seed, k)
    eval_every: int = 5
    checkpoint_every: int = 25
    device: str = "auto"
    compile: bool = False
    amp: bool = False  # bf16 autocast for the training step (CUDA, and CPUs with bf16 support)
    preset: str = ""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        """Build a validated Config. ``preset`` (comma-separated names) is applied first, then the
        explicit keys, so ``--set preset=paper_cifar10 --set epochs=10`` does what it says."""
        unknown = sorted(set(values) - set(FIELD_TYPES))
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(FIELD_TYPES))}")
        names = preset_names(coerce("preset", values["preset"])) if "preset" in values else []
        merged = {**{key: value for name in names for key, value in PRESETS[name].items()}, **values}
        config = cls(**{key: coerce(key, value) for key, value in merged.items()})
        config.validate()
        return config

    @classmethod
    def from_logged(cls, values: Mapping[str, Any], **overrides: Any) -> Config:
        """The Config of a config a run logged (a checkpoint's, a schedule's), migrated from the version it
        was logged at (raydaug/migrations.py); its presets are already expanded. One that trained a feature
        removed since raises a :class:`ConfigError` naming the key: this version cannot rebuild it."""
        return cls.from_dict({**migrate(values), "preset": "", **overrides})

    def to_logged(self) -> dict[str, Any]:
        """:meth:`to_dict` with the config version, the form every log keeps (:meth:`from_logged` reads it)."""
        return {**self.to_dict(), VERSION_KEY: CONFIG_VERSION}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        """A new validated Config with ``changes`` applied (presets are not re-applied)."""
        values = self.to_dict()
        values.update(changes)
        values["preset"] = ""  # already expanded into the fields
        config = Config.from_dict(values)
        return dataclasses.replace(config, preset=changes.get("preset", self.preset))

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        for key, allowed in ALLOWED_VALUES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not allowed; choose one of {', '.join(allowed)}")
        for key, text in RANGES.items():
            value = getattr(self, key)
            if not (math.isfinite(value) and INTERVALS[text](value)):
                raise ConfigError(f"{key}={value} is out of range; it must be {text}")
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ConfigError(f"image_size={self.image_size} is not supported: the nets downsample by 2 down to "
                              f"4x4, allowed values: {list(SUPPORTED_IMAGE_SIZES)}")
        if self.checkpoint_every % self.eval_every:
            raise ConfigError(f"checkpoint_every={self.checkpoint_every} must be a multiple of "
                              f"eval_every={self.eval_every}: checkpoints are taken at evaluations")
        problem = classifier_spec_error(self.classifier)
        if problem:
            raise ConfigError(f"classifier={self.classifier!r} is not allowed; {problem}")
        if "badgan" in (self.classifier, self.disc) and self.image_size < 16:
            raise ConfigError(f"classifier=badgan / disc=badgan needs image_size ≥ 16 (got {self.image_size})")
        if self.dataset not in USER_DATASETS:  # a user's images are counted when they are read
            self._check_counts(DATASET_TRAIN_LIMIT[self.dataset])
        if self.aug == "learned" and not (self.use_stn or self.use_dec):
            raise ConfigError("aug=learned needs a generator: at least one of use_stn, use_dec must be true "
                              "(use aug=none for the classifier alone)")
        if self.aug == "learned" and self.use_enc and not self.use_dec:
            raise ConfigError("use_enc=true needs use_dec=true: ENC is the encoder half of the U-Net")
        if not self.joint:
            if self.aug != "learned":
                raise ConfigError("joint=false (C on a frozen G) only makes sense with aug=learned")
            if not self.g_checkpoint:
                raise ConfigError("joint=false needs g_checkpoint=PATH, the frozen generator's checkpoint")

    def _check_counts(self, limit: int) -> None:
        """Per-class counts against the smallest class of a built-in dataset."""
        asked = self.train_per_class + self.val_per_class + self.test_per_class
        if asked > limit:
            test = f" + test_per_class={self.test_per_class}" if self.test_per_class else ""
            raise ConfigError(f"train_per_class={self.train_per_class} + val_per_class={self.val_per_class}{test} "
                              f"exceeds the {limit} training images per class that dataset={self.dataset} has for "
                              "its smallest class")
        if self.dataset in EMBEDDED_DATASETS and not self.test_per_class and asked == limit:
            raise ConfigError(
                f"train_per_class={self.train_per_class} + val_per_class={self.val_per_class} leaves no test "
                f"image: dataset={self.dataset} has {limit} images in its smallest class and its test split is "
                f"the rest of them (at most {limit - 1} per class for train + val)")

    # ------------------------------------------------------------------ derived
    @property
    def pilot_epochs(self) -> int:
        """Epochs each hand-made augmentation trains for in the pilot of ``base_aug=auto``."""
        return max(1, round(self.pilot_share * self.epochs))

    @property
    def trains_generator(self) -> bool:
        return self.aug == "learned" and self.joint

    @property
    def training_seed(self) -> int:
        """The seed of the players' weights, batch order, noise, dropout and hand-made augmentation:
        ``seed`` itself for replicate 0 (so a run without replicates trains as it always did), else one
        derived from the split's seed and the replicate, so replicates on one split train differently."""
        return self.seed if self.replicate == 0 else zlib.crc32(f"{self.seed}:{self.replicate}".encode())

    @property
    def g_is_adversarial(self) -> bool:
        """With no adversarial term G is a plain STN trained through C's loss (Table 3 row b)."""
        return self.use_dc or self.use_dd or self.use_gadv


# ---------------------------------------------------------------------- coercion helpers
FIELD_TYPES: dict[str, type] = {f.name: hint for f, hint in zip(fields(Config), get_type_hints(Config).values())}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def coerce(key: str, value: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the declared type of ``key`` or raise."""
    if key not in FIELD_TYPES:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(FIELD_TYPES))}")
    kind = FIELD_TYPES[key]
    try:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is bool and isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if kind is int and not isinstance(value, bool):
            if isinstance(value, (int, str)) or (isinstance(value, float) and value.is_integer()):
                return int(value)
            if hasattr(value, "item"):  # numpy scalar from a Tune search space
                return coerce(key, value.item())
        if kind is float and not isinstance(value, bool):
            if isinstance(value, (int, float, str)):
                return float(value)
            if hasattr(value, "item"):
                return float(value.item())
        if kind is str and isinstance(value, str):
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"config key {key!r} expects {kind.__name__}, got {value!r} ({type(value).__name__})")
