"""Bad input at the command line (`raydaug train` and `raydaug tune`, through ``raydaug.cli.main``).

Every case must exit with code 2 and one ``raydaug: error: ...`` line that names the problem, before any
training (the Trainer's epoch and the Tuner are booby-trapped) and without changing anything in the
storage folder (a truncated checkpoint is refused with its path and left as it is). The few cases that
need a running cluster to be detected (more GPUs or CPUs per trial than a node has) use the session's Ray.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from raydaug.checkpoint import save_checkpoint
from raydaug.cli import main
from tests.helpers import TINY, set_args
from tests.processes import free_port

TINY_SETS = set_args({**TINY, "epochs": 1})
TINY_EXPERIMENT = f"""
from raydaug.experiment import Experiment

def experiment():
    return Experiment(name="tiny", base={ {**TINY, "epochs": 1}!r})
"""
# a value drawn from the point's own config: 3 + 172 per class is more than digits has
SAMPLED_BASE = {key: value for key, value in TINY.items() if key not in ("train_per_class", "val_per_class")}
SAMPLED_EXPERIMENT = f"""
from ray import tune
from raydaug.experiment import Experiment

def experiment():
    return Experiment(name="sampled", base={ {**SAMPLED_BASE, "epochs": 1}!r},
                      search_space={{"train_per_class": tune.grid_search([3]),
                                    "val_per_class": tune.sample_from(lambda config: 175 - config["train_per_class"])}})
