"""The pieces that keep G a class-preserving augmentation on few images: the hand-made augmentation under
G, the discriminators' differentiable augmentation, the EMA teacher, bounded transforms, the collapse
metrics, and G's pass through C leaving C untouched."""
import dataclasses
import math

import pytest
import torch
from torch import nn

import raydaug.steps as steps
from raydaug.allowed import BASE_AUGS
from raydaug.analysis.comparison import HAND_MADE_KEYS
from raydaug.config import Config, ConfigError
from raydaug.state import update_teacher
from raydaug.steps import generator_loss, sample_noise, train_step
from raydaug.train import Trainer
from tests.helpers import TINY, tiny


def _batch(trainer: Trainer, n: int = 10):
    train = trainer.splits.train
    index = torch.arange(n)
    return train.images[index], train.labels[index], train.images[trainer._same_class_partners(index)]


def _record_inputs(trainer: Trainer, name: str) -> list[tuple[torch.Tensor, ...]]:
    seen: list[tuple[torch.Tensor, ...]] = []
    trainer.state.nets[name].register_forward_hook(lambda module, args, out: seen.append(
        tuple(arg.detach().clone() for arg in args)))
    return seen


def test_base_aug_is_what_c_dc_and_dd_see_as_real(monkeypatch):
    """With base_aug, every player's *real* input is base(x): C's real half, DC's real half and both
    images of DD's real pair in their own steps, and inside G's step DD's real image too, while DC judges
    G(base(x)); G transforms base(x). A recognisable stand-in for the hand-made augmentation (+0.25) shows
    where it went."""
    shifted = []
    monkeypatch.setattr(steps, "baseline_augment",
                        lambda name, images, dataset: shifted.append(name) or images + 0.25)
    trainer = Trainer(tiny(base_aug="light"))
    raw, y, pair = _batch(trainer)
    inputs = {name: _record_inputs(trainer, name) for name in ("c", "dc", "dd", "g")}
    fakes: list[torch.Tensor] = []
    trainer.state.nets["g"].register_forward_hook(lambda module, args, out: fakes.append(out.detach().clone()))
    train_step(trainer.state, trainer.splits, raw, y, pair)
    real, real_pair = trainer.splits.normalize(raw + 0.25), trainer.splits.normalize(pair + 0.25)
    n = raw.shape[0]
    assert shifted == ["light", "light"]  # the batch and DD's same-class partners
    assert torch.allclose(inputs["g"][0][0], real)
    assert torch.allclose(inputs["c"][-1][0][:n], real)  # C's own step (last): real half, then G(base(x))
    dc_own, dc_in_g = inputs["dc"]  # DC's step (real half, then fake), then G's step
    assert torch.allclose(dc_own[0][:n], real) and torch.allclose(dc_own[0][n:], fakes[0])
    assert torch.allclose(dc_in_g[0], fakes[0])  # in G's step DC judges G(base(x)), the fake of DC's own step
    (first, second), (real_in_g, fake_in_g) = inputs["dd"]  # DD's step, then G's step
    assert torch.allclose(first, torch.cat([real, real])) and torch.allclose(second[:n], real_pair)
    assert torch.allclose(real_in_g, real) and torch.allclose(fake_in_g, fakes[0])


def test_the_step_stands_g_on_the_named_base_or_on_the_pilots_choice(monkeypatch):
    """The training step augments with base_aug when it names one, and with base_aug=auto (the default) with
    the pilot's choice, never with "auto" itself; before the pilot ran, auto refuses to guess."""
    assert Config().base_aug == "auto"
    applied = []
    monkeypatch.setattr(steps, "baseline_augment", lambda name, images, dataset: applied.append(name) or images)
    trainer = Trainer(tiny(base_aug="auto"))
    raw, y, pair = _batch(trainer)
    with pytest.raises(RuntimeError, match="pilot has not run"):
        train_step(trainer.state, trainer.splits, raw, y, pair)
    trainer.state.pilot = {"choice": "elastic"}
    train_step(trainer.state, trainer.splits, raw, y, pair)
    trainer.state.config = trainer.config.replace(base_aug="light")
    train_step(trainer.state, trainer.splits, raw, y, pair)
    assert applied == ["elastic", "elastic", "light", "light"]  # the batch and DD's partners


def test_without_base_aug_the_reals_are_the_images_themselves():
    trainer = Trainer(tiny(base_aug="none"))
    raw, y, pair = _batch(trainer)
    seen = _record_inputs(trainer, "dc")
    train_step(trainer.state, trainer.splits, raw, y, pair)
    assert torch.allclose(seen[0][0][: raw.shape[0]], trainer.splits.normalize(raw))


