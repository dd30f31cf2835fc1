"""Checkpoints, resume, hparam re-application, non-finite losses."""
import json
import math

import pytest
import torch

from raydaug.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from raydaug.config import ConfigError
from raydaug.train import NonFiniteLossError, Trainer, run_training
from tests.helpers import comparable, tiny


def _outputs(trainer: Trainer) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    x, z = trainer.eval_x, trainer.eval_z[0]
    y = trainer.splits.train.labels[: x.shape[0]]
    nets = trainer.state.nets
    for net in nets.values():
        net.eval()
    with torch.no_grad():
        out = {"g": nets["g"](x, z), "c": nets["c"](x), "dc": nets["dc"](x, y), "dd": nets["dd"](x, x)}
    for net in nets.values():
        net.train()
    return out


def test_checkpoint_round_trip_restores_outputs_and_optimisers(tmp_path):
    trainer = Trainer(tiny())
    trainer.train_iteration()
    path = tmp_path / "state.pt"
    trainer.save(path)
    fresh = Trainer(tiny())
    with torch.no_grad():  # scramble every weight: the load must overwrite everything
        for net in fresh.state.nets.values():
            for param in net.parameters():
                param.add_(torch.randn_like(param))
    assert not torch.equal(_outputs(fresh)["c"], _outputs(trainer)["c"])
    fresh.restore(path)
    for name, value in _outputs(trainer).items():
        assert torch.equal(_outputs(fresh)[name], value), name
    for name, optim in trainer.state.optims.items():
        a, b = optim.state_dict(), fresh.state.optims[name].state_dict()
        assert a["param_groups"] == b["param_groups"]
        for key in a["state"]:
            for field in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(a["state"][key][field], b["state"][key][field])
    assert (fresh.state.epoch, fresh.state.step) == (trainer.state.epoch, trainer.state.step)


def test_replicates_share_the_split_and_train_differently():
    """``replicate`` re-runs a trial on the same split: the split and the health batch stay, the players'
    weights and the training after them change; replicate 0 trains exactly as a config without the key."""
    base, again, other = Trainer(tiny()), Trainer(tiny(replicate=0)), Trainer(tiny(replicate=1))
    for name in ("train", "val", "test"):
        for trainer in (again, other):
            assert torch.equal(getattr(trainer.splits, name).images, getattr(base.splits, name).images), name
    assert torch.equal(other.eval_x, base.eval_x) and torch.equal(other.eval_z[0], base.eval_z[0])
    assert torch.equal(_outputs(again)["c"], _outputs(base)["c"])
    assert not torch.equal(_outputs(other)["c"], _outputs(base)["c"])
    # G starts at the identity whatever its weights, so compare the weights themselves
    weights = [list(trainer.state.nets["g"].parameters()) for trainer in (base, other)]
    assert not all(torch.equal(a, b) for a, b in zip(*weights))
    # training draws from the process-wide RNG that building a Trainer seeds: build and train one at a time
    losses = [Trainer(tiny(replicate=k)).train_iteration()["loss/c"] for k in (0, 0, 1)]
    assert losses[0] == losses[1] != losses[2]


def test_resumed_run_equals_uninterrupted(tmp_path):
    config = tiny(epochs=4, checkpoint_every=2, eval_every=1)
    straight = Trainer(config)
    reports = [straight.train_iteration() for _ in range(4)]
    first = Trainer(config)
    first.train_iteration(), first.train_iteration()
    first.save(tmp_path / "state.pt")
    del first
    resumed = Trainer(config)
    resumed.restore(tmp_path / "state.pt")
    later = [resumed.train_iteration() for _ in range(2)]
    skip = {"time/step_ms", "time/samples_per_s"}
    for expected, got in zip(reports[2:], later):
        assert comparable({k: v for k, v in got.items() if k not in skip}) == \
            comparable({k: v for k, v in expected.items() if k not in skip})


def test_cli_resume_continues_a_stopped_run(tmp_path):
    config = tiny(epochs=4, checkpoint_every=2)
    full = run_training(config, tmp_path / "full", log=lambda _: None)
    run_training(config, tmp_path / "cut", log=lambda _: None, stop_after_epochs=2)
    resumed = run_training(config, tmp_path / "cut", resume=True, log=lambda _: None)
    assert resumed["epochs_done"] == 4
    assert resumed["final"]["acc/test"] == full["final"]["acc/test"]
    assert resumed["final"]["loss/c"] == full["final"]["loss/c"]