"""
FILES = {
    "tiny.py": TINY_EXPERIMENT,
    "sampled.py": SAMPLED_EXPERIMENT,
    "no_experiment.py": "X = 1\n",
    "broken.py": "def experiment(:\n",
    "not_a_folder": "a file\n",
}
TUNE = ["tune", "{tmp}/tiny.py", "--storage", "{runs}"]
TRAIN = ["train", *TINY_SETS, "--out", "{runs}/train"]


# (id, argv, fragment of the one-line message, needs the session's Ray)
CASES = [
    # ---- raydaug train
    ("train-unknown-key", [*TRAIN, "--set", "colour=red"], "unknown config key 'colour'", False),
    ("train-wrong-type", [*TRAIN, "--set", "epochs=2.5"], "'epochs' expects int", False),
    ("train-wrong-bool", [*TRAIN, "--set", "use_dc=maybe"], "'use_dc' expects bool", False),
    ("train-malformed-set", [*TRAIN, "--set", "alpha"], "--set expects key=value", False),
    ("train-lr-zero", [*TRAIN, "--set", "lr_c=0"], "lr_c=0.0 is out of range", False),
    ("train-lr-negative", [*TRAIN, "--set", "lr_g=-1e-3"], "lr_g=-0.001 is out of range", False),
    ("train-alpha-negative", [*TRAIN, "--set", "alpha=-0.1"], "alpha=-0.1 is out of range", False),
    ("train-beta-negative", [*TRAIN, "--set", "beta=-1"], "beta=-1.0 is out of range", False),
    ("train-gamma-nan", [*TRAIN, "--set", "gamma=nan"], "gamma=nan is out of range", False),
    ("train-too-many-per-class", [*TRAIN, "--set", "train_per_class=172"],
     "train_per_class=172 + val_per_class=3 exceeds the 174 training images per class", False),
    ("train-unknown-dataset", [*TRAIN, "--set", "dataset=imagenet"], "dataset='imagenet' is not allowed", False),
    ("train-missing-offline-data", [*TRAIN, "--set", "dataset=mnist", "--set", "data_dir={tmp}/no_data"],
     "dataset=mnist: could not load it from {tmp}/no_data", False),
    ("train-dd-needs-pairs", [*TRAIN, "--set", "train_per_class=1"], "use_dd=true needs train_per_class ≥ 2", False),
    ("train-missing-g-checkpoint", [*TRAIN, "--set", "joint=false", "--set", "g_checkpoint={tmp}/none.pt"],
     "cannot read checkpoint {tmp}/none.pt", False),
    ("train-missing-tune-config", ["train", "--config", "{tmp}/nosuch.py", "--out", "{runs}/train"],
     "tune_config '{tmp}/nosuch.py' not found", False),
    ("train-config-without-experiment", ["train", "--config", "{tmp}/no_experiment.py", "--out", "{runs}/train"],
     "does not define experiment()", False),
    ("train-resume-nothing", [*TRAIN, "--resume"], "--resume: no checkpoint at", False),
    ("train-resume-truncated-checkpoint", ["train", *TINY_SETS, "--out", "{runs}/damaged", "--resume"],
     "{runs}/damaged/checkpoints/state.pt is truncated", False),
    # ---- raydaug tune: the experiment
    ("tune-missing-tune-config", ["tune", "nosuch_experiment", "--storage", "{runs}"],
     "tune_config 'nosuch_experiment' not found", False),
    ("tune-config-without-experiment", ["tune", "{tmp}/no_experiment.py", "--storage", "{runs}"],
     "does not define experiment()", False),
    ("tune-config-import-error", ["tune", "{tmp}/broken.py", "--storage", "{runs}"], "failed to import: SyntaxError",
     False),
    ("tune-unknown-key", [*TUNE, "--set", "colour=red"], "unknown config key 'colour'", False),
    ("tune-wrong-type", [*TUNE, "--set", "use_dc=maybe"], "'use_dc' expects bool", False),
    ("tune-lr-zero", [*TUNE, "--set", "lr_dc=0"], "lr_dc=0.0 is out of range", False),
    ("tune-lr-negative", [*TUNE, "--set", "lr_dd=-1"], "lr_dd=-1.0 is out of range", False),
    ("tune-alpha-negative", [*TUNE, "--set", "alpha=-1"], "alpha=-1.0 is out of range", False),
    ("tune-gamma-negative", [*TUNE, "--set", "gamma=-0.5"], "gamma=-0.5 is out of range", False),
    ("tune-too-many-per-class", [*TUNE, "--set", "train_per_class=200"], "exceeds the 174 training images", False),
    ("tune-sampled-value-invalid", ["tune", "{tmp}/sampled.py", "--storage", "{runs}"],
     "search space point {{'train_per_class': 3, 'val_per_class': 172}} is invalid: train_per_class=3 + "
     "val_per_class=172 exceeds", False),
    ("tune-unknown-dataset", [*TUNE, "--set", "dataset=imagenet"], "dataset='imagenet' is not allowed", False),
    ("tune-missing-offline-data", [*TUNE, "--set", "dataset=cifar10", "--set", "data_dir={tmp}/no_data"],
     "dataset=cifar10: no files under {tmp}/no_data", False),
    # ---- raydaug tune: where and how it runs
    ("tune-storage-is-a-file", [*TUNE[:2], "--storage", "{tmp}/not_a_folder"], "is a file, not a folder", False),
    ("tune-storage-unwritable", [*TUNE[:2], "--storage", "/proc/1/runs"], "/proc/1 is not a writable folder", False),
    ("tune-storage-unknown-scheme", [*TUNE[:2], "--storage", "nosuchscheme://bucket/runs"],
     "--storage 'nosuchscheme://bucket/runs': pyarrow cannot open it", False),
    ("tune-address-malformed", [*TUNE, "--address", "not an address"], "must be 'auto' or HOST:PORT", False),
    ("tune-address-bad-port", [*TUNE, "--address", "127.0.0.1:99999"], "must be 'auto' or HOST:PORT", False),
    ("tune-address-unreachable", [*TUNE, "--address", "127.0.0.1:{port}"],
     "--address 127.0.0.1:{port}: no Ray cluster answers", False),
    ("tune-fractional-gpu-above-1", [*TUNE, "--gpus-per-trial", "1.5"], "must be a whole number", False),
    ("tune-negative-gpu", [*TUNE, "--gpus-per-trial", "-1"], "--gpus-per-trial must be ≥ 0", False),
    ("tune-zero-cpu", [*TUNE, "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0", False),
    ("tune-zero-samples", [*TUNE, "--num-samples", "0"], "--num-samples must be ≥ 1", False),
    ("tune-bad-max-failures", [*TUNE, "--max-failures", "-2"], "--max-failures must be ≥ -1", False),
    ("tune-device-cuda-without-gpu", [*TUNE, "--set", "device=cuda"], "device=cuda needs --gpus-per-trial", False),
    ("tune-bad-name", [*TUNE, "--name", "a/b"], "must be a plain folder name", False),
    ("tune-resume-nothing", [*TUNE, "--resume"], "--resume: no Tune experiment to resume", False),
    ("tune-run-exists", [*TUNE, "--name", "existing"], "already holds a run", False),
    ("tune-more-gpus-than-nodes", [*TUNE, "--gpus-per-trial", "1"], "each trial asks for 1.0 GPU", True),
    ("tune-more-cpus-than-nodes", [*TUNE, "--cpus-per-trial", "64"], "each trial asks for 64 CPUs", True),
]


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """tmp_path with the case files and an empty storage folder (holding one earlier run); training and
    Tune are booby-trapped so that a case that gets that far fails loudly."""
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "runs" / "existing").mkdir(parents=True)
    (tmp_path / "runs" / "existing" / "marker").write_text("an earlier run\n")
    damaged = tmp_path / "runs" / "damaged" / "checkpoints" / "state.pt"  # a run whose checkpoint was cut short
    save_checkpoint(damaged, {"epoch": torch.tensor(1)})
    damaged.write_bytes(damaged.read_bytes()[:-20])

    def trap(*args, **kwargs):
        raise AssertionError("training started on bad input")

    monkeypatch.setattr("raydaug.train.Trainer.train_epoch", trap)
    monkeypatch.setattr("raydaug.tune.runner.build_tuner", trap)
    return tmp_path


@pytest.mark.parametrize("argv", [TRAIN, TUNE], ids=["train", "tune"])
def test_the_commands_the_cases_change_are_accepted_and_reach_the_trap(workspace, request, argv):
    """The other side of the table: TRAIN and TUNE as they are (every case adds or swaps one bad part)
    pass every check and get as far as training, where the workspace's trap fires. So a case's refusal
    comes from its bad part, a check that refuses good input fails here, and the trap is wired to what
    the CLI really calls (otherwise a bad input that slipped through would start a real run)."""
    if argv is TUNE:
        request.getfixturevalue("ray_session")  # as a driver would find it: no Ray started here
    values = {"tmp": str(workspace), "runs": str(workspace / "runs")}
    with pytest.raises(AssertionError, match="training started on bad input"):
        main([arg.format(**values) for arg in argv])


@pytest.mark.parametrize("argv, fragment, needs_ray", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_on_one_line_before_anything_is_written(workspace, capsys, request, argv, fragment, needs_ray):
    if needs_ray:
        request.getfixturevalue("ray_session")
    if "/proc/1" in " ".join(argv) and not Path("/proc/1").is_dir():
        pytest.skip("needs Linux /proc")
    port = free_port()  # nothing listens there
    values = {"tmp": str(workspace), "runs": str(workspace / "runs"), "port": port}
    argv = [arg.format(**values) for arg in argv]
    fragment = fragment.format(**values)
    before = tree(workspace)
    capsys.readouterr()

    started = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - started

    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("raydaug: error:") and "\n" not in err, err
    assert fragment in err, err
    assert tree(workspace) == before, "a bad input left files behind"
    assert elapsed < 30, f"took {elapsed:.0f} s to refuse"
