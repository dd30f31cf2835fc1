"""Buffered Parquet writers with explicit schemas, writing whole files (temp + rename).

Layout (docs/analysis.md, "Columns"): ``RUN_DIR/parquet/metrics/trial_id=<id>/part-<n>.parquet``,
``.../trials/part-<n>.parquet``, ``.../pbt_events/part-<n>.parquet``, ``.../pilots/part-<n>.parquet``.
Part names carry a timestamp and a random suffix so writers in different processes (Tune workers, the
driver, a resumed run) never collide.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..migrations import VERSION_KEY

# Every reported metric (docs/analysis.md, "Columns"), in a fixed order; missing values are nulls.
METRIC_COLUMNS = (
    "loss/c", "loss/g", "loss/dc", "loss/dd", "acc/train", "acc/val", "acc/test", "acc/aug",
    "lr/c", "lr/g", "lr/dc", "lr/dd", "hp/alpha", "hp/beta", "hp/gamma", "hp/teacher_weight", "epoch", "step",
    "time/step_ms", "time/samples_per_s", "aug/l1", "aug/affine_dev", "aug/z_div", "aug/x_div", "aug/label_kept",
)
_INT_COLUMNS = {"epoch", "step"}
METRICS_SCHEMA = pa.schema(
    [pa.field("training_iteration", pa.int64()), pa.field("time_total_s", pa.float64()),
     pa.field("timestamp", pa.float64())]
    + [pa.field(name, pa.int64() if name in _INT_COLUMNS else pa.float64()) for name in METRIC_COLUMNS]
)
# config_version: the config version config_json was logged at (raydaug/migrations.py), a column too so that a
# query can select by it; null where the config did not carry one (logged before versions existed: version 0)
TRIALS_SCHEMA = pa.schema([
    pa.field("trial_id", pa.string()), pa.field("timestamp", pa.float64()), pa.field("event", pa.string()),
    pa.field("training_iteration", pa.int64()), pa.field("config_json", pa.string()),
    pa.field("config_version", pa.int64()),
])
# base_aug=auto: one row per hand-made augmentation of a trial's pilot (raydaug.train.pilot); ``chosen`` marks
# the one G stood on
PILOTS_SCHEMA = pa.schema([
    pa.field("trial_id", pa.string()), pa.field("timestamp", pa.float64()),
    pa.field("training_iteration", pa.int64()), pa.field("base_aug", pa.string()), pa.field("epochs", pa.int64()),
    pa.field("acc_val", pa.float64()), pa.field("acc_val_last", pa.float64()), pa.field("chosen", pa.bool_()),
    # since config version 4: the pilot's validation-best, and on its row its paired z over pilot_prior
    pa.field("val_best", pa.bool_()), pa.field("z", pa.float64()),
])
# the pilot's arms (raydaug/pilot_arms.py): one row per hand-made training, keyed by what it trained
PILOT_ARMS_SCHEMA = pa.schema([
    pa.field("key", pa.string()), pa.field("aug", pa.string()), pa.field("epochs", pa.int64()),
    pa.field("acc_val", pa.float64()), pa.field("acc_val_last", pa.float64()),
    pa.field("correct", pa.list_(pa.bool_())), pa.field("timestamp", pa.float64()),
])
PBT_EVENTS_SCHEMA = pa.schema([
    pa.field("timestamp", pa.float64()), pa.field("training_iteration", pa.int64()),
    pa.field("src_trial", pa.string()), pa.field("dst_trial", pa.string()),
    pa.field("key", pa.string()), pa.field("old_value", pa.float64()), pa.field("new_value", pa.float64()),
])


def resolve(storage: str) -> tuple[pafs.FileSystem, str]:
    """A local path or any URI pyarrow understands (s3://, gs://, file://) → (filesystem, path).

    A URI may end in query parameters that configure its filesystem (pyarrow's, e.g.
    ``s3://bucket/runs?endpoint_override=HOST:PORT&scheme=http``); the path has none of them."""
    if "://" in storage:
        return pafs.FileSystem.from_uri(storage)
    return pafs.LocalFileSystem(), os.path.abspath(storage)


def split_query(storage: str) -> tuple[str, str]:
    """(a URI without its query, the query with its ``?``, or "") ; a local path has no query."""
    if "://" in storage and "?" in storage:
        base, query = storage.split("?", 1)
        return base, f"?{query}"
    return storage, ""


def join(storage: str, *names: str) -> str:
    """``storage/name/...`` for a local path or a URI, keeping a URI's query at the end (where pyarrow
    reads it): ``join("s3://b/runs?scheme=http", "x")`` is ``s3://b/runs/x?scheme=http``."""
    base, query = split_query(storage)
    return "/".join([base.rstrip("/"), *(name.strip("/") for name in names)]) + query


def parent(storage: str) -> str:
    """The folder holding ``storage`` (a local path or a URI, its query kept); "." for a bare local name,
    the URI itself for a bucket (it has no parent)."""
    base, query = split_query(storage)
    scheme, sep, path = base.partition("://") if "://" in base else ("", "", base)
    path = path.rstrip("/")
    if "/" not in path:
        return storage if sep else "."
    return f"{scheme}{sep}{path.rsplit('/', 1)[0] or '/'}{query}"


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: strings, the hyperparameters (they change only at PBT exploits)
    and accuracies (k/n for a fixed split size n). Losses and times are near-unique floats: a
    dictionary only makes their parts bigger and slower to read."""
    return [field.name for field in schema
            if pa.types.is_string(field.type) or field.name.startswith(("lr/", "hp/", "acc/"))]


def write_table_atomic(filesystem: pafs.FileSystem, folder: str, table: pa.Table) -> str:
    """Write ``table`` as a new part file: to a hidden temp name first, then move into place, so readers
    (which skip hidden names) never see a half-written file."""
    filesystem.create_dir(folder, recursive=True)
    name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = f"{folder}/.{name}.tmp"
    final = f"{folder}/{name}"
    try:
        with filesystem.open_output_stream(tmp) as stream:
            pq.write_table(table, stream, use_dictionary=dictionary_columns(table.schema))
        filesystem.move(tmp, final)
    except BaseException:
        try:
            filesystem.delete_file(tmp)
        except OSError:
            pass
        raise
    return final


class PartWriter:
    """Rows buffered in memory and written as whole part files every ``max_rows`` rows or
    ``max_seconds`` seconds, and on :meth:`flush`."""

    def __init__(self, storage: str, folder: str, schema: pa.Schema, max_rows: int = 1000,
                 max_seconds: float = 30.0):
        self.filesystem, root = resolve(storage)
        self.folder = f"{root}/{folder}"
        self.schema = schema
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.max_rows or time.monotonic() - self.last_flush >= self.max_seconds:
            self.flush()

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def flush(self) -> str | None:
        self.last_flush = time.monotonic()
        if not self.rows:
            return None
        columns = {field.name: [row.get(field.name) for row in self.rows] for field in self.schema}
        table = pa.Table.from_pydict(columns, schema=self.schema)
        path = write_table_atomic(self.filesystem, self.folder, table)
        self.rows = []
        return path


def metrics_writer(run_dir: str, trial_id: str, **kwargs: Any) -> PartWriter:
    return PartWriter(run_dir, f"parquet/metrics/trial_id={trial_id}", METRICS_SCHEMA, **kwargs)


def trials_writer(run_dir: str, **kwargs: Any) -> PartWriter:
    return PartWriter(run_dir, "parquet/trials", TRIALS_SCHEMA, **kwargs)


def pbt_events_writer(run_dir: str, **kwargs: Any) -> PartWriter:
    return PartWriter(run_dir, "parquet/pbt_events", PBT_EVENTS_SCHEMA, **kwargs)


def write_pilot(run_dir: str, trial_id: str, iteration: int, outcome: dict[str, Any]) -> str | None:
    """The pilot of ``base_aug=auto`` (raydaug.train.pilot's outcome) as rows of ``parquet/pilots``, written now."""
    writer = PartWriter(run_dir, "parquet/pilots", PILOTS_SCHEMA)
    stamp = time.time()
    writer.extend({"trial_id": trial_id, "timestamp": stamp, "training_iteration": iteration, "base_aug": name,
                   "epochs": outcome["epochs"], "acc_val": score, "acc_val_last": outcome["acc_val_last"][name],
                   "chosen": name == outcome["choice"], "val_best": name == outcome["val_best"],
                   "z": outcome["z"] if name == outcome["val_best"] else None}
                  for name, score in outcome["acc_val"].items())
    return writer.flush()


def write_arm_records(store: str, records: Iterable[tuple[str, str, int, dict[str, Any]]]) -> str | None:
    """(key, aug, epochs, record) of finished hand-made trainings (raydaug/pilot_arms.py) as rows of the
    store's ``parquet/pilot_arms``, written now."""
    writer = PartWriter(store, "parquet/pilot_arms", PILOT_ARMS_SCHEMA)
    stamp = time.time()
    writer.extend({"key": key, "aug": aug, "epochs": epochs, "acc_val": record["acc_val"],
                   "acc_val_last": record["acc_val_last"], "correct": record["correct"].tolist(), "timestamp": stamp}
                  for key, aug, epochs, record in records)
    return writer.flush()


def trial_row(trial_id: str, event: str, iteration: int, config: dict[str, Any]) -> dict[str, Any]:
    """The trials row of a start or restore; ``config`` as a run logs it (``Config.to_logged()``, which
    carries its config version)."""
    return {"trial_id": trial_id, "timestamp": time.time(), "event": event, "training_iteration": iteration,
            "config_json": json.dumps(config, sort_keys=True, default=str),
            "config_version": config[VERSION_KEY] if VERSION_KEY in config else None}


def metrics_row(metrics: dict[str, Any], training_iteration: int, time_total_s: float) -> dict[str, Any]:
    row = {name: metrics.get(name) for name in METRIC_COLUMNS}
    row.update(training_iteration=training_iteration, time_total_s=time_total_s, timestamp=time.time())
    return row
