"""The four players: gradients, isolation of updates, identity at init, ablation switches."""
import pytest
import torch
import torch.nn.functional as F

from raydaug.losses import bce_real, fool_classifier
from raydaug.presets import TABLE3_ROWS
from raydaug.steps import _set_grads, c_step, dc_step, dd_step, g_step, generator_loss, sample_noise, train_step
from raydaug.train import Trainer
from tests.helpers import tiny


def _batch(trainer: Trainer, n: int = 10):
    train = trainer.splits.train
    index = torch.arange(n)
    raw = train.images[index]
    pair = train.images[trainer._same_class_partners(index)]
    return raw, train.labels[index], pair


def _tensors(trainer: Trainer, name: str) -> list[torch.Tensor]:
    """Parameters and buffers (BatchNorm's running statistics) of a player, or of the EMA teacher."""
    net = trainer.state.teacher if name == "teacher" else trainer.state.nets[name]
    return [*net.parameters(), *net.buffers()]


def _snapshot(trainer: Trainer, name: str) -> list[torch.Tensor]:
    return [t.detach().clone() for t in _tensors(trainer, name)]


def _same(before: list[torch.Tensor], trainer: Trainer, name: str) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, _tensors(trainer, name)))


@pytest.fixture()
def trained():
    """A tiny joint run after a few minibatches, so that zero-initialised output layers (the STN head
    and the U-Net's last conv start at the identity) already pass gradient to everything upstream."""
    torch.manual_seed(0)
    trainer = Trainer(tiny(classifier="small", disc="small"))
    for _ in range(3):
        trainer.train_epoch()
    return trainer


def _own_loss_grads(trainer: Trainer, player: str) -> dict[str, torch.Tensor]:
    state, splits = trainer.state, trainer.splits
    raw, y, pair = _batch(trainer)
    x = splits.normalize(raw)
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    import torch.nn.functional as F

    from raydaug.losses import discriminator_loss

    if player == "g":
        loss = generator_loss(state, x, y, fake)
    elif player == "dc":
        loss = discriminator_loss(state.nets["dc"](x, y), state.nets["dc"](fake.detach(), y))
    elif player == "dd":
        loss = discriminator_loss(state.nets["dd"](x, splits.normalize(pair)), state.nets["dd"](x, fake.detach()))
    else:
        loss = F.cross_entropy(state.nets["c"](torch.cat([x, fake.detach()])), torch.cat([y, y]))
    named = dict(state.nets[player].named_parameters())
    grads = torch.autograd.grad(loss, list(named.values()))
    return dict(zip(named, grads))


@pytest.mark.parametrize("player", ["g", "dc", "dd", "c"])
def test_every_parameter_gets_a_gradient_from_its_own_loss(trained, player):
    grads = _own_loss_grads(trained, player)
    dead = [name for name, grad in grads.items() if grad is None or grad.abs().sum() == 0]
    assert not dead, f"{player}: parameters with zero gradient: {dead}"


def test_badgan_players_get_gradients_too():
    torch.manual_seed(0)
    trainer = Trainer(tiny(classifier="badgan", disc="badgan"))
    trainer.train_epoch()
    for player in ("dc", "dd", "c"):
        grads = _own_loss_grads(trainer, player)
        assert all(g.abs().sum() > 0 for g in grads.values()), player


def test_each_step_updates_only_its_player(trained):
    """Parameters and buffers: G's pass through C (its γ term) must not move C's BatchNorm statistics,
    and no step moves the EMA teacher (only update_teacher does)."""
    state, splits = trained.state, trained.splits
    raw, y, pair = _batch(trained)
    x = splits.normalize(raw)
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    names = [*state.nets, "teacher"]
    for player, step in [("dc", lambda: dc_step(state, x, y, fake)),
                         ("dd", lambda: dd_step(state, x, splits.normalize(pair), fake)),
                         ("c", lambda: c_step(state, x, y, fake.detach()))]:
        before = {name: _snapshot(trained, name) for name in names}
        step()
        for name in names:
            assert _same(before[name], trained, name) == (name != player), (player, name)
    before = {name: _snapshot(trained, name) for name in names}
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    g_step(state, x, y, fake)
    for name in names:
        assert _same(before[name], trained, name) == (name != "g"), ("g", name)