@pytest.mark.parametrize("key", ["alpha", "beta", "gamma", "teacher_weight"])
def test_mutated_loss_weight_changes_the_gradient_g_follows(key):
    """A PBT mutation of α, β, γ or the teacher's weight reaches the loss G optimises, not only its hp/*
    echo: after ``apply_hparams`` G's gradient is the old gradient plus (new − old) times that term's."""
    from raydaug.steps import generator_loss, sample_noise

    trainer = Trainer(tiny(gamma=0.01, teacher_weight=0.5))
    trainer.train_epoch()
    state = trainer.state
    for net in state.nets.values():
        net.eval()
    train = trainer.splits.train
    x, y = trainer.splits.normalize(train.images[:10]), train.labels[:10]
    z = sample_noise(state, 10)
    params = list(state.nets["g"].parameters())

    def gradient() -> torch.Tensor:
        return torch.cat([g.flatten() for g in torch.autograd.grad(generator_loss(state, x, y, state.nets["g"](x, z)),
                                                                     params)])

    before = gradient()
    old = getattr(state.config, key)
    trainer.apply_hparams(state.config.replace(**{key: old * 5}))
    after = gradient()
    others = {k: 0.0 for k in ("alpha", "beta", "gamma", "teacher_weight") if k != key}
    trainer.apply_hparams(state.config.replace(**others, **{key: 1.0}))
    term = gradient()  # the gradient of that term alone, at weight 1
    assert term.abs().sum() > 0
    assert torch.allclose(after - before, (old * 5 - old) * term, rtol=1e-3, atol=1e-6)


def test_apply_hparams_reaches_losses_and_optimisers():
    trainer = Trainer(tiny())
    new = trainer.config.replace(alpha=0.7, beta=0.2, gamma=0.03, lr_c=1e-2, lr_g=2e-3, lr_dc=3e-3, lr_dd=4e-3)
    trainer.apply_hparams(new)
    assert trainer.state.config.alpha == 0.7
    for player, lr in {"c": 1e-2, "g": 2e-3, "dc": 3e-3, "dd": 4e-3}.items():
        assert all(group["lr"] == lr for group in trainer.state.optims[player].param_groups)
    metrics = trainer.train_iteration()
    assert metrics["hp/alpha"] == 0.7 and metrics["lr/dd"] == 4e-3


def test_restore_keeps_the_new_config_learning_rates(tmp_path):
    """PBT restores a donor checkpoint into a trial with mutated hparams: the trial's config wins."""
    donor = Trainer(tiny())
    donor.train_iteration()
    donor.save(tmp_path / "donor.pt")
    mutated = tiny().replace(lr_c=5e-3, lr_g=1e-4)
    trial = Trainer(mutated)
    trial.restore(tmp_path / "donor.pt")
    assert trial.state.optims["c"].param_groups[0]["lr"] == 5e-3
    assert trial.state.optims["g"].param_groups[0]["lr"] == 1e-4


