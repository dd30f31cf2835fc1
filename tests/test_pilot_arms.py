"""The pilot's arms as shared records (raydaug/pilot_arms.py): a hand-made trial's record is the pilot's arm, bit
for bit, and a pilot reads the arms a store holds instead of training them."""
from __future__ import annotations

import pytest
import torch

import raydaug.train
from raydaug.logging.reader import read_arm_records
from raydaug.pilot_arms import NOT_READ_BY_HAND_MADE, arm_config, arm_key, arm_record, read_arms, save_arms
from raydaug.presets import HAND_MADE
from raydaug.train import Trainer, _train_arm, pilot
from tests.helpers import tiny

CPU = torch.device("cpu")
AUTO = {"epochs": 4, "pilot_share": 1.0, "checkpoint_every": 2, "base_aug": "auto", "aug": "learned"}
# a value other than the default for every key a hand-made training does not read
OTHER_VALUES = {
    "base_aug": "elastic", "pilot_share": 0.5, "pilot_prior": "none", "use_stn": False, "use_enc": False,
    "use_dec": False, "use_dc": False, "use_dd": False, "use_gadv": False,
    "gadv_form": "code", "div_weight": 0.01, "teacher_weight": 2.0, "disc_aug_p": 0.5, "stn_bound": 0.5,
    "res_bound": 0.5, "g_every": 2, "soft_weight": 0.5, "g_class_cond": True, "alpha": 0.2, "beta": 0.1,
    "gamma": 0.01, "lr_g": 1e-3, "lr_dc": 1e-3, "lr_dd": 1e-3, "noise_dim": 4, "noise_std": 0.5, "ngf": 8,
    "disc": "badgan", "checkpoint_every": 2, "preset": "paper_method", "device": "cpu",
}


def _as_a_trial(config) -> Trainer:
    """A hand-made trial's training: every iteration evaluated as the run reports it."""
    trainer = Trainer(config, CPU)
    while not trainer.done:
        trainer.train_iteration()
    return trainer


def test_every_key_a_hand_made_training_does_not_read_is_named_and_changes_nothing():
    """With every key of NOT_READ_BY_HAND_MADE changed, C alone trains bit for bit as before and the arm's key
    is the same; a key that is read (lr_c, the split's seed, a magnitude, the evaluations) changes the key."""
    # joint=false and a frozen G's checkpoint are refused with a hand-made aug (arm_config resets them)
    assert set(OTHER_VALUES) | {"joint", "g_checkpoint"} == set(NOT_READ_BY_HAND_MADE)
    for aug in ("light", "augmix"):
        plain = tiny(aug=aug)
        changed = plain.replace(**OTHER_VALUES)
        assert all(getattr(changed, key) != getattr(plain, key) for key in OTHER_VALUES)
        first, second = _as_a_trial(plain), _as_a_trial(changed)
        for name, tensor in first.state.nets["c"].state_dict().items():
            assert torch.equal(tensor, second.state.nets["c"].state_dict()[name]), name
        assert first.state.best == second.state.best
        assert arm_key(plain, CPU) == arm_key(changed, CPU)
        for changes in ({"lr_c": 3e-3}, {"seed": 1}, {"augmix_severity": 5}, {"teacher_decay": 0.9},
                        {"eval_every": 2, "checkpoint_every": 2}, {"aug": "strong"}):
            assert arm_key(plain.replace(**changes), CPU) != arm_key(plain, CPU), changes
    assert arm_key(tiny(aug="light"), CPU) != arm_key(tiny(aug="light"), torch.device("cuda"))


def test_c_on_a_frozen_g_pilots_the_arms_of_a_joint_run():
    """base_aug=auto with joint=false: the arms are C alone, as for a joint run (the key is the same)."""
    joint = tiny(**AUTO)
    frozen = joint.replace(joint=False, g_checkpoint="g.pt")
    assert arm_config(frozen, "light") == arm_config(joint, "light")


def test_a_hand_made_trials_record_is_the_pilots_arm_bit_for_bit():
    """What a finished hand-made trial ends with (its best and last validation accuracy, and per validation
    image the classifier kept at its best evaluation) is what the pilot computes for that arm, evaluating the
    validation images only: the first of equal evaluations is the best in both."""
    learned = tiny(**AUTO)
    for name in ("light", "randaugment", "elastic"):
        arm = arm_config(learned, name)
        trial = _as_a_trial(tiny(aug=name, epochs=4, eval_every=1, checkpoint_every=2))
        assert arm_key(arm, CPU) == arm_key(trial.config, CPU)
        record, computed = arm_record(trial.state, trial.splits), _train_arm(arm, trial.splits, CPU)
        assert record["acc_val"] == computed["acc_val"] == trial.state.best["acc/val"]
        assert record["acc_val_last"] == computed["acc_val_last"]
        assert record["correct"].dtype == torch.bool and torch.equal(record["correct"], computed["correct"])
        assert record["correct"].numel() == len(trial.splits.val)


def test_the_pilot_reads_the_arms_its_store_holds_and_adds_those_it_trains(tmp_path, monkeypatch):
    """A pilot with a store trains the arms it lacks and adds them; a second pilot on the same split reads
    all eight and trains none, choosing exactly as the first; one on another split trains its own."""
    config, store, lines = tiny(**AUTO), str(tmp_path / "run"), []
    splits = Trainer(config, CPU).splits
    first = pilot(config, splits, CPU, lines.append, store)
    assert first["reused"] == 0 and sum("trained for 4 epochs" in line for line in lines) == len(HAND_MADE)
    assert len(read_arm_records(store)) == len(HAND_MADE)

    def no_training(*args, **kwargs):
        raise AssertionError("an arm the store holds was trained again")

    monkeypatch.setattr(raydaug.train, "_train_arm", no_training)
    lines.clear()
    second = pilot(config, splits, CPU, lines.append, store)
    assert second == {**first, "reused": len(HAND_MADE)}
    assert sum("read from the hand-made trials" in line for line in lines) == len(HAND_MADE)
    other = config.replace(seed=1)
    with pytest.raises(AssertionError, match="trained again"):
        pilot(other, Trainer(other, CPU).splits, CPU, None, store)


def test_the_records_keep_every_validation_image_through_parquet(tmp_path):
    correct = torch.tensor([True, False, True] * 101)
    save_arms(str(tmp_path), [("k1", "light", 4, {"acc_val": 0.5, "acc_val_last": 0.25, "correct": correct})])
    read = read_arms(str(tmp_path))
    assert set(read) == {"k1"} and (read["k1"]["acc_val"], read["k1"]["acc_val_last"]) == (0.5, 0.25)
    assert torch.equal(read["k1"]["correct"], correct)
    assert read_arms(str(tmp_path / "none")) == {}
