"""One joint minibatch: DC, DD, G, C updated in sequence. Pure functions of (state, batch).

Each step returns its metrics as detached 0-d tensors on the training device (``dict[str, Tensor]``):
the trainer sums them on the device and reads them once per evaluation, so no step waits for the host.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .augment import HandMadeParams, hand_made
from .config import Config
from .data import Splits, disc_augment
from .losses import bce_real, discriminator_loss, fool_classifier, mode_seeking, soft_label_loss
from .state import TrainState, update_teacher

Metrics = dict[str, torch.Tensor]


def hand_made_params(config: Config) -> HandMadeParams:
    """The hand-made augmentations' magnitudes a config sets."""
    return HandMadeParams(**{key: getattr(config, key) for key in HandMadeParams.__dataclass_fields__})


def baseline_augment(name: str, images: torch.Tensor, config: Config) -> torch.Tensor:
    """A hand-made augmentation (raydaug/augment.py) at the config's magnitudes, drawn per image."""
    return hand_made(name, images, dataset=config.dataset, params=hand_made_params(config))


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block: BatchNorm uses (and never updates) its running statistics
    and dropout is off, so G's pass through C leaves C's buffers as they were and G learns from one
    deterministic function of its output."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _set_grads(params: list[torch.Tensor], loss: torch.Tensor) -> None:
    """``param.grad`` = d loss / d param, laid out like the parameter. ``autograd.grad`` returns what
    the backward kernels produced (a channels_last weight can get a contiguous gradient), and the fused
    CUDA Adam refuses gradients whose strides differ from their parameter's."""
    for param, grad in zip(params, torch.autograd.grad(loss, params)):
        param.grad = grad if grad.stride() == param.stride() else torch.empty_like(param).copy_(grad)


def _update(state: TrainState, player: str, loss: torch.Tensor) -> None:
    """Backpropagate ``loss`` into ``player``'s parameters only and take one optimiser step."""
    _set_grads(state.parameters(player), loss)
    state.optims[player].step()


def sample_noise(state: TrainState, n: int) -> torch.Tensor:
    return torch.randn(n, state.config.noise_dim, device=state.device) * state.config.noise_std


def disc_view(state: TrainState, images: torch.Tensor) -> torch.Tensor:
    """What a discriminator sees of ``images`` (real or fake, in its own step and in G's): the
    differentiable augmentation of ``disc_aug_p``, or the images themselves."""
    generator = state.nets["g"]
    return disc_augment(images, state.config.disc_aug_p, generator.background)


