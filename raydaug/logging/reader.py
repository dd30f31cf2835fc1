"""Read a run's Parquet parts back: the one reader of the layout that ``parquet.py`` writes.

``read_table(filesystem, root, folder, schema, skipped)`` reads every readable part of one table
(``parquet/metrics``, ``parquet/trials``, ``parquet/pbt_events``, ``parquet/pilots``) in an explicit schema (a column
missing from a part reads as null; ``trial_id`` of the metrics comes from its ``trial_id=<id>`` folder);
a truncated, foreign or non-Parquet part is skipped and named in ``skipped``. ``latest_rows`` is the
one rule for restored trials: of duplicate ``(trial_id, training_iteration)`` rows the one written last
(largest ``timestamp``) counts. ``read_metrics(run_dir)`` puts the two together. ``analysis.load`` and
the summary that ``raydaug tune`` prints both read through here.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .parquet import METRICS_SCHEMA, PILOT_ARMS_SCHEMA, resolve

METRICS_DIR = "parquet/metrics"
TRIALS_DIR = "parquet/trials"
EVENTS_DIR = "parquet/pbt_events"
PILOTS_DIR = "parquet/pilots"
PILOT_ARMS_DIR = "parquet/pilot_arms"
PARTITION_KEY = "trial_id"
# trial_id is read as a dictionary column (a pandas Categorical): one string per trial, not per row.
PARTITION_FIELD = pa.field(PARTITION_KEY, pa.dictionary(pa.int32(), pa.string()))
METRICS_READ_SCHEMA = pa.schema([PARTITION_FIELD] + list(METRICS_SCHEMA))
# Columns a part file must have to belong to the table (otherwise it is "foreign").
REQUIRED_COLUMNS = {
    METRICS_DIR: ("training_iteration",),
    TRIALS_DIR: ("trial_id", "config_json"),
    EVENTS_DIR: ("training_iteration", "dst_trial", "key"),
    PILOTS_DIR: ("trial_id", "base_aug", "acc_val"),
    PILOT_ARMS_DIR: ("key", "acc_val", "correct"),
}


def list_parts(filesystem: pafs.FileSystem, folder: str) -> tuple[list[str], list[str]]:
    """(part files, other visible files) below ``folder``; hidden names (temp files) are ignored."""
    info = filesystem.get_file_info(folder)
    if info.type != pafs.FileType.Directory:
        return [], []
    parts, others = [], []
    for entry in filesystem.get_file_info(pafs.FileSelector(folder, recursive=True)):
        if entry.type != pafs.FileType.File:
            continue
        relative = entry.path[len(folder):].lstrip("/")
        if any(piece.startswith((".", "_")) for piece in relative.split("/")):
            continue
        (parts if entry.path.endswith(".parquet") else others).append(entry.path)
    return sorted(parts), sorted(others)


def partition_value(path: str) -> str | None:
    for piece in reversed(path.split("/")[:-1]):
        if piece.startswith(f"{PARTITION_KEY}="):
            return piece.split("=", 1)[1]
    return None


def reason(error: BaseException) -> str:
    """An error on one line: ``Type: first line of its message``."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def read_one(filesystem: pafs.FileSystem, path: str, schema: pa.Schema, required: tuple[str, ...]) -> pa.Table:
    """Read one part file in ``schema`` (missing columns → nulls) or raise with the reason."""
    physical = pq.read_schema(path, filesystem=filesystem)
    missing = [name for name in required if name not in physical.names]
    if missing:
        raise ValueError(f"not a raydaug part file (no column {', '.join(missing)})")
    table = ds.dataset(path, schema=schema, format="parquet", filesystem=filesystem).to_table()
    for name in required:
        if table.column(name).null_count:
            raise ValueError(f"column {name} has nulls")
    return table


def read_table(filesystem: pafs.FileSystem, root: str, folder: str, schema: pa.Schema,
               skipped: list[tuple[str, str]], attempts: int = 3) -> pa.Table:
    """All readable part files of one table. Fast path: one dataset scan; if any file is bad, read
    file by file so the bad ones can be named and skipped. A part that vanished between listing and
    reading was merged by a concurrent ``raydaug compact``: list again (its rows are in a new part)."""
    for attempt in range(attempts):
        found: list[tuple[str, str]] = []
        table = _read_listed_parts(filesystem, root, folder, schema, found)
        vanished = [path for path, _ in found
                    if filesystem.get_file_info(path).type == pafs.FileType.NotFound]
        if not vanished or attempt == attempts - 1:
            skipped.extend(found)
            return table
    raise AssertionError("unreachable")


