"""Read a run's Parquet logs into pandas: ``load(run_dir)`` → :class:`RunData` (metrics, trials, events).

The reader (:mod:`raydaug.logging.reader`, shared with the core) reads ``RUN_DIR/parquet/{metrics,trials,
pbt_events}`` in explicit schemas (a metric missing from a part file reads as null) with hive partitioning
(``trial_id`` comes from the ``trial_id=<id>`` folder). Restored trials re-report iterations: of duplicate
``(trial_id, training_iteration)`` rows the one written last (largest ``timestamp``) is kept.

Damaged input never stops the read: a truncated, foreign or non-Parquet part file is reported (a
:class:`PartFileWarning` naming the file) and skipped, and every readable part still loads.
"""
from __future__ import annotations

import json
import warnings
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from raydaug.config import Config
from raydaug.errors import NoMetricsError, NotARunError, PartFileWarning
from raydaug.logging.parquet import (
    METRICS_SCHEMA,
    PBT_EVENTS_SCHEMA,
    PILOTS_SCHEMA,
    TRIALS_SCHEMA,
    resolve,
    write_table_atomic,
)

# the reader of the Parquet layout lives in the core (the summary of `raydaug tune` uses it too)
from raydaug.logging.reader import (
    EVENTS_DIR,
    METRICS_DIR,
    METRICS_READ_SCHEMA,
    PARTITION_KEY,
    PILOTS_DIR,
    REQUIRED_COLUMNS,
    TRIALS_DIR,
    latest_rows,
    list_parts,
    read_one,
    read_table,
    reason,
)
from raydaug.migrations import migrate


class RunData(NamedTuple):
    """A run's logs as pandas DataFrames.

    ``metrics``: one row per (trial_id, training_iteration), sorted by both; columns ``trial_id``,
    ``training_iteration``, ``time_total_s``, ``timestamp`` and every metric of docs/analysis.md ("Columns").
    ``trials``: one row per trial start/restore (``trial_id, timestamp, event, training_iteration,
    config_json, config_version``) plus ``config`` (the parsed dict with today's keys: :func:`logged_config`),
    sorted by time.
    ``events``: PBT exploit/explore rows (one per mutated key), sorted by time.
    ``pilots``: the pilot of each ``base_aug=auto`` trial (one row per hand-made augmentation: ``trial_id,
    base_aug, epochs, acc_val, acc_val_last, chosen``), sorted by time; empty for a run without one.
    ``skipped``: ``(path, reason)`` of every part file that could not be read.
    """

    run_dir: str
    metrics: pd.DataFrame
    trials: pd.DataFrame
    events: pd.DataFrame
    skipped: list[tuple[str, str]]
    pilots: pd.DataFrame = pd.DataFrame(columns=[field.name for field in PILOTS_SCHEMA])


def _require_run(run_dir: str) -> tuple[pafs.FileSystem, str]:
    filesystem, root = resolve(run_dir)
    try:
        info = filesystem.get_file_info(root)
    except OSError as error:  # a storage URI whose store refuses (credentials) or does not answer
        raise NotARunError(f"{run_dir}: cannot read it ({reason(error)})") from None
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
    metrics = latest_rows(read_table(filesystem, root, METRICS_DIR, METRICS_READ_SCHEMA, skipped))
    trials = _sorted_frame(read_table(filesystem, root, TRIALS_DIR, TRIALS_SCHEMA, skipped),
                           ["timestamp", "trial_id"])
    trials["config"] = [logged_config(text) for text in trials["config_json"]]
    events = _sorted_frame(read_table(filesystem, root, EVENTS_DIR, PBT_EVENTS_SCHEMA, skipped),
                           ["timestamp", "dst_trial", "key"])
    pilots = _sorted_frame(read_table(filesystem, root, PILOTS_DIR, PILOTS_SCHEMA, skipped),
                           ["timestamp", "trial_id", "base_aug"])
    for path, why in skipped:
        warnings.warn(f"skipped {path}: {why}", PartFileWarning, stacklevel=2)
    if require_metrics and metrics.empty:
        detail = f" ({len(skipped)} unreadable part file(s) skipped)" if skipped else ""
        raise NoMetricsError(f"{run_dir} has no metrics yet: nothing readable under "
                             f"{root}/{METRICS_DIR}{detail}")
    return RunData(run_dir, metrics, trials, events, skipped, pilots)


def logged_config(config_json: str) -> dict[str, Any]:
    """A trials row's config with today's keys: migrated from the config version it was logged at (none
    logged: 0), every key it lacks at its default. So a run logged before a key existed pools with a later run
    as one variant, and so does one that logged a removed key where it did nothing; a trial that trained a
    removed feature keeps that key (``strict=False``) and is a variant of its own."""
    return {**Config().to_dict(), **migrate(json.loads(config_json), strict=False)}


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
    folders = [(TRIALS_DIR, TRIALS_SCHEMA), (EVENTS_DIR, PBT_EVENTS_SCHEMA), (PILOTS_DIR, PILOTS_SCHEMA)]
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
                tables.append(read_one(filesystem, path, schema, required))
                readable.append(path)
            except (pa.ArrowException, OSError, ValueError) as error:
                warnings.warn(f"left {path} as it is: {reason(error)}", PartFileWarning, stacklevel=2)
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
