"""Read a run's Parquet logs into pandas: ``load(run_dir)`` → :class:`RunData` (metrics, trials, events).

The reader is a ``pyarrow.dataset`` over ``RUN_DIR/parquet/{metrics,trials,pbt_events}`` with an explicit
schema (a metric missing from a part file reads as null) and hive partitioning (``trial_id`` comes from
the ``trial_id=<id>`` folder). Restored trials re-report iterations: of duplicate
``(trial_id, training_iteration)`` rows the one written last (largest ``timestamp``) is kept.

Damaged input never stops the read: a truncated, foreign or non-Parquet part file is reported (a
:class:`PartFileWarning` naming the file) and skipped, and every readable part still loads.
"""
from __future__ import annotations

import json
import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raydaug.errors import NoMetricsError, NotARunError, PartFileWarning
from raydaug.logging.parquet import (METRICS_SCHEMA, PBT_EVENTS_SCHEMA, TRIALS_SCHEMA, resolve,
                                     write_table_atomic)

METRICS_DIR = "parquet/metrics"
TRIALS_DIR = "parquet/trials"
EVENTS_DIR = "parquet/pbt_events"
PARTITION_KEY = "trial_id"
# trial_id is read as a dictionary column (a pandas Categorical): one string per trial, not per row.
PARTITION_FIELD = pa.field(PARTITION_KEY, pa.dictionary(pa.int32(), pa.string()))
METRICS_READ_SCHEMA = pa.schema([PARTITION_FIELD] + list(METRICS_SCHEMA))
# Columns a part file must have to belong to the table (otherwise it is "foreign").
REQUIRED_COLUMNS = {
    METRICS_DIR: ("training_iteration",),
    TRIALS_DIR: ("trial_id", "config_json"),
    EVENTS_DIR: ("training_iteration", "dst_trial", "key"),
}


class RunData(NamedTuple):
    """A run's logs as pandas DataFrames.

    ``metrics``: one row per (trial_id, training_iteration), sorted by both; columns ``trial_id``,
    ``training_iteration``, ``time_total_s``, ``timestamp`` and every DESIGN metric.
    ``trials``: one row per trial start/restore (``trial_id, timestamp, event, training_iteration,
    config_json``) plus ``config`` (the parsed dict), sorted by time.
    ``events``: PBT exploit/explore rows (one per mutated key), sorted by time.
    ``skipped``: ``(path, reason)`` of every part file that could not be read.
    """

    run_dir: str
    metrics: pd.DataFrame
    trials: pd.DataFrame
    events: pd.DataFrame
    skipped: list[tuple[str, str]]


# ---------------------------------------------------------------------- discovery
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


def _require_run(run_dir: str) -> tuple[pafs.FileSystem, str]:
    filesystem, root = resolve(run_dir)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise NotARunError(f"{run_dir}: no such run folder")
    if info.type != pafs.FileType.Directory:
        raise NotARunError(f"{run_dir} is a file, not a run folder (RUN_DIR holds parquet/metrics/...)")
    if filesystem.get_file_info(f"{root}/parquet").type != pafs.FileType.Directory:
        hint = ""
        children = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        runs = [c.base_name for c in children if c.type == pafs.FileType.Directory
                and filesystem.get_file_info(f"{c.path}/parquet").type == pafs.FileType.Directory]
        if runs:
            hint = f"; it contains run(s) {', '.join(sorted(runs)[:5])}: pass one of those"
        raise NotARunError(f"{run_dir} is not a raydaug run: it has no parquet/ folder{hint}")
    return filesystem, root


# ---------------------------------------------------------------------- reading
def _partition_value(path: str) -> str | None:
    for piece in reversed(path.split("/")[:-1]):
        if piece.startswith(f"{PARTITION_KEY}="):
            return piece.split("=", 1)[1]
    return None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _read_one(filesystem: pafs.FileSystem, path: str, schema: pa.Schema,
              required: tuple[str, ...]) -> pa.Table:
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


def _read_parts(filesystem: pafs.FileSystem, root: str, folder: str, schema: pa.Schema,
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
        for path in [p for p in parts if _partition_value(p) is None]:
            skipped.append((path, f"not inside a {PARTITION_KEY}=<id> folder"))
        parts = [p for p in parts if _partition_value(p) is not None]
    if not parts:
        return schema.empty_table()
    required = REQUIRED_COLUMNS[folder]
    try:
        dataset = ds.dataset(parts, schema=schema, format="parquet", filesystem=filesystem,
                             partitioning=ds.partitioning(
                                 pa.schema([PARTITION_FIELD]), flavor="hive",
                                 dictionaries={PARTITION_KEY: pa.array(sorted({_partition_value(p) for p in parts}))})
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
            table = _read_one(filesystem, path, schema if not partitioned else
                              pa.schema([f for f in schema if f.name != PARTITION_KEY]), required)
        except (pa.ArrowException, OSError, ValueError) as error:
            skipped.append((path, _reason(error)))
            continue
        if partitioned:
            trial_id = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, np.int32)),
                                                      pa.array([_partition_value(path)], pa.string()))
            table = table.append_column(PARTITION_FIELD, trial_id)
            table = table.select(schema.names)
        tables.append(table)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _dedupe_metrics(table: pa.Table) -> pd.DataFrame:
    """Sort by (trial_id, training_iteration) and keep the latest-written row of each pair."""
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


def _sorted_frame(table: pa.Table, by: list[str]) -> pd.DataFrame:
    frame = table.to_pandas()
    # a compaction racing this read may show a row twice (old part + merged part): identical rows
    frame = frame.drop_duplicates()
    return frame.sort_values(by, kind="stable").reset_index(drop=True)