def test_accuracy_evaluates_c_in_eval_mode(trained):
    """Evaluation uses BatchNorm's running statistics and no dropout: it moves no buffer, gives the same
    number twice, and equals C in eval mode on the whole split; C is back in train mode afterwards
    (eval_ema=false: C itself is measured; the EMA's own test is in test_method.py)."""
    from raydaug.steps import accuracy

    state, splits = trained.state, trained.splits
    c = state.nets["c"]
    buffers = _snapshot(trained, "c")
    images, labels = splits.test.images, splits.test.labels
    protocol, state.config = state.config, state.config.replace(eval_ema=False)
    try:
        first = accuracy(state, splits, images, labels, chunk=7)  # small chunks: batch statistics would differ
        second = accuracy(state, splits, images, labels, chunk=7)
    finally:
        state.config = protocol
    assert _same(buffers, trained, "c") and c.training and first == second
    c.eval()
    with torch.no_grad():
        expected = (c(splits.normalize(images)).argmax(dim=1) == labels).float().mean().item()
    c.train()
    assert first == pytest.approx(expected)


def test_generator_starts_as_the_identity():
    trainer = Trainer(tiny())
    generator = trainer.state.nets["g"]
    x = trainer.eval_x
    z = trainer.eval_z[0]
    out, theta = generator.transform(x, z)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand_as(theta)
    assert torch.allclose(theta, identity)
    assert torch.allclose(out, x, atol=1e-5)
    stn_only, _ = generator.stn(x, z, generator.background)
    assert torch.allclose(stn_only, x, atol=1e-5)


def test_stn_pads_with_the_normalised_background():
    trainer = Trainer(tiny())
    generator = trainer.state.nets["g"]
    with torch.no_grad():
        generator.stn.head[-1].bias.copy_(torch.tensor([0.0, 0.0, 2.5, 0.0, 0.0, 0.0]))  # θ − I: shift far out
    out, _ = generator.stn(trainer.eval_x, trainer.eval_z[0], generator.background)
    assert torch.allclose(out, generator.background.expand_as(out), atol=1e-5)


def _param_count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


@pytest.mark.parametrize("flag", ["use_stn", "use_enc", "use_dc", "use_dd"])
def test_ablation_flag_removes_its_parameters(flag):
    full = Trainer(tiny()).state
    changes = {flag: False}
    ablated = Trainer(tiny(**changes)).state
    g_full, g_ablated = full.nets["g"], ablated.nets["g"]
    if flag == "use_stn":
        assert g_ablated.stn is None and _param_count(g_full) - _param_count(g_ablated) == _param_count(g_full.stn)
    elif flag == "use_enc":
        assert g_ablated.unet.encoder is None and g_full.unet.encoder is not None
        assert _param_count(g_ablated) < _param_count(g_full)
    else:
        player = flag.removeprefix("use_")
        assert player not in ablated.nets and player not in ablated.optims
        assert _param_count(g_ablated) == _param_count(g_full)


def test_use_dec_false_leaves_a_plain_stn():
    state = Trainer(tiny(use_dec=False, use_enc=False)).state
    assert state.nets["g"].unet is None and state.nets["g"].stn is not None


def test_generator_loss_has_exactly_the_enabled_terms(trained):
    state, splits = trained.state, trained.splits
    for net in state.nets.values():
        net.eval()  # no dropout: every forward below sees the same function
    raw, y, _ = _batch(trained)
    x = splits.normalize(raw)
    fake = state.nets["g"](x, sample_noise(state, x.shape[0]))
    config = state.config
    terms = {
        "use_dc": config.alpha * bce_real(state.nets["dc"](fake, y)),
        "use_dd": config.beta * bce_real(state.nets["dd"](x, fake)),
        "use_gadv": config.gamma * fool_classifier(state.nets["c"](fake), y, "paper"),
        "teacher_weight": config.teacher_weight * F.cross_entropy(state.teacher(fake), y),
    }
    assert config.teacher_weight > 0  # the default: four terms
    assert torch.allclose(generator_loss(state, x, y, fake), sum(terms.values()), atol=1e-6)
    for off in terms:
        state.config = config.replace(**{off: 0.0 if off == "teacher_weight" else False})
        expected = sum(value for key, value in terms.items() if key != off)
        assert torch.allclose(generator_loss(state, x, y, fake), expected, atol=1e-6), off
    state.config = config