def test_disc_augmentation_reaches_real_and_fake_in_both_steps(monkeypatch):
    """Every DC/DD input, real and fake, in the discriminators' steps and in G's, goes through the
    differentiable augmentation; a stand-in that negates the images marks what passed through it."""
    calls = []

    def negate(images, p, background):
        calls.append(p)
        return -images

    monkeypatch.setattr(steps, "disc_augment", negate)
    trainer = Trainer(tiny(disc_aug_p=0.4, base_aug="none"))
    raw, y, pair = _batch(trainer)
    inputs = {name: _record_inputs(trainer, name) for name in ("dc", "dd", "c")}
    fakes = []
    trainer.state.nets["g"].register_forward_hook(lambda module, args, out: fakes.append(out.detach().clone()))
    torch.manual_seed(0)
    train_step(trainer.state, trainer.splits, raw, y, pair)
    x, x_pair, fake = trainer.splits.normalize(raw), trainer.splits.normalize(pair), fakes[0]
    n = x.shape[0]
    assert calls and set(calls) == {0.4}
    (dc_step_in, _), (dc_g_in, _) = inputs["dc"]  # DC's own step, then G's step
    assert torch.allclose(dc_step_in, -torch.cat([x, fake]), atol=1e-6)
    assert torch.allclose(dc_g_in, -fake, atol=1e-6)
    (dd_first, dd_second), (dd_g_first, dd_g_second) = inputs["dd"]
    assert torch.allclose(dd_first, -torch.cat([x, x])) and torch.allclose(dd_second[:n], -x_pair)
    assert torch.allclose(dd_second[n:], -fake, atol=1e-6)
    assert torch.allclose(dd_g_first, -x) and torch.allclose(dd_g_second, -fake, atol=1e-6)
    # C is not a discriminator: its inputs are never augmented this way
    assert torch.allclose(inputs["c"][-1][0][:n], x)


def test_disc_augment_moves_and_cuts_each_image_and_passes_gradients():
    from raydaug.data import disc_augment

    torch.manual_seed(0)
    images = torch.rand(64, 1, 16, 16, requires_grad=True)
    background = torch.full((1, 1, 1, 1), -0.5)
    out = disc_augment(images, 1.0, background)
    cut = (out == -0.5).flatten(1).float().mean(dim=1)
    assert (cut > 0).all(), "every image is cut out at p=1"
    assert len({tuple(row.tolist()) for row in (out == -0.5).flatten(1).int()}) > 32, "a square per image"
    out.sum().backward()
    assert images.grad is not None and (images.grad.flatten(1).sum(dim=1) > 0).all()
    assert torch.equal(disc_augment(images, 0.0, background), images)
    half = disc_augment(images.detach(), 0.5, background)
    changed = (half != images.detach()).flatten(1).any(dim=1).float().mean()
    assert 0.5 < changed < 0.95  # roughly 1 − 0.5² of the images get at least one of the two


def test_g_step_leaves_c_buffers_untouched_and_sees_no_dropout():
    """G's step passes G(x) through C (the γ term) with C in eval mode: BatchNorm's running statistics (used at
    evaluation) are not fed G(x)-only batches, and dropout is off, so G learns from one deterministic function
    of its output. The small C has both, so the test can see them: every module of C is in eval mode whenever
    G's step calls it, its buffers are as they were after two G steps, and C is back in train mode."""
    trainer = Trainer(tiny(gamma=1.0, use_dc=False, use_dd=False))  # DC and DD keep their dropout
    trainer.train_epoch()
    state = trainer.state
    c = state.nets["c"]
    kinds = {type(module) for module in c.modules()}
    assert nn.BatchNorm2d in kinds and nn.Dropout in kinds
    buffers = {name: buffer.clone() for name, buffer in c.named_buffers()}
    assert any(name.endswith("running_mean") for name in buffers) and any(b.abs().sum() > 0 for b in buffers.values())
    modes: list[bool] = []
    c.register_forward_pre_hook(lambda module, args: modes.extend(m.training for m in module.modules()))
    assert c.training
    raw, y, _ = _batch(trainer)
    x = trainer.splits.normalize(raw)
    for _ in range(2):
        fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
        steps.g_step(state, x, y, fake)
    assert modes and not any(modes), "G's step ran C (its BatchNorm or dropout) in train mode"
    assert all(torch.equal(buffers[name], buffer) for name, buffer in c.named_buffers())
    assert c.training, "C is back in train mode afterwards"


