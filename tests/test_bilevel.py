"""The bilevel term of G's loss (``meta_lr``): C's loss on other real images after one SGD step of C on G(x),
differentiated through that step, with C itself left as it was."""
import copy

import pytest
import torch
import torch.nn.functional as F

import raydaug.steps as steps
from raydaug.config import ConfigError
from raydaug.steps import generator_loss, lookahead_loss, sample_noise, train_step
from raydaug.train import Trainer
from tests.helpers import tiny


def _setup(**changes):
    trainer = Trainer(tiny(**changes))
    trainer.train_epoch()
    train = trainer.splits.train
    index = torch.arange(10)
    x = trainer.splits.normalize(train.images[index])
    partners = trainer.splits.normalize(train.images[trainer._same_class_partners(index)])
    return trainer, x, train.labels[index], partners


def test_lookahead_is_the_loss_on_other_images_after_one_sgd_step_on_g_of_x():
    trainer, x, y, partners = _setup(meta_lr=0.3)
    state = trainer.state
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    value = lookahead_loss(state, fake, y, partners)
    # by hand: a copy of C in eval mode, one SGD step of 0.3 on CE(C(fake), y), then CE on the partners
    clone = copy.deepcopy(state.nets["c"]).eval()
    inner = F.cross_entropy(clone(fake.detach()), y)
    grads = torch.autograd.grad(inner, list(clone.parameters()))
    with torch.no_grad():
        for param, grad in zip(clone.parameters(), grads):
            param.sub_(0.3 * grad)
    assert value.item() == pytest.approx(F.cross_entropy(clone(partners), y).item(), rel=1e-5)


def test_lookahead_reaches_g_through_the_inner_step_and_leaves_c_as_it_was():
    trainer, x, y, partners = _setup(meta_lr=0.3)
    state = trainer.state
    c = state.nets["c"]
    before = [t.detach().clone() for t in [*c.parameters(), *c.buffers()]]
    grads_before = [p.grad.clone() for p in c.parameters()]
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    value = lookahead_loss(state, fake, y, partners)
    (grad,) = torch.autograd.grad(value, fake)
    assert grad.abs().sum() > 0, "the outer loss depends on G(x) only through C's step: second order"
    assert all(torch.equal(a, b) for a, b in zip(before, [*c.parameters(), *c.buffers()]))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads_before, c.parameters())) and c.training


def test_lookahead_enters_g_loss_only_with_meta_lr_and_gets_the_same_class_partners(monkeypatch):
    trainer, x, y, partners = _setup(meta_lr=0.0)
    state = trainer.state
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    calls = []
    monkeypatch.setattr(steps, "lookahead_loss", lambda *args: calls.append(args) or fake.new_tensor(7.0))
    without = generator_loss(state, x, y, fake, x_meta=partners)
    assert calls == []
    state.config = state.config.replace(meta_lr=0.1)
    assert (generator_loss(state, x, y, fake, x_meta=partners) - without).item() == pytest.approx(7.0, abs=1e-4)
    # in a training step the outer images are DD's partners (other real images of each image's class) as they
    # are, not through the hand-made augmentation under G (a recognisable +0.25 stand-in shows where it went)
    monkeypatch.setattr(steps, "baseline_augment", lambda name, images, dataset: images + 0.25)
    state.config = state.config.replace(base_aug="light")
    calls.clear()
    raw = trainer.splits.train.images[:10]
    pair = trainer.splits.train.images[trainer._same_class_partners(torch.arange(10))]
    train_step(state, trainer.splits, raw, y, pair)
    (_, _, labels, outer), = calls
    assert torch.equal(labels, y) and torch.equal(outer, trainer.splits.normalize(pair))


def test_meta_lr_rejects_bad_values():
    for value, fragment in ((-0.1, "meta_lr=-0.1 is out of range"), (float("inf"), "meta_lr=inf is out of range")):
        with pytest.raises(ConfigError, match=fragment):
            tiny(meta_lr=value)
    with pytest.raises(ConfigError, match="meta_lr=0.1 needs train_per_class ≥ 2"):
        Trainer(tiny(meta_lr=0.1, use_dd=False, train_per_class=1))


def test_without_dd_the_bilevel_term_still_gets_partners(monkeypatch):
    trainer = Trainer(tiny(meta_lr=0.1, use_dd=False))
    seen = []
    monkeypatch.setattr(steps, "lookahead_loss", lambda state, fake, y, x_meta: seen.append(x_meta) or fake.sum() * 0)
    trainer.train_epoch()
    assert seen and all(outer is not None and outer.shape[0] > 0 for outer in seen)
