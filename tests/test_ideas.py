"""Two ideas from the literature as config keys: soft targets from the EMA teacher for C's augmented half
(``soft_weight``) and a class-conditional generator (``g_class_cond``). Off by default, where they leave the
step as it was."""
import pytest
import torch
import torch.nn.functional as F

from raydaug.checkpoint import load_checkpoint
from raydaug.config import Config
from raydaug.errors import ConfigError
from raydaug.nets import build_generator
from raydaug.state import apply_hparams
from raydaug.steps import augmentation_health, c_step, generator_loss, sample_noise
from raydaug.train import Trainer
from tests.helpers import tiny


def _batch(trainer: Trainer, n: int = 4):
    """``n`` normalised training images of ``n`` different classes, their labels, and G(x) (no graph)."""
    train, state = trainer.splits.train, trainer.state
    index = torch.stack([torch.nonzero(train.labels == k)[0, 0] for k in range(n)])
    x, y = trainer.splits.normalize(train.images[index]), train.labels[index]
    with torch.no_grad():
        fake = state.nets["g"](x, sample_noise(state, n), y)
    return x, y, fake


def _trained(**changes) -> Trainer:
    """A tiny run after two epochs: the zero-initialised output layers of G (and its class embedding) have
    moved, and the EMA teacher is no longer C at initialisation."""
    torch.manual_seed(0)
    trainer = Trainer(tiny(**changes))
    for _ in range(2):
        trainer.train_epoch()
    return trainer


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in [*module.parameters(), *module.buffers()]]


# ---------------------------------------------------------------------- soft targets (soft_weight)
def test_by_default_c_learns_the_augmented_half_from_the_hard_label_alone():
    trainer = _trained()
    assert trainer.config.soft_weight == 0
    state = trainer.state
    x, y, fake = _batch(trainer)
    torch.manual_seed(1)  # the same dropout draws in both passes of C
    expected = F.cross_entropy(state.nets["c"](torch.cat([x, fake])), torch.cat([y, y]))
    torch.manual_seed(1)
    assert torch.equal(c_step(state, x, y, fake)["loss/c"], expected)


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_c_learns_the_augmented_half_from_the_teachers_distribution(weight):
    """Hand-computed: half the loss is CE(C(x), y); the other half (1 − w)·CE(C(G(x)), y) − w·Σ p·log q,
    p the teacher's softmax on G(x) (eval mode), q C's."""
    trainer = _trained(soft_weight=weight)
    state = trainer.state
    x, y, fake = _batch(trainer)
    with torch.no_grad():
        p = state.teacher(fake).softmax(dim=1)
    torch.manual_seed(1)
    log_q = state.nets["c"](torch.cat([x, fake])).log_softmax(dim=1)
    n = x.shape[0]
    hard_real = -log_q[torch.arange(n), y]
    hard_aug = -log_q[n + torch.arange(n), y]
    soft_aug = -(p * log_q[n:]).sum(dim=1)
    expected = (hard_real.sum() + ((1 - weight) * hard_aug + weight * soft_aug).sum()) / (2 * n)
    hard = (hard_real.sum() + hard_aug.sum()) / (2 * n)
    assert not torch.allclose(expected, hard, atol=1e-4)  # the teacher is not one-hot here: the test has teeth
    torch.manual_seed(1)
    loss = c_step(state, x, y, fake)["loss/c"]
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-6)


def test_the_teacher_pass_of_the_soft_targets_is_in_eval_mode_without_gradient_and_leaves_the_teacher_as_is():
    """In the cooperative regime (Table 3 row b) G(x) carries G's graph into C's step: a teacher pass with
    gradient on would let C's loss push G through the targets; one in train mode would move its BatchNorm
    statistics."""
    trainer = _trained(soft_weight=1.0, use_dc=False, use_dd=False, use_gadv=False)
    state = trainer.state
    x, y, _ = _batch(trainer)
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]), y)
    assert fake.requires_grad
    seen = []
    state.teacher.register_forward_hook(
        lambda module, args, out: seen.append((torch.is_grad_enabled(), out.requires_grad, module.training)))
    before = _tensors(state.teacher)
    c_step(state, x, y, fake, train_generator=True)
    assert seen == [(False, False, False)]
    assert all(torch.equal(a, b) for a, b in zip(before, _tensors(state.teacher)))
    assert all(p.grad is None for p in state.teacher.parameters())