def test_teacher_gets_no_gradient_and_moves_only_by_ema():
    config = tiny(teacher_weight=1.0, teacher_decay=0.9)
    trainer = Trainer(config)
    trainer.train_epoch()
    state = trainer.state
    teacher = state.teacher
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training
    raw, y, pair = _batch(trainer)
    before = [t.detach().clone() for t in [*teacher.parameters(), *teacher.buffers()]]
    steps_before = state.step
    train_step(state, trainer.splits, raw, y, pair)
    assert all(p.grad is None for p in teacher.parameters())
    weight = 1.0 - min(0.9, (1.0 + steps_before) / (10.0 + steps_before))
    after_c = [*state.nets["c"].parameters(), *state.nets["c"].buffers()]
    for old, new, source in zip(before, [*teacher.parameters(), *teacher.buffers()], after_c):
        if old.is_floating_point():
            assert torch.allclose(new, old + weight * (source.detach() - old), atol=1e-6)
        else:
            assert torch.equal(new, source)
    # nothing else moves it: the discriminators' and G's updates leave it as it was
    snapshot = [t.detach().clone() for t in teacher.parameters()]
    fake = state.nets["g"](trainer.splits.normalize(raw), sample_noise(state, raw.shape[0]))
    steps.g_step(state, trainer.splits.normalize(raw), y, fake)
    assert all(torch.equal(a, b) for a, b in zip(snapshot, teacher.parameters()))


def test_teacher_term_is_in_g_loss_with_its_weight():
    trainer = Trainer(tiny(teacher_weight=0.0))
    trainer.train_epoch()
    state = trainer.state
    raw, y, _ = _batch(trainer)
    x = trainer.splits.normalize(raw)
    for net in state.nets.values():
        net.eval()
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    without = generator_loss(state, x, y, fake)
    state.config = state.config.replace(teacher_weight=2.0)
    with_teacher = generator_loss(state, x, y, fake)
    expected = 2.0 * torch.nn.functional.cross_entropy(state.teacher(fake), y)
    assert torch.allclose(with_teacher - without, expected, atol=1e-5)
    grads = torch.autograd.grad(with_teacher, list(state.nets["g"].parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_teacher_is_checkpointed(tmp_path):
    trainer = Trainer(tiny(teacher_decay=0.5))
    trainer.train_iteration()
    trainer.save(tmp_path / "state.pt")
    fresh = Trainer(tiny(teacher_decay=0.5))
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state.teacher.parameters(),
                                                      trainer.state.teacher.parameters()))
    fresh.restore(tmp_path / "state.pt")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state.teacher.parameters(),
                                                  trainer.state.teacher.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state.teacher.buffers(), trainer.state.teacher.buffers()))


def test_update_teacher_is_a_no_op_for_a_baseline_without_eval_ema():
    trainer = Trainer(tiny(aug="light", eval_ema=False))
    assert trainer.state.teacher is None
    update_teacher(trainer.state)  # nothing to update, nothing raised


def test_g_every_updates_g_and_the_discriminators_on_their_turns_only_and_c_at_every_step():
    trainer = Trainer(tiny(g_every=3))
    state = trainer.state
    moved = {name: [] for name in ("g", "dc", "dd", "c")}
    for _ in range(6):
        before = {name: [p.detach().clone() for p in state.nets[name].parameters()] for name in moved}
        raw, y, pair = _batch(trainer)
        metrics = train_step(state, trainer.splits, raw, y, pair)
        for name in moved:
            moved[name].append(not all(torch.equal(a, b) for a, b in zip(before[name], state.nets[name].parameters())))
        assert ("loss/g" in metrics) == moved["g"][-1]  # the logged means count G's turns only
    for name in ("g", "dc", "dd"):
        assert moved[name] == [True, False, False, True, False, False], name
    assert all(moved["c"])


def test_a_checkpoint_without_the_ema_is_refused_by_a_run_that_keeps_one(tmp_path):
    from raydaug.errors import CheckpointError

    Trainer(tiny(aug="light", eval_ema=False)).save(tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="holds no EMA of C"):
        Trainer(tiny(aug="light")).restore(tmp_path / "state.pt")
    Trainer(tiny(aug="light", eval_ema=False)).restore(tmp_path / "state.pt")  # the same protocol loads


