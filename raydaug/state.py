"""TrainState: the four players, their optimisers, RNG and counters; build, re-tune, save, load."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import Config
from .errors import CheckpointError, ConfigError
from .nets import build_classifier, build_discriminators, build_generator

PLAYERS = ("g", "dc", "dd", "c")
# keys whose change alters the nets or the data: a checkpoint cannot cross them (the bounds are part of
# G's function, fixed when it is built)
ARCHITECTURE_KEYS = ("dataset", "image_size", "aug", "joint", "use_stn", "use_enc", "use_dec", "use_dc",
                     "use_dd", "noise_dim", "ngf", "classifier", "disc", "stn_bound", "res_bound", "g_class_cond")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    return torch.device(name)


@dataclass
class TrainState:
    config: Config
    device: torch.device
    nets: dict[str, nn.Module]
    optims: dict[str, torch.optim.Optimizer]
    # EMA of C (aug=learned or eval_ema): G's teacher term, aug/label_kept, and with eval_ema what acc/* measure
    teacher: nn.Module | None = None
    epoch: int = 0
    step: int = 0
    best: dict[str, float] = field(default_factory=lambda: {"acc/val": -1.0, "acc/test": -1.0, "epoch": -1})
    # the evaluated classifier's weights at ``best`` (what `raydaug export` hands out), on the CPU
    best_classifier: dict[str, torch.Tensor] | None = None
    # base_aug=auto: the pilot's outcome, {"choice": name, "epochs": n, "acc_val": {name: score}}; None until it ran
    pilot: dict[str, Any] | None = None

    @property
    def needs_pilot(self) -> bool:
        return self.config.aug == "learned" and self.config.base_aug == "auto" and self.pilot is None

    @property
    def base_aug(self) -> str:
        """The hand-made augmentation under G: ``base_aug``, or with ``auto`` the pilot's choice."""
        if self.config.base_aug != "auto":
            return self.config.base_aug
        if self.pilot is None:
            raise RuntimeError("base_aug=auto: the pilot has not run (Trainer.train_epoch runs it first)")
        return self.pilot["choice"]

    def parameters(self, name: str) -> list[nn.Parameter]:
        return list(self.nets[name].parameters()) if name in self.nets else []


def _lr(config: Config, player: str) -> float:
    return getattr(config, f"lr_{player}")


def _adam(config: Config, player: str, params) -> torch.optim.Optimizer:
    weight_decay = config.weight_decay_c if player == "c" else 0.0
    beta1 = 0.9 if player == "c" else config.adam_beta1
    return torch.optim.Adam(params, lr=_lr(config, player), betas=(beta1, 0.999), weight_decay=weight_decay,
                            fused=True)


def build_state(config: Config, channels: int, num_classes: int, background: torch.Tensor,
                device: torch.device | None = None) -> TrainState:
    """Build every enabled player (none for a disabled one) with its optimiser, seeded by
    ``config.training_seed``."""
    device = device or resolve_device(config.device)
    torch.manual_seed(config.training_seed)
    nets: dict[str, nn.Module] = {}
    if config.aug == "learned":
        if config.joint:
            nets["g"] = build_generator(config, channels, background, num_classes)
            dc, dd = build_discriminators(config.disc, channels, num_classes, config.image_size,
                                          config.use_dc, config.use_dd)
            if dc is not None:
                nets["dc"] = dc
            if dd is not None:
                nets["dd"] = dd
        else:
            nets["g"] = load_frozen_generator(config.g_checkpoint, channels, background, num_classes)
    nets["c"] = build_classifier(config.classifier, channels, num_classes, config.image_size)
    teacher = build_teacher(nets["c"]) if config.aug == "learned" or config.eval_ema else None
    for net in [*nets.values(), *([teacher] if teacher is not None else [])]:
        net.to(device, memory_format=torch.channels_last)
        if config.compile:
            net.compile()
    trainable = [name for name in nets if not (name == "g" and not config.joint)]
    optims = {name: _adam(config, name, nets[name].parameters()) for name in trainable}
    if not config.joint:
        nets["g"].requires_grad_(False)
    return TrainState(config=config, device=device, nets=nets, optims=optims, teacher=teacher)


def build_teacher(classifier: nn.Module) -> nn.Module:
    """The EMA teacher: a copy of C that gets no gradient, in eval mode (nothing trains it), moved only by
    :func:`update_teacher` (TeachAugment, Suzuki 2022). It starts as C at initialisation."""
    return copy.deepcopy(classifier).requires_grad_(False).eval()