# ---------------------------------------------------------------------- class-conditional G (g_class_cond)
def test_by_default_g_has_no_class_input_and_ignores_y():
    """The default G's weights (so its checkpoints) are those of before the key, and passing y changes nothing."""
    trainer = _trained()
    generator = trainer.state.nets["g"]
    built = build_generator(trainer.config, trainer.splits.channels, generator.background, num_classes=10)
    assert generator.class_embedding is None and built.class_embedding is None
    assert not [name for name in generator.state_dict() if "class" in name]
    x, y, _ = _batch(trainer)
    z = sample_noise(trainer.state, x.shape[0])
    with torch.no_grad():
        assert torch.equal(generator(x, z, y), generator(x, z))


def test_a_class_conditional_g_starts_as_the_unconditional_one():
    """Its class embedding starts at zero and draws no random numbers: every weight of the run is as without it."""
    plain, conditional = Trainer(tiny()), Trainer(tiny(g_class_cond=True))
    for name, net in plain.state.nets.items():
        other = conditional.state.nets[name].state_dict()
        assert all(torch.equal(value, other[key]) for key, value in net.state_dict().items()), name
    assert torch.count_nonzero(conditional.state.nets["g"].class_embedding.weight) == 0


def test_a_class_conditional_g_transforms_one_image_differently_per_class_and_learns_its_embedding():
    trainer = _trained(g_class_cond=True)
    state = trainer.state
    generator = state.nets["g"]
    embedding = generator.class_embedding.weight
    assert torch.count_nonzero(embedding) > 0  # training moved it from zero
    x, y, _ = _batch(trainer)
    z = sample_noise(state, x.shape[0])
    (grad,) = torch.autograd.grad(generator_loss(state, x, y, generator(x, z, y)), [embedding])
    assert (grad[y].abs().sum(dim=1) > 0).all()  # each class of the batch gets a gradient
    with torch.no_grad():
        embedding.copy_(torch.randn_like(embedding))  # class codes as far apart as two noises
        as_given, relabelled, renoised = generator(x, z, y), generator(x, z, y.roll(1)), generator(x, -z, y)
    moved = (as_given - relabelled).abs().amax(dim=(1, 2, 3))
    assert (moved > 0.1 * (as_given - renoised).abs().amax(dim=(1, 2, 3))).all()
    with pytest.raises(TypeError, match="G\\(x, z, y\\)"):
        generator(x, z)
    health = augmentation_health(state, trainer.eval_x, trainer.eval_y, *trainer.eval_z[:2])
    assert torch.isfinite(health["aug/l1"])


def test_a_class_conditional_run_with_soft_targets_round_trips_through_a_checkpoint(tmp_path):
    config = tiny(g_class_cond=True, soft_weight=0.5)
    trainer = _trained(**{key: getattr(config, key) for key in ("g_class_cond", "soft_weight")})
    trainer.save(tmp_path / "state.pt")
    restored = Trainer(config)
    restored.load_payload(load_checkpoint(str(tmp_path / "state.pt")))
    assert restored.config.g_class_cond and restored.config.soft_weight == 0.5
    for name, net in trainer.state.nets.items():
        other = restored.state.nets[name].state_dict()
        assert all(torch.equal(value, other[key]) for key, value in net.state_dict().items()), name
    x, y, _ = _batch(trainer)
    z = sample_noise(trainer.state, x.shape[0])
    with torch.no_grad():
        assert torch.equal(trainer.state.nets["g"](x, z, y), restored.state.nets["g"](x, z, y))
    restored.train_epoch()  # and it trains on


def test_pbt_cannot_switch_a_running_trials_g_to_class_conditional():
    trainer = Trainer(tiny())
    with pytest.raises(ConfigError, match="g_class_cond"):
        apply_hparams(trainer.state, trainer.config.replace(g_class_cond=True))


def test_the_keys_are_validated():
    with pytest.raises(ConfigError, match="soft_weight"):
        Config.from_dict({"soft_weight": 1.5})
    assert Config.from_dict({"g_class_cond": "true"}).g_class_cond is True
