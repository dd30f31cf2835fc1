"""Sweeps on your data: a PBT population on a folder of images (exploits included), its report naming the data's
classes, and a Tune experiment on arrays handed over from Python through Ray's object store."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from raydaug.analysis.grids import render_samples
from raydaug.analysis.load import load
from raydaug.tune.options import TuneOptions
from tests.folders import write_folder

pytest.importorskip("ray")
ONE_AT_A_TIME = 1.5  # of the session's 2 CPUs: the two trials alternate, so PBT exploits for certain


def test_a_pbt_population_on_a_folder_exploits_and_reports_its_class_names(ray_session, tmp_path, monkeypatch):
    from raydaug.tune.runner import run_tune

    monkeypatch.setenv("RAYDAUG_CACHE", str(tmp_path / "cache"))
    root = write_folder(tmp_path / "flowers", {"iris": 8, "rose": 8, "tulip": 8}, colour=True)
    options = TuneOptions(config="smoke", smoke=True, name="flowers", storage=str(tmp_path / "runs"),
                          cpus_per_trial=ONE_AT_A_TIME,
                          sets=("dataset=folder", f"data_dir={root}", "train_per_class=4", "val_per_class=2"))
    run_tune(options, log=lambda _line: None)
    run_dir = tmp_path / "runs" / "flowers"
    events = ds.dataset(run_dir / "parquet" / "pbt_events", format="parquet").to_table().to_pandas()
    assert not events.empty, "the forced PBT never exploited"
    run = load(str(run_dir))
    assert {config["dataset"] for config in run.trials["config"]} == {"folder"}
    checkpoint = next(run_dir.glob("*/checkpoint_*/state.pt"))
    grid, labels = render_samples(checkpoint, count=3, num_z=1)
    assert labels == ["iris", "rose", "tulip"] and grid.shape[0] == 3  # colour, the data's class names


def test_a_sweep_on_arrays_carries_them_to_the_trials(ray_session, tmp_path):
    import raydaug.tune

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 12)
    images = rng.integers(0, 80, (24, 16, 16), dtype=np.uint8)
    images[labels == 1, 6:10] = 255
    trials = raydaug.tune.sweep("smoke", images=images, labels=labels, class_names=["dark", "bar"], smoke=True,
                                storage=str(tmp_path / "runs"), name="arrays", cpus_per_trial=ONE_AT_A_TIME,
                                sets={"train_per_class": 4, "val_per_class": 2}, log=lambda _line: None)
    assert isinstance(trials, pd.DataFrame) and len(trials) == 2
    assert set(trials.columns) >= {"trial_id", "acc/val", "acc/test"}
    run = load(str(tmp_path / "runs" / "arrays"))
    assert {config["dataset"] for config in run.trials["config"]} == {"memory"}
    assert not list(tmp_path.glob("**/*.npy")) and not list(tmp_path.glob("**/*.npz"))  # nothing written aside


def test_a_memory_sweep_without_images_fails_before_ray_starts(tmp_path):
    from raydaug.errors import UsageError
    from raydaug.tune.runner import run_tune

    with pytest.raises(UsageError, match="dataset=memory: the images come from Python"):
        run_tune(TuneOptions(config="smoke", smoke=True, storage=str(tmp_path), sets=("dataset=memory",)))