def load(run_dir: str, require_metrics: bool = True) -> RunData:
    """Read ``run_dir`` (a local path or a pyarrow URI). Raises :class:`NotARunError` for a folder that
    is not a run and :class:`NoMetricsError` when no metric row is readable (unless
    ``require_metrics=False``); warns (:class:`PartFileWarning`) for each skipped part file."""
    filesystem, root = _require_run(run_dir)
    skipped: list[tuple[str, str]] = []
    metrics = _dedupe_metrics(_read_parts(filesystem, root, METRICS_DIR, METRICS_READ_SCHEMA, skipped))
    trials = _sorted_frame(_read_parts(filesystem, root, TRIALS_DIR, TRIALS_SCHEMA, skipped),
                           ["timestamp", "trial_id"])
    trials["config"] = [json.loads(text) for text in trials["config_json"]]
    events = _sorted_frame(_read_parts(filesystem, root, EVENTS_DIR, PBT_EVENTS_SCHEMA, skipped),
                           ["timestamp", "dst_trial", "key"])
    for path, reason in skipped:
        warnings.warn(f"skipped {path}: {reason}", PartFileWarning, stacklevel=2)
    if require_metrics and metrics.empty:
        detail = f" ({len(skipped)} unreadable part file(s) skipped)" if skipped else ""
        raise NoMetricsError(f"{run_dir} has no metrics yet: nothing readable under "
                             f"{root}/{METRICS_DIR}{detail}")
    return RunData(run_dir, metrics, trials, events, skipped)


# ---------------------------------------------------------------------- per-trial views
def config_dicts(run: RunData, which: str = "first") -> dict[str, dict[str, Any]]:
    """trial_id → the config it started with (``which="first"``) or of its latest start/restore
    (``"last"``); ``{}`` for a trial that has metrics but no trials row."""
    rows: dict[str, dict[str, Any]] = {}
    ordered = run.trials if which == "first" else run.trials.iloc[::-1]
    for trial_id, config in zip(ordered["trial_id"], ordered["config"]):
        rows.setdefault(str(trial_id), config)
    ids = sorted(set(rows) | {str(t) for t in run.metrics[PARTITION_KEY].unique()})
    return {trial_id: rows.get(trial_id, {}) for trial_id in ids}


def trial_configs(run: RunData, which: str = "first") -> pd.DataFrame:
    """:func:`config_dicts` as a DataFrame: one row per trial (index ``trial_id``), config keys as columns."""
    frame = pd.DataFrame.from_dict(config_dicts(run, which), orient="index")
    frame.index.name = PARTITION_KEY
    return frame


def best_rows(run: RunData, metric: str = "acc/val") -> pd.DataFrame:
    """Each trial's row with the highest ``metric`` (ties: the earliest iteration), best first."""
    scored = run.metrics.dropna(subset=[metric])
    if scored.empty:
        return scored
    index = scored.groupby(PARTITION_KEY, sort=True)[metric].idxmax()
    best = scored.loc[index.to_numpy()]
    return best.sort_values([metric, PARTITION_KEY], ascending=[False, True], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------- compaction
def compact_run(run_dir: str) -> dict[str, int]:
    """Merge each partition's part files into one new part (written whole, then the merged parts are
    removed). Unreadable parts are left in place and reported. Returns {folder: parts merged}."""
    filesystem, root = _require_run(run_dir)
    merged: dict[str, int] = {}
    folders = [(TRIALS_DIR, TRIALS_SCHEMA), (EVENTS_DIR, PBT_EVENTS_SCHEMA)]
    metric_root = f"{root}/{METRICS_DIR}"
    if filesystem.get_file_info(metric_root).type == pafs.FileType.Directory:
        for entry in filesystem.get_file_info(pafs.FileSelector(metric_root)):
            if entry.type == pafs.FileType.Directory and entry.base_name.startswith(f"{PARTITION_KEY}="):
                folders.append((f"{METRICS_DIR}/{entry.base_name}", METRICS_SCHEMA))
    for folder, schema in folders:
        parts, _ = list_parts(filesystem, f"{root}/{folder}")
        parts = [p for p in parts if p.rsplit("/", 1)[0] == f"{root}/{folder}"]
        if len(parts) < 2:
            continue
        required = REQUIRED_COLUMNS[METRICS_DIR if folder.startswith(METRICS_DIR) else folder]
        tables, readable = [], []
        for path in parts:
            try:
                tables.append(_read_one(filesystem, path, schema, required))
                readable.append(path)
            except (pa.ArrowException, OSError, ValueError) as error:
                warnings.warn(f"left {path} as it is: {_reason(error)}", PartFileWarning, stacklevel=2)
        if len(readable) < 2:
            continue
        table = pa.concat_tables(tables)
        table = table.sort_by([("training_iteration", "ascending"), ("timestamp", "ascending")])
        write_table_atomic(filesystem, f"{root}/{folder}", table)
        for path in readable:
            filesystem.delete_file(path)
        merged[folder] = len(readable)
    return merged


def compact_command(run_dir: str) -> None:
    """``raydaug compact RUN_DIR``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PartFileWarning)
        merged = compact_run(run_dir)
    print_warnings(caught)
    if not merged:
        print(f"{run_dir}: nothing to compact (every folder holds at most one readable part)")
        return
    print(f"{run_dir}: merged {sum(merged.values())} part files into {len(merged)} "
          f"({len(merged)} folder(s))")


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Show caught :class:`PartFileWarning` s as one line each on stderr (the CLI's form)."""
    import sys

    for item in caught:
        if issubclass(item.category, PartFileWarning):
            print(f"raydaug: warning: {item.message}", file=sys.stderr)
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)