def _read_listed_parts(filesystem: pafs.FileSystem, root: str, folder: str, schema: pa.Schema,
                       skipped: list[tuple[str, str]]) -> pa.Table:
    base = f"{root}/{folder}"
    parts, others = list_parts(filesystem, base)
    for path in others:
        skipped.append((path, "not a .parquet part file"))
    partitioned = PARTITION_KEY in schema.names and folder == METRICS_DIR
    if partitioned:
        for path in [p for p in parts if partition_value(p) is None]:
            skipped.append((path, f"not inside a {PARTITION_KEY}=<id> folder"))
        parts = [p for p in parts if partition_value(p) is not None]
    if not parts:
        return schema.empty_table()
    required = REQUIRED_COLUMNS[folder]
    try:
        dataset = ds.dataset(parts, schema=schema, format="parquet", filesystem=filesystem,
                             partitioning=ds.partitioning(
                                 pa.schema([PARTITION_FIELD]), flavor="hive",
                                 dictionaries={PARTITION_KEY: pa.array(sorted({partition_value(p) for p in parts}))})
                             if partitioned else None,
                             partition_base_dir=base if partitioned else None)
        table = dataset.to_table()
        if not any(table.column(name).null_count for name in required):
            return table
    except (pa.ArrowException, OSError, ValueError):
        pass
    tables = []
    for path in parts:
        try:
            table = read_one(filesystem, path, schema if not partitioned else
                             pa.schema([f for f in schema if f.name != PARTITION_KEY]), required)
        except (pa.ArrowException, OSError, ValueError) as error:
            skipped.append((path, reason(error)))
            continue
        if partitioned:
            trial_id = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, np.int32)),
                                                      pa.array([partition_value(path)], pa.string()))
            table = table.append_column(PARTITION_FIELD, trial_id)
            table = table.select(schema.names)
        tables.append(table)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def latest_rows(table: pa.Table) -> pd.DataFrame:
    """Metrics rows sorted by (trial_id, training_iteration), keeping the latest-written row of each pair
    (a restored trial reports the iterations after its checkpoint again)."""
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    trial = frame[PARTITION_KEY].astype("category")
    frame[PARTITION_KEY] = trial.cat.reorder_categories(sorted(trial.cat.categories))
    if frame.empty:
        return frame
    codes = frame[PARTITION_KEY].cat.codes.to_numpy(dtype=np.int64)
    iteration = frame["training_iteration"].to_numpy(dtype=np.int64)
    # the usual case (no restore, parts read in order): strictly increasing already, nothing to do
    if len(frame) < 2 or bool(np.all((codes[1:] > codes[:-1]) |
                                     ((codes[1:] == codes[:-1]) & (iteration[1:] > iteration[:-1])))):
        return frame
    stamp = frame["timestamp"].to_numpy(dtype=np.float64, na_value=-np.inf)
    order = np.lexsort((stamp, iteration, codes))
    key_codes, key_iter = codes[order], iteration[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (key_codes[1:] != key_codes[:-1]) | (key_iter[1:] != key_iter[:-1])
    return frame.take(order[last]).reset_index(drop=True)


def read_metrics(run_dir: str) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(one row per (trial_id, training_iteration), the part files skipped) of ``run_dir`` (a local path
    or a URI); an empty frame when the run has no metrics yet."""
    filesystem, root = resolve(run_dir)
    skipped: list[tuple[str, str]] = []
    return latest_rows(read_table(filesystem, root, METRICS_DIR, METRICS_READ_SCHEMA, skipped)), skipped


def read_arm_records(store: str) -> dict[str, dict[str, Any]]:
    """The pilot's arms that ``store`` (a run folder or URI) holds: {key: {"acc_val", "acc_val_last",
    "correct" (a list of bools)}} (raydaug/pilot_arms.py); empty when it holds none. Unreadable parts are skipped."""
    filesystem, root = resolve(store)
    table = read_table(filesystem, root, PILOT_ARMS_DIR, PILOT_ARMS_SCHEMA, [])
    return {row["key"]: {"acc_val": row["acc_val"], "acc_val_last": row["acc_val_last"],
                         "correct": row["correct"]}
            for row in table.to_pylist()}
