"""Logged configs of every earlier version load: each migration step on its own, the chain ``migrate`` runs
from a config's version, and REAL runs of earlier commits (tests/data/old_runs; its README.md says how each
was made) through ``raydaug analyze``, ``raydaug schedule replay`` and a frozen G of their checkpoints."""
from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

import raydaug.analysis as analysis
from raydaug.analysis.load import config_dicts
from raydaug.checkpoint import load_checkpoint
from raydaug.cli import main
from raydaug.config import CONFIG_VERSION, FIELD_TYPES, Config, ConfigError
from raydaug.migrations import (
    LEGACY_VALUES,
    MIGRATIONS,
    REMOVED_INERT,
    VERSION_KEY,
    legacy_defaults,
    migrate,
    removed_keys,
    rule_base_aug,
)
from raydaug.schedule import check_schedule
from raydaug.state import load_frozen_generator

OLD_RUNS = Path(__file__).resolve().parent / "data" / "old_runs"
# label → what its logged config reads as today, besides today's config of the same tiny run: runs from before
# the teacher and eval_ema trained with their legacy values; c_views=2 trained a removed feature
BEFORE_TEACHER = ("711d378_before_teacher", "58f1969_flow_bound")
SAME_AS_TODAY = ("41779b3_replay", "7374809_c_views", "f2a1183_unversioned")
TRAINED_REMOVED = "7374809_c_views_2"
OLD = (*BEFORE_TEACHER, *SAME_AS_TODAY, TRAINED_REMOVED)


def expected(label: str) -> dict:
    """What analysis reads ``label``'s config as: today's Config of the same run, with the legacy values for a
    run from before those keys, c_views=2 kept for the trial that trained it."""
    # keys added since with a default that keeps the earlier behaviour read as that default
    today = {**Config().to_dict(), **json.loads((OLD_RUNS / "f2a1183_unversioned" / "config.json").read_text())}
    if label in BEFORE_TEACHER:
        return {**today, **LEGACY_VALUES}
    # base_aug=auto meant the rule of its time, not today's pilot: light under G on tiny digits
    today = {**today, "base_aug": rule_base_aug(today["dataset"], today["train_per_class"])}
    assert today["base_aug"] == "light"
    return {**today, "c_views": 2} if label == TRAINED_REMOVED else today


# ---------------------------------------------------------------------- each step
def test_v0_to_v1_fills_each_key_a_config_did_not_log_with_the_value_it_trained_with():
    """A key added later with another default since reads as the value an older run trained with; a key the
    config did log keeps its value."""
    assert all(Config().to_dict()[key] != value for key, value in LEGACY_VALUES.items())  # else no step needed
    assert legacy_defaults({"alpha": 0.2}) == {"alpha": 0.2, **LEGACY_VALUES}
    logged = {"alpha": 0.2, "teacher_weight": 1.0, "base_aug": "trivial"}
    assert legacy_defaults(logged) == {**LEGACY_VALUES, **logged}


def test_v1_to_v2_drops_each_removed_key_at_its_inert_value_and_keeps_one_that_trained_something():
    inert = {key: 10 if value is None else value for key, value in REMOVED_INERT.items()}
    assert removed_keys({**inert, "alpha": 0.2}) == {"alpha": 0.2}
    assert removed_keys({"c_views": 1.0, "warp_bound": 0}) == {}  # logged as another number type
    trained = {"warp_bound": 0.25, "c_views": 2, "lr_c_final": 0.1, "alpha": 0.2}
    assert removed_keys({**trained, "replay_size": 0, "replay_every": 5}) == trained


