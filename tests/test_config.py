import dataclasses
import re
from pathlib import Path

import pytest

from raydaug.allowed import BASE_AUGS
from raydaug.config import CONFIG_VERSION, FIELD_TYPES, Config, ConfigError, coerce
from raydaug.overrides import parse_grid, parse_overrides
from raydaug.presets import HAND_MADE, PRESETS, TABLE3_ROWS
from raydaug.schedule import check_schedule


def test_defaults_are_valid_and_round_trip():
    config = Config()
    config.validate()
    assert Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("values, fragment", [
    ({"learning_rate": 0.1}, "unknown config key"),
    ({"alpha": "lots"}, "'alpha' expects float"),
    ({"epochs": 2.5}, "'epochs' expects int"),
    ({"use_dc": "maybe"}, "'use_dc' expects bool"),
    ({"lr_c": -1e-3}, "lr_c=-0.001 is out of range"),
    ({"lr_g": 0.0}, "lr_g=0.0 is out of range"),
    ({"beta": -0.5}, "beta=-0.5 is out of range"),
    ({"gamma": float("nan")}, "gamma=nan is out of range"),
    ({"adam_beta1": 1.0}, "adam_beta1=1.0 is out of range"),
    ({"dataset": "imagenet"}, "dataset='imagenet' is not allowed; choose one of digits"),
    ({"aug": "mixup"}, "aug='mixup' is not allowed"),
    ({"classifier": "resnet"}, "classifier='resnet' is not allowed"),
    ({"image_size": 20}, "image_size=20 is not supported"),
    ({"train_per_class": 170}, "exceeds the 174 training images per class"),
    ({"train_per_class": -1}, "train_per_class=-1 is out of range"),
    ({"test_per_class": -2}, "test_per_class=-2 is out of range"),
    ({"classifier": "torchvision:"}, "torchvision:<name> needs a model name"),
    ({"classifier": "my nets:make"}, "classifier='my nets:make' is not allowed"),
    ({"randaugment_magnitude": 31}, "randaugment_magnitude=31 is out of range"),
    ({"augmix_severity": 0}, "augmix_severity=0 is out of range"),
    ({"elastic_sigma": 0.0}, "elastic_sigma=0.0 is out of range"),
    ({"aug": "cutout"}, "aug='cutout' is not allowed; choose one of none, light, strong, trivial, randaugment"),
    ({"batch_size": 0}, "batch_size=0 is out of range"),
    ({"replicate": -1}, "replicate=-1 is out of range"),
    ({"preset": "table3_z"}, "preset='table3_z' is unknown"),
    ({"use_stn": False, "use_dec": False}, "aug=learned needs a generator"),
    ({"use_dec": False, "use_enc": True}, "use_enc=true needs use_dec=true"),
    ({"joint": False}, "joint=false needs g_checkpoint"),
    ({"joint": False, "aug": "light", "g_checkpoint": "x"}, "joint=false (C on a frozen G) only"),
    ({"checkpoint_every": 3, "eval_every": 2}, "checkpoint_every=3 must be a multiple of eval_every=2"),
    ({"classifier": "badgan", "image_size": 8}, "classifier=badgan / disc=badgan needs image_size ≥ 16"),
])
def test_bad_values_name_the_key(values, fragment):
    with pytest.raises(ConfigError) as error:
        Config.from_dict(values)
    assert fragment in str(error.value)


def test_cli_strings_are_coerced():
    config = Config.from_dict(parse_overrides(["alpha=0.5", "use_dd=false", "epochs=3", "aug=light"]))
    assert (config.alpha, config.use_dd, config.epochs, config.aug) == (0.5, False, 3, "light")


def test_malformed_override_is_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["alpha"])
    with pytest.raises(ConfigError, match="unknown config key 'alhpa'"):
        parse_overrides(["alhpa=1"])


def test_grid_values_are_typed_as_their_key_and_bad_grids_are_rejected():
    assert parse_grid(["seed=3,4,5", "aug=light, trivial"]) == {"seed": [3, 4, 5], "aug": ["light", "trivial"]}
    for pairs, fragment in ((["seed"], "key=value"), (["seeed=1,2"], "unknown config key 'seeed'"),
                            (["seed=1,,2"], "key=value1,value2"), (["seed=1,1"], "repeats a value"),
                            (["seed=1", "seed=2"], "given twice"), (["seed=1,x"], "seed")):
        with pytest.raises(ConfigError, match=fragment):
            parse_grid(pairs)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().alpha = 1.0  # type: ignore[misc]


def test_presets_apply_then_explicit_keys_win():
    config = Config.from_dict({"preset": "paper_cifar10,table3_h", "epochs": 7, "dataset": "cifar10"})
    assert config.classifier == "badgan" and config.train_per_class == 400 and config.gamma == 0.001
    assert config.use_stn and config.use_dc and not config.use_gadv
    assert config.epochs == 7


