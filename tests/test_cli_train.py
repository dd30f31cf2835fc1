"""`raydaug train` from the command line: success, determinism, and one-line failures before any training."""
import importlib.util
import subprocess
import sys

import pandas as pd
import pytest

from raydaug.cli import main
from tests.helpers import TINY, set_args

TINY_ARGS = set_args({**TINY, "epochs": 1})


def test_train_command_runs_and_reports(tmp_path, capsys):
    assert main(["train", *TINY_ARGS, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "epoch    1/1" in out and "results in" in out
    assert f"tensorboard --logdir {tmp_path / 'run' / 'tensorboard'}" in out
    assert (tmp_path / "run" / "result.json").exists()
    assert any((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("installed", [False, True])
def test_the_tensorboard_command_says_how_to_install_tensorboard_when_missing(monkeypatch, installed):
    """Only tensorboardX (the writer) is a dependency; the viewer comes with the extra raydaug[tensorboard]."""
    from raydaug.logging import tensorboard

    real = importlib.util.find_spec
    monkeypatch.setattr(tensorboard.importlib.util, "find_spec",
                        lambda name, *rest: (object() if installed else None) if name == "tensorboard"
                        else real(name, *rest))
    command = tensorboard.viewer_command("/runs/my run")
    assert command.startswith("tensorboard --logdir '/runs/my run'")
    assert ("pip install 'raydaug[tensorboard]'" in command) is not installed


def test_an_out_folder_that_cannot_be_created_fails_on_one_line(tmp_path, capsys):
    """A path under a regular file (root may write anywhere, so no chmod): exit 2 and one line, as for every
    other bad input, before any training; nothing is created."""
    blocker = tmp_path / "somefile"
    blocker.write_text("not a folder\n")
    for out in (blocker / "sub", blocker):
        assert main(["train", *TINY_ARGS, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("raydaug: error: --out") and "is a file" in err and "\n" not in err, err
    assert blocker.read_text() == "not a folder\n"


@pytest.mark.parametrize("args, fragment", [
    (["--set", "lr_c=-1"], "lr_c=-1.0 is out of range"),
    (["--set", "colour=red"], "unknown config key 'colour'"),
    (["--set", "dataset=cifar10", "--set", "data_dir=/nonexistent"],
     "dataset=cifar10: could not load it from /nonexistent"),
    (["--set", "joint=false", "--set", "g_checkpoint=/nonexistent/state.pt"],
     "cannot read checkpoint /nonexistent/state.pt"),
    (["--config", "/nonexistent/x.py"], "not found"),
    (["--resume"], "no checkpoint at"),
])
def test_bad_input_fails_on_one_line_before_training(tmp_path, capsys, args, fragment):
    out_dir = tmp_path / "run"
    assert main(["train", *args, "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raydaug: error:") and fragment in err and "\n" not in err
    assert not out_dir.exists(), "no half-created run folder"


def test_module_entry_point_help():
    done = subprocess.run([sys.executable, "-m", "raydaug", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "tune", "analyze", "schedule", "compact"):
        assert command in done.stdout


def _metrics(run_dir) -> pd.DataFrame:
    """A run's metrics rows without the timing columns (the only ones that may differ between runs)."""
    frame = pd.read_parquet(run_dir / "parquet" / "metrics")
    timing = ["timestamp", "time_total_s", "time/step_ms", "time/samples_per_s"]
    return frame.drop(columns=timing + ["trial_id"]).sort_values("training_iteration").reset_index(drop=True)


def test_two_train_runs_with_one_seed_log_identical_metrics(tmp_path):
    """Same seed on the CPU: every logged number of two `raydaug train` runs is identical (timings aside);
    another seed gives other numbers."""
    args = ["train", *TINY_ARGS, "--set", "epochs=2"]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert main([*args, "--set", f"seed={seed}", "--out", str(tmp_path / name)]) == 0
    first, second, other = (_metrics(tmp_path / name) for name in "abc")
    assert len(first) == 2
    assert first.equals(second)
    assert not first["loss/c"].equals(other["loss/c"])