def dc_step(state: TrainState, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> Metrics:
    # one pass over real and fake together (no BatchNorm in the discriminators, so this is exact)
    logits = state.nets["dc"](disc_view(state, torch.cat([x, fake.detach()])), torch.cat([y, y]))
    loss = discriminator_loss(*logits.chunk(2))
    _update(state, "dc", loss)
    return {"loss/dc": loss.detach()}


def dd_step(state: TrainState, x: torch.Tensor, x_pair: torch.Tensor, fake: torch.Tensor) -> Metrics:
    logits = state.nets["dd"](disc_view(state, torch.cat([x, x])),
                              disc_view(state, torch.cat([x_pair, fake.detach()])))
    loss = discriminator_loss(*logits.chunk(2))
    _update(state, "dd", loss)
    return {"loss/dd": loss.detach()}


def generator_loss(state: TrainState, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor,
                   diversity: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """L_G = α·adv(DC) + β·adv(DD) + γ·(fool C), each term present only when its switch is on, plus the
    optional mode-seeking term ``div_weight · ms(G(x,z1), G(x,z2))`` given ``diversity = (fake2, z1, z2)``
    and the teacher term ``teacher_weight · CE(teacher(G(x)), y)``. DC and DD see their augmented view
    of ``fake``; C is evaluated in eval mode (its buffers stay as they were, no dropout)."""
    config = state.config
    loss = fake.new_zeros(())
    if diversity is not None:
        fake2, z1, z2 = diversity
        loss = loss + config.div_weight * mode_seeking(fake, fake2, z1, z2)
    if config.use_dc:
        loss = loss + config.alpha * bce_real(state.nets["dc"](disc_view(state, fake), y))
    if config.use_dd:
        loss = loss + config.beta * bce_real(state.nets["dd"](disc_view(state, x), disc_view(state, fake)))
    if config.use_gadv:
        with evaluating(state.nets["c"]) as c:
            loss = loss + config.gamma * fool_classifier(c(fake), y, config.gadv_form)
    if config.teacher_weight > 0:
        loss = loss + config.teacher_weight * F.cross_entropy(state.teacher(fake), y)
    return loss


def g_step(state: TrainState, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor,
           diversity: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> Metrics:
    """``fake`` must carry G's graph; the discriminators are evaluated after their own updates."""
    loss = generator_loss(state, x, y, fake, diversity)
    _update(state, "g", loss)
    return {"loss/g": loss.detach()}


def c_step(state: TrainState, real: torch.Tensor, y: torch.Tensor, augmented: torch.Tensor | None,
           train_generator: bool = False) -> Metrics:
    """CE on real and augmented images (learned aug), or on the augmented batch alone (baselines,
    ``real`` is then that batch and ``augmented`` is None). With ``soft_weight`` > 0 the augmented images'
    CE is mixed with the soft CE against the EMA teacher's prediction on them (:func:`soft_label_loss`).
    With ``train_generator`` the same loss also updates G: the plain STN of Table 3 row b, trained as an
    invariance rather than adversarially."""
    c = state.nets["c"]
    images = real if augmented is None else torch.cat([real, augmented])
    labels = y if augmented is None else torch.cat([y, y])
    logits = c(images)
    if augmented is None or state.config.soft_weight == 0:
        loss = F.cross_entropy(logits, labels)
    else:
        with torch.no_grad(), evaluating(state.teacher) as teacher:
            targets = teacher(augmented)
        real_logits, augmented_logits = logits.split([real.shape[0], augmented.shape[0]])
        loss = torch.cat([F.cross_entropy(real_logits, y, reduction="none"),
                          soft_label_loss(augmented_logits, y, targets, state.config.soft_weight)]).mean()
    if train_generator:
        _set_grads(state.parameters("c") + state.parameters("g"), loss)
        state.optims["g"].step()
        state.optims["c"].step()
    else:
        _update(state, "c", loss)
    hits = (logits.detach().argmax(dim=1) == labels).float()
    metrics = {"loss/c": loss.detach()}
    if augmented is not None:
        metrics["acc/aug"] = hits[real.shape[0]:].mean()
    return metrics


def train_step(state: TrainState, splits: Splits, raw: torch.Tensor, y: torch.Tensor,
               raw_pair: torch.Tensor | None) -> Metrics:
    """One minibatch of the whole game. ``raw`` are [0, 1] images; ``raw_pair`` same-class partners. G is
    called as G(x, z, y) everywhere: a class-conditional G (``g_class_cond``) reads y, any other ignores it."""
    config = state.config
    metrics: Metrics = {}
    if config.aug != "learned":
        augmented = baseline_augment(config.aug, raw, config)
        metrics.update(c_step(state, splits.normalize(augmented), y, None))
        if config.aug != "none":
            with torch.no_grad():
                metrics["aug/l1"] = (augmented - raw).abs().mean() / splits.std.mean()
        update_teacher(state)
        state.step += 1
        return metrics
    base = state.base_aug
    if base != "none":  # G transforms the hand-made augmentation; DC and DD see it as real
        raw = baseline_augment(base, raw, config)
        if raw_pair is not None:
            raw_pair = baseline_augment(base, raw_pair, config)
    x = splits.normalize(raw)
    z = sample_noise(state, x.shape[0])
    generator = state.nets["g"]
    turn = state.step % config.g_every == 0  # G's (and the discriminators') turn to update
    adversarial = config.trains_generator and config.g_is_adversarial and turn
    cooperative = config.trains_generator and not config.g_is_adversarial and turn
    if adversarial or cooperative:
        fake = generator(x, z, y)
    else:
        with torch.no_grad():
            fake = generator(x, z, y)
    if "dc" in state.nets and turn:
        metrics.update(dc_step(state, x, y, fake))
    if "dd" in state.nets and turn:
        metrics.update(dd_step(state, x, splits.normalize(raw_pair), fake))
    if adversarial:
        diversity = None
        if config.div_weight > 0:
            z2 = sample_noise(state, x.shape[0])
            diversity = (generator(x, z2, y), z, z2)
        metrics.update(g_step(state, x, y, fake, diversity))
    metrics.update(c_step(state, x, y, fake if cooperative else fake.detach(), train_generator=cooperative))
    update_teacher(state)
    state.step += 1
    return metrics


def correct_predictions(state: TrainState, splits: Splits, images: torch.Tensor, labels: torch.Tensor,
                        chunk: int = 1024) -> torch.Tensor:
    """Per image, whether the evaluated classifier (the EMA of C with ``eval_ema``, else C itself) is right."""
    return classifier_correct(state.teacher if state.config.eval_ema else state.nets["c"], splits, images, labels,
                              chunk)


@torch.inference_mode()
def classifier_correct(classifier: nn.Module, splits: Splits, images: torch.Tensor, labels: torch.Tensor,
                       chunk: int = 1024) -> torch.Tensor:
    """Per image, whether ``classifier`` (in eval mode for the call) is right."""
    with evaluating(classifier) as c:
        return torch.cat([c(splits.normalize(images[start:start + chunk])).argmax(dim=1)
                          == labels[start:start + chunk] for start in range(0, images.shape[0], chunk)]
                         or [torch.zeros(0, dtype=torch.bool, device=images.device)])


def accuracy(state: TrainState, splits: Splits, images: torch.Tensor, labels: torch.Tensor,
             chunk: int = 1024) -> float:
    """Accuracy of the evaluated classifier: the EMA of C with ``eval_ema``, else C itself."""
    return float(correct_predictions(state, splits, images, labels, chunk).sum()) / max(1, images.shape[0])


# what each metric of augmentation_health measures (the analysis's health plots title their panels with it)
AUGMENTATION_HEALTH = {"aug/label_kept": "G(x) keeping its label", "aug/x_div": "G(x) varies with x",
                       "aug/l1": "mean |G(x,z) − x|", "aug/affine_dev": "mean ‖θ − I‖ (STN)",
                       "aug/z_div": "mean |G(x,z1) − G(x,z2)|"}
LABEL_KEPT_MIN_SHARE = 4  # aug/label_kept needs the teacher to know at least 1/4 of the batch


@torch.inference_mode()
def augmentation_health(state: TrainState, x: torch.Tensor, y: torch.Tensor, z1: torch.Tensor,
                        z2: torch.Tensor) -> Metrics:
    """On a fixed batch of normalised training images ``x`` (labels ``y``) and fixed noise:
    ``aug/l1`` mean |G(x,z) − x|; ``aug/affine_dev`` mean ‖θ − I‖; ``aug/z_div`` mean |G(x,z1) − G(x,z2)|;
    ``aug/x_div`` how much G(x) still depends on x: mean |G(x_i) − G(x_j)| over pairs of different
    images relative to mean |x_i − x_j| (1 for the identity, 0 for a G that gives one image for every
    input); ``aug/label_kept`` the fraction of G(x) that the EMA teacher still gives label y, among the x
    it classifies correctly (so an untrained teacher early in a run does not read as a lost label; NaN
    while it classifies fewer than a quarter of them: a share of a handful of images is noise)."""
    generator = state.nets["g"]
    fake1, theta = generator.transform(x, z1, y)
    fake2 = generator(x, z2, y)
    metrics = {"aug/l1": (fake1 - x).abs().mean(), "aug/z_div": (fake1 - fake2).abs().mean()}
    if x.shape[0] > 1:
        metrics["aug/x_div"] = ((fake1 - fake1.roll(1, dims=0)).abs().mean()
                                / (x - x.roll(1, dims=0)).abs().mean().clamp_min(1e-8))
    if theta is not None:
        metrics["aug/affine_dev"] = (theta - generator.stn.identity).flatten(1).norm(dim=1).mean()
    if state.teacher is not None:
        known = state.teacher(x).argmax(dim=1) == y
        kept = (state.teacher(fake1).argmax(dim=1) == y) & known
        enough = known.sum() >= max(1, x.shape[0] // LABEL_KEPT_MIN_SHARE)
        metrics["aug/label_kept"] = (kept.sum() / known.sum().clamp_min(1)).where(
            enough, torch.full((), math.nan, device=x.device))
    return metrics


def evaluate(state: TrainState, splits: Splits) -> dict[str, float]:
    return {
        "acc/train": accuracy(state, splits, splits.train.images, splits.train.labels),
        "acc/val": accuracy(state, splits, splits.val.images, splits.val.labels) if len(splits.val) else float("nan"),
        "acc/test": accuracy(state, splits, splits.test.images, splits.test.labels),
    }