def test_without_adversarial_terms_the_stn_learns_through_c():
    """Table 3 row (b): a plain STN trained by C's loss, no DC/DD/GADV."""
    config = tiny(preset="table3_b")
    trainer = Trainer(config)
    assert set(trainer.state.nets) == {"g", "c"} and not config.g_is_adversarial
    before = _snapshot(trainer, "g")
    trainer.train_epoch()
    trainer.train_epoch()
    assert not _same(before, trainer, "g")


@pytest.mark.parametrize("row", list(TABLE3_ROWS))
def test_every_table3_row_trains(row):
    trainer = Trainer(tiny(preset=f"table3_{row}"))
    metrics = trainer.train_iteration()
    assert 0.0 <= metrics["acc/val"] <= 1.0 and metrics["epoch"] == 1


def test_fool_classifier_forms():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([0, 1])
    p = logits.softmax(1)
    paper = -torch.log(1 - p[torch.arange(2), labels]).mean()
    assert torch.allclose(fool_classifier(logits, labels, "paper"), paper)
    code = torch.nn.functional.cross_entropy(1 - p, labels)
    assert torch.allclose(fool_classifier(logits, labels, "code"), code)
    # the paper's term falls when C becomes less sure of the true class
    assert fool_classifier(logits * 0.1, labels, "paper") < fool_classifier(logits, labels, "paper")


def test_train_step_returns_the_design_metric_names():
    trainer = Trainer(tiny())
    raw, y, pair = _batch(trainer)
    metrics = train_step(trainer.state, trainer.splits, raw, y, pair)
    assert set(metrics) == {"loss/dc", "loss/dd", "loss/g", "loss/c", "acc/aug"}
    assert all(value.dim() == 0 for value in metrics.values())


def test_mode_seeking_term_is_added_only_when_weighted():
    from raydaug.losses import mode_seeking

    trainer = Trainer(tiny(div_weight=0.5))
    state, x = trainer.state, trainer.eval_x
    for net in state.nets.values():
        net.eval()
    y = trainer.splits.train.labels[: x.shape[0]]
    z1, z2 = trainer.eval_z[0], trainer.eval_z[1]
    generator = state.nets["g"]
    with torch.no_grad():
        generator.unet.out.weight.normal_(0, 0.1)  # make z matter
    fake1, fake2 = generator(x, z1), generator(x, z2)
    base = generator_loss(state, x, y, fake1)
    with_div = generator_loss(state, x, y, fake1, (fake2, z1, z2))
    assert torch.allclose(with_div - base, 0.5 * mode_seeking(fake1, fake2, z1, z2), atol=1e-5)
    assert mode_seeking(fake1, fake1 + 1.0, z1, z2) < mode_seeking(fake1, fake1 + 0.1, z1, z2)


@pytest.mark.parametrize("weight, calls", [(0.0, 1), (0.1, 2)])
def test_diversity_weight_adds_a_second_generator_pass(weight, calls):
    trainer = Trainer(tiny(div_weight=weight))
    raw, y, pair = _batch(trainer)
    seen = []
    trainer.state.nets["g"].register_forward_hook(lambda module, args, out: seen.append(args[1]))
    train_step(trainer.state, trainer.splits, raw, y, pair)
    assert len(seen) == calls
    if calls == 2:
        assert not torch.equal(seen[0], seen[1]), "the second pass uses fresh noise"


def test_gradients_take_their_parameters_layout():
    """The fused CUDA Adam refuses a gradient whose strides differ from its parameter's (seen on an
    H200: channels_last weights got contiguous gradients from autograd.grad)."""
    weight = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last).requires_grad_()
    scale = torch.randn(4, 3, 2, 2)
    loss = (weight.contiguous() * scale).sum()  # d loss / d weight = scale, laid out contiguously
    raw, = torch.autograd.grad(loss, [weight], retain_graph=True)
    assert raw.stride() != weight.stride()  # the case being fixed does arise
    _set_grads([weight], loss)
    assert weight.grad.stride() == weight.stride()
    assert torch.equal(weight.grad, scale)
    torch.optim.Adam([weight], lr=0.1).step()  # and a step goes through with it