def test_every_table3_row_is_a_valid_preset():
    assert list(TABLE3_ROWS) == ["a", "b", "c", "d", "e", "f", "g", "h", "l"]
    for row in TABLE3_ROWS:
        config = Config.from_dict({"preset": f"table3_{row}"})
        assert config.aug == PRESETS[f"table3_{row}"]["aug"]
    assert not Config.from_dict({"preset": "table3_b"}).g_is_adversarial
    assert Config.from_dict({"preset": "table3_l"}).use_gadv


def test_replace_validates():
    with pytest.raises(ConfigError):
        Config().replace(lr_c=-1.0)
    assert Config().replace(alpha=0.3).alpha == 0.3


def _user_guide_rows():
    """(keys, defaults) of each row of docs/user-guide.md's key table: a default per key, or one (or
    "all X") for every key of the row."""
    rows = []
    for line in (Path(__file__).resolve().parents[1] / "docs" / "user-guide.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.split("|")
        keys = re.findall(r"`([a-z_0-9]+)`", cells[1])
        text = cells[2].replace("`", "").strip()
        values = [value.strip() for value in text.removeprefix("all ").split(",")]
        values = ["" if value == '""' else value for value in values]
        rows.append((keys, values * len(keys) if len(values) == 1 else values))
    return rows


def test_the_user_guide_documents_every_key_with_its_default():
    defaults = Config().to_dict()
    documented = {}
    for keys, values in _user_guide_rows():
        assert len(keys) == len(values), f"user guide row {keys}: {len(values)} defaults"
        documented.update({key: coerce(key, value) for key, value in zip(keys, values)})
    assert set(documented) == set(FIELD_TYPES)
    assert {key: value for key, value in documented.items() if value != defaults[key]} == {}


def test_a_logged_config_with_a_key_removed_since_loads_where_the_key_did_nothing_and_is_refused_elsewhere():
    """A checkpoint or schedule written while warp_bound, c_views and replay_every existed: at the values at
    which they did nothing it rebuilds today's Config; a warp it trained cannot be rebuilt, so it is refused
    by name. Typed input (``--set``) stays strict about removed keys."""
    # (base_aug named: an unversioned auto reads as the rule it meant then, tests/test_pilot.py)
    logged = {**Config(epochs=7, base_aug="trivial").to_dict(), "warp_bound": 0, "c_views": 1, "replay_every": 10,
              "preset": "mnist5k_small"}
    config = Config.from_logged(logged, device="cpu")
    # the logged preset was already expanded: not re-applied
    assert config == Config(epochs=7, base_aug="trivial", device="cpu")
    schedule = {"trial_id": "t", "initial_config": logged, "changes": []}
    assert check_schedule(schedule)[0] == Config(epochs=7, base_aug="trivial")  # an exported schedule replays
    with pytest.raises(ConfigError, match=re.escape("warp_bound=0.25 (removed in config version 2")):
        Config.from_logged({**logged, "warp_bound": 0.25})
    with pytest.raises(ConfigError, match=re.escape("c_views=2 (removed in config version 2")):
        Config.from_logged({**logged, "c_views": 2})
    with pytest.raises(ConfigError, match="unknown config key"):
        Config.from_dict({"c_views": 1})


def test_a_config_logs_its_version_and_reads_back_unchanged():
    """``to_logged`` carries CONFIG_VERSION; ``from_logged`` of it is the same Config, even where today's
    default differs from the legacy value an unversioned config would be given (teacher_weight, base_aug)."""
    config = Config(epochs=3, teacher_weight=2.0, alpha=0.2)
    logged = config.to_logged()
    assert logged["config_version"] == CONFIG_VERSION
    assert Config.from_logged(logged) == config
    assert Config.from_logged(Config().to_logged()) == Config()
    unversioned = {key: value for key, value in Config().to_dict().items() if key not in ("teacher_weight", "base_aug")}
    assert (Config.from_logged(unversioned).teacher_weight, Config.from_logged(unversioned).base_aug) == (0.0, "none")


def test_every_hand_made_augmentation_has_a_preset_and_an_implementation():
    """One list of names (presets.HAND_MADE) serves the schema, the presets and raydaug/augment.py: each name
    has a hand_<name> preset and an implementation."""
    import torch

    from raydaug.augment import hand_made

    assert BASE_AUGS is HAND_MADE
    assert {name for name in PRESETS if name.startswith("hand_")} == {f"hand_{aug}" for aug in BASE_AUGS}
    for name in BASE_AUGS:
        assert hand_made(name, torch.rand(2, 1, 8, 8), dataset="digits").shape == (2, 1, 8, 8)