# ---------------------------------------------------------------------- the chain
def test_migrate_runs_the_steps_from_the_version_a_config_was_logged_at():
    """Unversioned: every step. Version 1: the removal, then base_aug=auto (the default then, so also a key it
    lacks) as the rule it meant (a learned run on digits at 10 per class: trivial); it is not given the legacy
    values of version 0. Today's version: nothing. The version itself is not a config key."""
    assert len(MIGRATIONS) == CONFIG_VERSION
    assert migrate({"alpha": 0.2, "c_views": 1}) == {"alpha": 0.2, **LEGACY_VALUES}
    assert migrate({VERSION_KEY: 0, "alpha": 0.2}) == {"alpha": 0.2, **LEGACY_VALUES}
    assert migrate({VERSION_KEY: 1, "alpha": 0.2, "c_views": 1}) == {"alpha": 0.2, "base_aug": "trivial"}
    assert migrate({VERSION_KEY: 2, "alpha": 0.2, "aug": "light"}) == {"alpha": 0.2, "aug": "light"}
    assert migrate({VERSION_KEY: CONFIG_VERSION, "alpha": 0.2}) == {"alpha": 0.2}
    assert migrate({VERSION_KEY: CONFIG_VERSION, "alpha": 0.2, "c_views": 1}) == {"alpha": 0.2}  # never comes back
    assert migrate(Config().to_logged()) == Config().to_dict()


def test_migrate_refuses_by_name_what_this_version_cannot_rebuild_unless_told_not_to():
    """A run that trained a removed feature (whatever version its config claims) and a config of a newer
    version are refused with the key named; ``strict=False`` (analysis) keeps them as they are."""
    for version in ({}, {VERSION_KEY: CONFIG_VERSION}):
        with pytest.raises(ConfigError, match=r"warp_bound=0\.25 \(removed in config version 2"):
            migrate({**version, "warp_bound": 0.25, "alpha": 0.2})
        assert migrate({**version, "warp_bound": 0.25}, strict=False)["warp_bound"] == 0.25
    newer = {VERSION_KEY: CONFIG_VERSION + 1, "new_key": 1}
    with pytest.raises(ConfigError, match=f"config version {CONFIG_VERSION + 1} was logged by a newer raydaug"):
        migrate(newer)
    assert migrate(newer, strict=False) == {"new_key": 1}
    with pytest.raises(ConfigError, match="config_version='2' is not a config version"):
        migrate({VERSION_KEY: "2"})


def test_the_steps_agree_with_the_schema():
    """A removed key is no Config key (a key added back under a removed name would be dropped from every
    log) and every legacy value is a valid value of a Config key."""
    assert not set(REMOVED_INERT) & set(FIELD_TYPES)
    assert Config.from_dict(LEGACY_VALUES).to_dict().items() >= LEGACY_VALUES.items()


# ---------------------------------------------------------------------- real runs of earlier commits
def test_the_fixtures_are_there_and_small():
    """Every fixture the README lists is here, with its trials and metrics, and all of them stay small."""
    assert sorted(path.name for path in OLD_RUNS.iterdir() if path.is_dir()) == sorted(OLD)
    for label in OLD:
        assert next((OLD_RUNS / label / "parquet" / "trials").glob("*.parquet"), None) is not None
    assert sum(path.stat().st_size for path in OLD_RUNS.rglob("*") if path.is_file()) < 2_000_000


@pytest.mark.parametrize("label", OLD)
def test_an_old_run_loads_in_analysis_with_the_values_it_trained_with(label):
    """Each old run's trials row reads as the config it trained with: so a run from before a key existed pools
    with a later one as one variant, and the trial that trained c_views=2 stays a variant of its own."""
    run = analysis.load(str(OLD_RUNS / label))
    assert run.metrics["acc/val"].notna().any()
    (config,) = config_dicts(run).values()
    assert config == expected(label)


