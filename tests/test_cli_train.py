"""`raydaug train` from the command line: success and one-line failures before any training."""
import subprocess
import sys

import pytest

from raydaug.cli import main

TINY_ARGS = ["--set", "epochs=1", "--set", "ngf=4", "--set", "noise_dim=8", "--set", "train_per_class=3",
             "--set", "val_per_class=3", "--set", "eval_every=1", "--set", "checkpoint_every=1"]


def test_train_command_runs_and_reports(tmp_path, capsys):
    assert main(["train", *TINY_ARGS, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "epoch    1/1" in out and "results in" in out
    assert (tmp_path / "run" / "result.json").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--set", "lr_c=-1"], "lr_c=-1.0 is out of range"),
    (["--set", "colour=red"], "unknown config key 'colour'"),
    (["--set", "dataset=cifar10", "--set", "data_dir=/nonexistent"], "dataset=cifar10: could not load it from /nonexistent"),
    (["--set", "joint=false", "--set", "g_checkpoint=/nonexistent/state.pt"], "cannot read checkpoint /nonexistent/state.pt"),
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
