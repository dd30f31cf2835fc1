"""Measurements on a run's Parquet logs for the failure-injection tests, on a local RUN_DIR or a storage
URI alike (``raydaug.logging.parquet.resolve``): the rows on disk (restored rows included), how far each
trial is durable, the rows written twice, and the check that every iteration is there exactly once (after
de-duplication) and written twice no more often than the restores explain (before it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from raydaug.analysis.load import load
from raydaug.logging.parquet import resolve


def _folder(run_dir: str | Path, table: str) -> tuple[pafs.FileSystem, str] | None:
    filesystem, root = resolve(str(run_dir))
    folder = f"{root}/parquet/{table}"
    return (filesystem, folder) if filesystem.get_file_info(folder).type == pafs.FileType.Directory else None


def raw_metrics(run_dir: str | Path) -> pd.DataFrame:
    """Every metrics row in storage, the rows a restore wrote again included (``analysis.load`` keeps the
    last of each (trial, iteration))."""
    columns = ["trial_id", "training_iteration", "timestamp"]
    found = _folder(run_dir, "metrics")
    if found is None:
        return pd.DataFrame(columns=columns)
    filesystem, folder = found
    partitioning = ds.partitioning(pa.schema([("trial_id", pa.string())]), flavor="hive")
    dataset = ds.dataset(folder, filesystem=filesystem, format="parquet", partitioning=partitioning,
                         exclude_invalid_files=False)
    if not dataset.files:  # the folder (on S3 a directory marker) exists before its first part is written
        return pd.DataFrame(columns=columns)
    return dataset.to_table(columns=columns).to_pandas()


def durable_iterations(run_dir: str | Path) -> dict[str, int]:
    """trial id → highest iteration with a row in storage (rows are flushed at every checkpoint)."""
    frame = raw_metrics(run_dir)
    return {str(k): int(v) for k, v in frame.groupby("trial_id")["training_iteration"].max().items()}


def every_trial_reached(run_dir: str | Path, trials: int, iteration: int) -> bool:
    durable = durable_iterations(run_dir)
    return len(durable) == trials and min(durable.values()) >= iteration


def rows_written_twice(run_dir: str | Path) -> dict[str, int]:
    """trial id → rows in storage minus distinct iterations (what restores wrote again)."""
    grouped = raw_metrics(run_dir).groupby("trial_id")["training_iteration"]
    return {str(trial): int(count - grouped.nunique()[trial]) for trial, count in grouped.size().items()}


def trial_events(run_dir: str | Path) -> pd.DataFrame:
    filesystem, folder = _folder(run_dir, "trials")
    return ds.dataset(folder, filesystem=filesystem, format="parquet").to_table().to_pandas()


def assert_every_iteration_once(run_dir: str | Path, trials: int, epochs: int,
                                redone_per_restore: int) -> dict[str, int]:
    """Each trial has the iterations 1..epochs, each exactly once after ``analysis.load`` (which keeps the
    last row of a (trial, iteration)), and no part file was skipped. The raw rows are read too, since the
    loader's de-duplication would make "once" hold by construction: every raw row is an iteration in
    1..epochs, and the rows written twice stay within what the trial's restores may legitimately redo,
    ``redone_per_restore`` iterations each (a restore continues from a checkpoint at most that far behind
    the rows already in storage). Returns trial id → rows written twice."""
    run = load(str(run_dir))
    assert run.skipped == []
    by_trial = run.metrics.groupby("trial_id", observed=True)["training_iteration"].apply(list).to_dict()
    assert len(by_trial) == trials, sorted(by_trial)
    for trial_id, iterations in by_trial.items():
        assert iterations == list(range(1, epochs + 1)), trial_id
    raw = raw_metrics(run_dir)
    raw_by_trial = raw.groupby("trial_id", observed=True)["training_iteration"].apply(list).to_dict()
    assert {str(trial) for trial in raw_by_trial} == {str(trial) for trial in by_trial}
    events = trial_events(run_dir)
    # every start or restore after a trial's first one redoes rows: a restore from a checkpoint, or a restart
    # from scratch when the driver died before the trial's first checkpoint reached storage
    restores = {str(trial): int(count) - 1 for trial, count in events.groupby("trial_id").size().items()}
    written_twice = {}
    for trial_id, iterations in raw_by_trial.items():
        assert set(iterations) == set(range(1, epochs + 1)), (trial_id, sorted(iterations))
        written_twice[str(trial_id)] = twice = len(iterations) - len(set(iterations))
        count = restores.get(str(trial_id), 0)
        assert twice <= redone_per_restore * count, (
            f"trial {trial_id}: {twice} rows written twice, more than {redone_per_restore} per restore "
            f"({count} restore(s)): {sorted(iterations)}")
    return written_twice


def report(title: str, **numbers: Any) -> None:
    """One line per measurement (visible with -s; docs/reliability.md quotes them)."""
    print(f"\n[reliability] {title}: " + ", ".join(f"{key}={value}" for key, value in numbers.items()))