@pytest.mark.parametrize("label", OLD)
def test_an_old_checkpoint_s_config_loads_and_its_generator_replays_frozen(label):
    """``Config.from_logged`` of each old checkpoint's config is today's Config of that run (the legacy values
    filled in); its G loads into today's generator (joint=false reads it so). The trial that trained c_views=2
    is refused by name."""
    path = OLD_RUNS / label / "checkpoints" / "state.pt"
    payload = load_checkpoint(path)
    if label == TRAINED_REMOVED:
        with pytest.raises(ConfigError, match=r"c_views=2 \(removed"):
            Config.from_logged(payload["config"])
        return
    config = Config.from_logged(payload["config"])
    assert config == Config.from_dict({**expected(label), "preset": ""})
    generator = load_frozen_generator(str(path), 1, torch.zeros(1, 1, 1, 1))
    out = generator(torch.zeros(2, 1, config.image_size, config.image_size), torch.randn(2, config.noise_dim))
    assert out.shape == (2, 1, config.image_size, config.image_size) and torch.isfinite(out).all()


@pytest.fixture
def fake_replay(monkeypatch):
    """``raydaug.tune.replay.run_replay`` without Ray: it checks the schedule as the real one does first
    (``check_schedule``, which builds the initial Config) and records it."""
    calls = []

    def run_replay(schedule, storage, name, **_):
        check_schedule(schedule)
        calls.append(schedule)
        return f"{storage}/{name}"

    fake = types.ModuleType("raydaug.tune.replay")
    fake.run_replay = run_replay
    monkeypatch.setitem(sys.modules, "raydaug.tune.replay", fake)
    return calls


@pytest.mark.parametrize("label", OLD)
def test_an_old_run_replays_its_schedule(label, fake_replay, tmp_path, capsys):
    """``raydaug schedule replay OLD_RUN`` hands the run's schedule, its config as it trained, to the replay;
    the trial that trained a removed feature is refused on one line naming the key."""
    code = main(["schedule", "replay", str(OLD_RUNS / label), "--storage", str(tmp_path), "--name", "r"])
    if label == TRAINED_REMOVED:
        assert code == 2 and "c_views=2 (removed" in capsys.readouterr().err
        return
    assert code == 0
    assert Config.from_logged(fake_replay[-1]["initial_config"]) == Config.from_dict({**expected(label), "preset": ""})


def test_old_runs_pool_in_one_report(tmp_path, capsys):
    """``raydaug analyze`` of today's run pooled with every older one: one report, whose trials read as three
    variants of the learned augmentation: before the teacher, today's, and c_views=2."""
    for label in OLD:
        shutil.copytree(OLD_RUNS / label, tmp_path / label)
    pooled = [part for label in OLD if label != "f2a1183_unversioned" for part in ("--pool", str(tmp_path / label))]
    assert main(["analyze", str(tmp_path / "f2a1183_unversioned"), *pooled, "--out", str(tmp_path / "report")]) == 0
    trials = pd.read_csv(tmp_path / "report" / "trials.csv")
    assert len(trials) == len(OLD)
    variants = trials.groupby(trials["variant"].fillna(""))["trial_id"].apply(lambda ids: sorted(ids.str[7:]))
    assert sorted(variants.tolist()) == sorted([sorted(BEFORE_TEACHER), sorted(SAME_AS_TODAY), [TRAINED_REMOVED]])


def test_an_stn_saved_before_the_identity_buffer_gives_the_same_theta():
    """G's weights from before θ = I + offset (the head's last bias held θ itself, no identity buffer) load
    as the same transform: the test fails if the identity is not moved out of the bias."""
    from raydaug.nets.stn import IDENTITY, SpatialTransformer

    torch.manual_seed(0)
    today = SpatialTransformer(1, 16, 8, 4)
    torch.nn.init.normal_(today.head[-1].bias, std=0.1)
    old = {key: value.clone() for key, value in today.state_dict().items() if key != "identity"}
    old["head.2.bias"] = old["head.2.bias"] + torch.tensor(IDENTITY)  # θ itself, as the old STN stored it
    loaded = SpatialTransformer(1, 16, 8, 4)
    loaded.load_state_dict(old)
    x, z = torch.rand(3, 1, 16, 16), torch.randn(3, 8)
    assert torch.allclose(loaded.theta(x, z), today.theta(x, z), atol=1e-6)