def test_architecture_keys_cannot_change_on_a_live_trial():
    trainer = Trainer(tiny())
    with pytest.raises(ConfigError, match="ngf"):
        trainer.apply_hparams(trainer.config.replace(ngf=8))


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"a": torch.arange(1000)})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
        match = "truncated"
    elif damage == "flip":
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
        match = "corrupted"
    else:
        torch.save({"a": 1}, path)
        match = "not a raydaug checkpoint"
    with pytest.raises(CheckpointError, match=match) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"v": torch.tensor(1)})

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(OSError):
        save_checkpoint(path, {"v": torch.tensor(2)})
    assert load_checkpoint(path)["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_non_finite_loss_stops_with_player_and_step(tmp_path):
    config = tiny(epochs=3)
    out = tmp_path / "run"
    calls = {"n": 0}
    import raydaug.steps as steps

    original = steps.discriminator_loss

    def poisoned(real, fake):
        calls["n"] += 1
        loss = original(real, fake)
        # 2 calls (DC, DD) per step, 3 steps per epoch: call 7 is DC in the 4th step (epoch 2)
        return loss * float("nan") if calls["n"] > 6 else loss

    import unittest.mock as mock

    with mock.patch.object(steps, "discriminator_loss", poisoned):
        with pytest.raises(NonFiniteLossError, match=r"DC's loss \(loss/dc\) became non-finite at step 4 "
                                                     r"\(epoch 2, iteration 2\)"):
            run_training(config, out, log=lambda _: None)
    # what was logged before the failure is on disk
    import pyarrow.dataset as ds

    table = ds.dataset(out / "parquet" / "metrics", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 1 and table.column("epoch").to_pylist() == [1]


def test_run_writes_config_result_and_parquet(tmp_path):
    result = run_training(tiny(), tmp_path, log=lambda _: None)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["ngf"] == 4
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["best"]["epoch"] in (1, 2) and math.isclose(on_disk["best"]["acc/val"], result["best"]["acc/val"])
    assert (tmp_path / "checkpoints" / "state.pt").exists()
    assert any((tmp_path / "tensorboard").iterdir())


def _losses_after_two_batches(config) -> dict[str, float]:
    """Two minibatches through ``Trainer.train_batch`` (the path ``Config.amp`` / ``compile`` take), every
    net in eval mode so that two trainers compute the same function; the mean of each loss."""
    trainer = Trainer(config)
    for net in trainer.state.nets.values():
        net.eval()
    index = torch.arange(len(trainer.splits.train))
    for _ in range(2):
        torch.manual_seed(1)
        trainer.train_batch(index)
    return trainer.accumulator.means()


@pytest.mark.parametrize("option", [{"amp": True}, {"compile": True}])
def test_fast_paths_match_eager_fp32(option):
    """bf16 autocast and torch.compile change speed, not the game: the same losses within a tolerance
    smaller than any of G's four terms (a fast path that dropped the γ term would fail). The mode-seeking
    term is off: at G's identity start its 1 / (ratio + eps) is about 1/eps and would swamp the others."""
    if option.get("compile"):
        pytest.importorskip("torch._inductor")
    config = tiny(epochs=2, train_per_class=2, val_per_class=1, batch_size=20, use_stn=False,
                  classifier="small", disc="small", alpha=1.0, beta=1.0, gamma=10.0, teacher_weight=1.0,
                  div_weight=0.0)
    want = _losses_after_two_batches(config)
    got = _losses_after_two_batches(config.replace(**option))
    tolerance = {name: 0.02 * abs(want[name]) + 1e-3 for name in ("loss/c", "loss/dc", "loss/dd", "loss/g")}
    for name, allowed in tolerance.items():
        assert abs(got[name] - want[name]) < allowed, (name, got[name], want[name])
    # each of G's terms moves loss/g by more than the tolerance, so none can silently go missing
    for term in ("alpha", "beta", "gamma", "teacher_weight"):
        without = _losses_after_two_batches(config.replace(**{term: 0.0}))
        assert abs(without["loss/g"] - want["loss/g"]) > 3 * tolerance["loss/g"], term


def test_separate_training_uses_a_frozen_generator(tmp_path):
    """joint=false (Fig. 4's baseline): G comes from another run's checkpoint and never changes."""
    source = Trainer(tiny())
    source.train_iteration()
    source.save(tmp_path / "state.pt")
    trainer = Trainer(tiny(joint=False, g_checkpoint=str(tmp_path)))
    assert set(trainer.state.nets) == {"g", "c"} and set(trainer.state.optims) == {"c"}
    frozen = [p.detach().clone() for p in trainer.state.nets["g"].parameters()]
    for a, b in zip(frozen, source.state.nets["g"].parameters()):
        assert torch.equal(a, b)
    c_before = [p.detach().clone() for p in trainer.state.nets["c"].parameters()]
    metrics = trainer.train_iteration()
    assert all(torch.equal(a, b) for a, b in zip(frozen, trainer.state.nets["g"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(c_before, trainer.state.nets["c"].parameters()))
    assert "acc/aug" in metrics and "loss/g" not in metrics


def test_a_checkpoint_of_other_players_is_a_checkpoint_error():
    """A checkpoint whose G lacks a tensor this version has (the STN's first layer here: an older STN's
    missing identity buffer is upgraded by its load hook instead) is refused as a CheckpointError naming the
    cause, not a raw RuntimeError from torch."""
    from raydaug.state import load_state_dict, state_dict

    trainer = Trainer(tiny())
    payload = state_dict(trainer.state)
    del payload["nets"]["g"]["stn.head.0.weight"]
    with pytest.raises(CheckpointError, match="does not fit this raydaug's players.*stn.head.0.weight"):
        load_state_dict(Trainer(tiny()).state, payload)