@pytest.mark.parametrize("aug", ["light", "learned"])
def test_eval_ema_measures_the_ema_of_c_and_a_baselines_ema_follows_its_c(aug):
    """With eval_ema every aug keeps an EMA of C, moved by each training step, and acc/* measure it: wrecking
    C leaves them as they were; without eval_ema they measure C and follow the wreck."""
    trainer = Trainer(tiny(aug=aug, teacher_decay=0.9))
    trainer.train_epoch()
    state, splits = trainer.state, trainer.splits
    before = [t.detach().clone() for t in state.teacher.parameters()]
    raw, y, pair = _batch(trainer)
    train_step(state, splits, raw, y, pair)
    assert not all(torch.equal(a, b) for a, b in zip(before, state.teacher.parameters())), "a step moves the EMA"
    measured = steps.evaluate(state, splits)
    with torch.no_grad():
        for p in state.nets["c"].parameters():
            p.normal_()
    assert steps.evaluate(state, splits) == measured
    state.config = state.config.replace(eval_ema=False)
    assert steps.evaluate(state, splits) != measured


@pytest.mark.parametrize("stn_bound, res_bound", [(0.2, 0.5), (0.05, 0.1)])
def test_bounds_hold_at_extreme_parameters(stn_bound, res_bound):
    trainer = Trainer(tiny(stn_bound=stn_bound, res_bound=res_bound))
    generator = trainer.state.nets["g"]
    x, z = trainer.eval_x, trainer.eval_z[0]
    with torch.no_grad():
        out0, theta0 = generator.transform(x, z)
        assert torch.allclose(theta0, generator.stn.identity.expand_as(theta0)) and torch.allclose(out0, x, atol=1e-5)
        for param in generator.parameters():
            param.mul_(0).add_(torch.randn_like(param) * 50.0)
        moved, theta = generator.transform(x, z)
        stn_only, _ = generator.stn(x, z, generator.background)
    deviation = (theta - generator.stn.identity).abs()
    assert deviation.max() <= stn_bound + 1e-6 and deviation.max() > 0.9 * stn_bound  # reached, never passed
    residual = (moved - stn_only).abs()
    assert residual.max() <= res_bound + 1e-6 and residual.max() > 0.9 * res_bound


def test_unbounded_transforms_are_the_paper_default():
    trainer = Trainer(tiny())
    generator = trainer.state.nets["g"]
    with torch.no_grad():
        generator.stn.head[-1].bias.fill_(3.0)
        _, theta = generator.transform(trainer.eval_x, trainer.eval_z[0])
    assert torch.allclose(theta - generator.stn.identity, torch.full_like(theta, 3.0))


@pytest.mark.parametrize("values, fragment", [
    ({"base_aug": "mixup"}, "base_aug='mixup' is not allowed"),
    ({"teacher_weight": -1.0}, "teacher_weight=-1.0 is out of range"),
    ({"teacher_decay": 1.0}, "teacher_decay=1.0 is out of range"),
    ({"disc_aug_p": 1.5}, "disc_aug_p=1.5 is out of range"),
    ({"stn_bound": float("inf")}, "stn_bound=inf is out of range"),
    ({"res_bound": -0.1}, "res_bound=-0.1 is out of range"),
    ({"eval_ema": "maybe"}, "'eval_ema' expects bool"),
    ({"g_every": 0}, "g_every=0 is out of range"),
])
def test_new_keys_reject_bad_values(values, fragment):
    with pytest.raises(ConfigError) as error:
        Config.from_dict({**TINY, **values})
    assert fragment in str(error.value)


def test_collapse_metrics_tell_a_constant_generator_from_the_identity(monkeypatch):
    """aug/x_div is 1 for the identity and 0 when G gives one image for every input; aug/label_kept, the
    share of the images the teacher knows whose G(x) it still labels right, is 1 for the identity and
    about one class in ten for a constant."""
    trainer = Trainer(tiny(train_per_class=5))
    for _ in range(6):  # a teacher that knows something
        trainer.train_epoch()
    state = trainer.state
    generator = state.nets["g"]
    with torch.no_grad():  # G back to the identity (its output layers start at zero)
        for layer in (generator.stn.head[-1], generator.unet.out):
            layer.weight.zero_()
            layer.bias.zero_()
    x, y = trainer.eval_x, trainer.eval_y
    identity = steps.augmentation_health(state, x, y, *trainer.eval_z[:2])
    # one definition of the health metrics: what the core reports is what the analysis's plots describe
    assert set(identity) == set(steps.AUGMENTATION_HEALTH)
    assert identity["aug/x_div"].item() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        teacher_acc = (state.teacher(x).argmax(dim=1) == y).float().mean().item()
    constant = x[:1].clone()
    monkeypatch.setattr(generator, "transform", lambda images, z, y=None: (constant.expand_as(images), None))
    monkeypatch.setattr(type(generator), "forward", lambda self, images, z, y=None: constant.expand_as(images))
    collapsed = steps.augmentation_health(state, x, y, *trainer.eval_z[:2])
    assert collapsed["aug/x_div"].item() == 0.0
    # one predicted class for 10 balanced classes: at most the share of that class among the known images
    assert collapsed["aug/label_kept"].item() <= 0.25
    assert identity["aug/label_kept"].item() == 1.0  # every image the teacher knows keeps its label
    assert teacher_acc > 0.5  # so the constant's ≤ 0.25 is a real drop