@torch.no_grad()
def update_teacher(state: TrainState) -> None:
    """teacher ← d·teacher + (1 − d)·C for every parameter and floating-point buffer (BatchNorm's running
    statistics), integer buffers copied; no host sync. d = min(teacher_decay, (1 + step) / (10 + step)):
    early on the teacher follows C closely instead of averaging in its random initialisation."""
    if state.teacher is None:
        return
    weight = 1.0 - min(state.config.teacher_decay, (1.0 + state.step) / (10.0 + state.step))
    teacher, classifier = _plain(state.teacher), _plain(state.nets["c"])
    for mine, source in zip(_tensors(teacher), _tensors(classifier)):
        if mine.is_floating_point():
            mine.lerp_(source, weight)
        else:
            mine.copy_(source)


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def load_frozen_generator(path: str, channels: int, background: torch.Tensor,
                          num_classes: int | None = None) -> nn.Module:
    """G of another run's checkpoint, built with that run's config (Fig. 4's separate training)."""
    payload = load_checkpoint(checkpoint_file(path))
    if "g" not in payload["nets"]:
        raise CheckpointError(f"{path} holds no generator (was it a run with aug=learned?)")
    source = Config.from_logged(payload["config"])
    generator = build_generator(source, channels, background, num_classes)
    generator.load_state_dict(payload["nets"]["g"])
    return generator


def checkpoint_file(path: str) -> str:
    """Accept a checkpoint file or a folder holding ``state.pt``."""
    candidate = Path(path)
    return str(candidate / "state.pt") if candidate.is_dir() else str(candidate)


def apply_hparams(state: TrainState, config: Config) -> None:
    """Make ``config``'s α, β, γ, teacher weight and learning rates live (PBT calls this after every
    restore)."""
    changed = [key for key in ARCHITECTURE_KEYS if getattr(config, key) != getattr(state.config, key)]
    if changed:
        raise ConfigError(f"cannot change {changed} of a running trial: they define the networks")
    state.config = config
    for player, optim in state.optims.items():
        for group in optim.param_groups:
            group["lr"] = _lr(config, player)


def rng_state() -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _plain(module: nn.Module) -> nn.Module:
    return getattr(module, "_orig_mod", module)


def evaluated_classifier(state: TrainState) -> nn.Module:
    """The classifier acc/* measure: the EMA of C with ``eval_ema``, else C itself."""
    return _plain(state.teacher if state.config.eval_ema else state.nets["c"])


def keep_best_classifier(state: TrainState) -> None:
    """Copy the evaluated classifier's weights (at a new best validation score) off the device."""
    state.best_classifier = {name: tensor.detach().to("cpu", copy=True)
                             for name, tensor in evaluated_classifier(state).state_dict().items()}


def state_dict(state: TrainState) -> dict[str, Any]:
    return {
        "config": state.config.to_logged(),
        "nets": {name: _plain(net).state_dict() for name, net in state.nets.items()},
        "optims": {name: optim.state_dict() for name, optim in state.optims.items()},
        "teacher": _plain(state.teacher).state_dict() if state.teacher is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "best": dict(state.best),
        "best_classifier": state.best_classifier,
        "pilot": state.pilot,
        "rng": rng_state(),
    }


def load_state_dict(state: TrainState, payload: dict[str, Any], restore_rng: bool = True) -> None:
    """Load weights, optimiser moments, counters and RNG; then re-apply ``state.config``'s hparams so a
    PBT-mutated config wins over the learning rates stored inside the optimiser state."""
    saved = payload["config"]
    changed = [key for key in ARCHITECTURE_KEYS if saved.get(key) != getattr(state.config, key)]
    if changed:
        raise CheckpointError(f"checkpoint was made with different {changed}; it cannot be loaded here")
    try:
        for name, net in state.nets.items():
            _plain(net).load_state_dict(payload["nets"][name])
        for name, optim in state.optims.items():
            optim.load_state_dict(payload["optims"][name])
    except (KeyError, RuntimeError, ValueError) as error:  # e.g. a checkpoint of an older raydaug's nets
        raise CheckpointError(f"checkpoint does not fit this raydaug's players (made by another version?): "
                              f"{' '.join(str(error).split())[:400]}") from error
    if state.teacher is not None:
        if payload.get("teacher") is None:
            raise CheckpointError("checkpoint holds no EMA of C (made with eval_ema=false or before raydaug kept "
                                  "one); it cannot be loaded into a run that keeps one (aug=learned or eval_ema=true)")
        _plain(state.teacher).load_state_dict(payload["teacher"])
    state.epoch = int(payload["epoch"])
    state.step = int(payload["step"])
    state.best = dict(payload["best"])
    state.best_classifier = payload.get("best_classifier")  # absent from checkpoints of raydaug before export
    if state.config.base_aug == "auto" and payload.get("pilot") is not None:
        state.pilot = payload["pilot"]  # a resumed or exploiting trial stands G where the checkpoint's did
    if restore_rng:
        set_rng_state(payload["rng"])
    apply_hparams(state, state.config)