def test_eval_batch_shows_every_class():
    trainer = Trainer(tiny(train_per_class=5))
    assert trainer.eval_y[:10].tolist() == list(range(10))
    assert torch.equal(trainer.splits.normalize(trainer.splits.train.images[
        (trainer.splits.train.labels == 0).nonzero()[0]]), trainer.eval_x[:1])


def test_base_aug_leaves_hand_made_baselines_alone(monkeypatch):
    """base_aug is the augmentation under G: a baseline (aug=light) applies its own augmentation only."""
    applied = []
    real = steps.baseline_augment
    monkeypatch.setattr(steps, "baseline_augment", lambda name, images, dataset: applied.append(name) or
                        real(name, images, dataset))
    trainer = Trainer(tiny(aug="light", base_aug="trivial"))
    raw, y, pair = _batch(trainer)
    train_step(trainer.state, trainer.splits, raw, y, pair)
    assert applied == ["light"]


def test_baseline_runs_count_their_steps():
    trainer = Trainer(tiny(aug="light"))
    trainer.train_epoch()
    assert trainer.state.step == -(-len(trainer.splits.train) // trainer.config.batch_size)


def test_label_kept_is_unknown_not_zero_when_the_teacher_knows_too_few_images():
    """aug/label_kept is measured on the images the teacher classifies right: with fewer than a quarter of
    the batch (a young teacher) it is NaN, not 0 or a share of a handful — those would read as a collapse."""
    trainer = Trainer(tiny(train_per_class=5))
    x, z = trainer.eval_x, trainer.eval_z[:2]
    with torch.no_grad():
        predicted = trainer.state.teacher(x).argmax(dim=1)
    quarter = x.shape[0] // steps.LABEL_KEPT_MIN_SHARE

    def labels_it_knows(count: int) -> torch.Tensor:
        labels = (predicted + 1) % 10  # wrong everywhere ...
        labels[:count] = predicted[:count]  # ... but on the first ``count`` images
        return labels

    for count in (0, quarter - 1):
        health = steps.augmentation_health(trainer.state, x, labels_it_knows(count), *z)
        assert math.isnan(health["aug/label_kept"].item())
    kept = steps.augmentation_health(trainer.state, x, labels_it_knows(quarter), *z)["aug/label_kept"].item()
    assert 0.0 <= kept <= 1.0


def test_a_hand_made_run_reads_no_key_of_g_beyond_the_hand_made_keys(monkeypatch):
    """The analysis tells hand-made runs apart by HAND_MADE_KEYS alone: a key the baseline path reads (and so
    may change what it trains) must be one of them, a key of its split or of the run's bookkeeping, or one read
    only to build what a baseline does not use. Fails when a new key reaches the baseline path unlisted."""
    names = {field.name for field in dataclasses.fields(Config)}
    read: set[str] = set()
    original = Config.__getattribute__

    def recording(self, name):
        if name in names:
            read.add(name)
        return original(self, name)

    configs = [tiny(aug=aug) for aug in BASE_AUGS]  # every hand-made augmentation this version has
    monkeypatch.setattr(Config, "__getattribute__", recording)
    for config in configs:
        Trainer(config).train_epoch()
    monkeypatch.undo()
    split = {"dataset", "train_per_class", "val_per_class", "test_per_class", "seed", "replicate"}
    bookkeeping = {"device", "amp", "compile", "eval_every", "checkpoint_every", "data_dir", "download"}
    unused_by_a_baseline = {"joint", "use_dd", "noise_dim", "noise_std"}  # the health batch's z, DD's pairs: not built
    assert {"lr_c", "batch_size"} <= read  # the recording sees the baseline path's keys
    assert read - split - bookkeeping - unused_by_a_baseline <= set(HAND_MADE_KEYS), read
