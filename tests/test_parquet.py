"""The Parquet logging layer: explicit schemas, whole-file parts, readable by pyarrow, pandas, polars, DuckDB."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch

from raydaug.config import CONFIG_VERSION, Config
from raydaug.logging import parquet as P
from raydaug.train import Trainer
from tests.helpers import tiny

# The metric names of the project's design (the public contract; docs/analysis.md lists them), in its order. A copy,
# on purpose: the schema is checked against it, not against itself.
DESIGN_METRICS = ["loss/c", "loss/g", "loss/dc", "loss/dd", "acc/train", "acc/val", "acc/test", "acc/aug",
                  "lr/c", "lr/g", "lr/dc", "lr/dd", "hp/alpha", "hp/beta", "hp/gamma", "hp/teacher_weight",
                  "epoch", "step",
                  "time/step_ms", "time/samples_per_s", "aug/l1", "aug/affine_dev", "aug/z_div", "aug/x_div",
                  "aug/label_kept"]
BOOKKEEPING = ["training_iteration", "time_total_s", "timestamp"]  # added by metrics_row, not the trainer


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def trainer_report() -> dict:
    """The metrics a real (tiny) learned-augmentation Trainer reports at its first evaluation: the learned
    run reports the most names (G's health, DC/DD losses, α/β/γ)."""
    torch.manual_seed(0)
    return Trainer(tiny(epochs=1, device="cpu")).train_iteration()


def test_every_metric_the_trainer_reports_round_trips_through_a_design_column(tmp_path, trainer_report):
    reported = trainer_report
    writer = P.metrics_writer(str(tmp_path), "t1")
    writer.append(P.metrics_row(reported, training_iteration=1, time_total_s=2.5))
    table = pq.read_table(writer.flush())
    assert table.num_rows == 1
    columns = table.schema.names
    assert columns[:len(BOOKKEEPING)] == BOOKKEEPING
    not_design = [name for name in columns[len(BOOKKEEPING):] if name not in DESIGN_METRICS]
    assert not not_design, f"Parquet columns that are not DESIGN metric names: {not_design}"
    dropped = sorted(set(reported) - set(columns))
    assert not dropped, f"reported by the Trainer but no Parquet column holds them: {dropped}"
    row = table.to_pylist()[0]
    for name, value in reported.items():
        both_nan = isinstance(value, float) and math.isnan(value) and row[name] is not None and math.isnan(row[name])
        same = row[name] == value or both_nan
        assert same, f"{name}: reported {value!r}, read back {row[name]!r}"
    assert all(row[name] is None for name in columns if name not in reported and name not in BOOKKEEPING)
    assert (row["training_iteration"], row["time_total_s"]) == (1, 2.5)
    assert table.schema.field("epoch").type == pa.int64() and table.schema.field("step").type == pa.int64()


def test_the_trainer_reports_every_design_metric(trainer_report):
    """A learned-augmentation trainer reports every DESIGN metric name (the health metrics included)."""
    missing = [name for name in DESIGN_METRICS if name not in trainer_report]
    assert not missing, f"DESIGN metric names the Trainer does not report: {missing}"


def test_writer_flushes_whole_parts_every_max_rows_and_missing_metrics_are_null(tmp_path):
    writer = P.metrics_writer(str(tmp_path), "t1", max_rows=3, max_seconds=1e9)
    for iteration in range(1, 8):
        metrics = {"acc/val": iteration / 10, "epoch": iteration}
        if iteration == 2:
            metrics["aug/l1"] = 0.5
        writer.append(P.metrics_row(metrics, iteration, float(iteration)))
    folder = tmp_path / "parquet" / "metrics" / "trial_id=t1"
    assert len(_parts(folder)) == 2  # 3 + 3 rows flushed, one row still buffered
    assert writer.flush() is not None
    assert writer.flush() is None  # nothing left: no empty part
    parts = _parts(folder)
    assert len(parts) == 3 and all(p.name.startswith("part-") and p.suffix == ".parquet" for p in parts)
    table = pq.read_table(parts[0])
    assert table.schema.equals(P.METRICS_SCHEMA)
    assert table.column("aug/l1").to_pylist() == [None, 0.5, None]
    assert table.column("loss/c").null_count == 3
    assert table.column("epoch").type == pa.int64()


def test_writer_flushes_after_max_seconds(tmp_path):
    writer = P.trials_writer(str(tmp_path), max_rows=1000, max_seconds=0.0)
    writer.append(P.trial_row("t1", "start", 0, {"alpha": 0.1}))
    assert len(_parts(tmp_path / "parquet" / "trials")) == 1


def test_failed_write_leaves_no_part_and_keeps_the_rows(tmp_path, monkeypatch):
    writer = P.pbt_events_writer(str(tmp_path))
    writer.append({"timestamp": 1.0, "training_iteration": 2, "src_trial": "a", "dst_trial": "b", "key": "alpha",
                   "old_value": 0.1, "new_value": 0.2})

    def broken(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(P.pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    folder = tmp_path / "parquet" / "pbt_events"
    assert list(folder.iterdir()) == []  # neither a part nor the temp file
    monkeypatch.undo()
    writer.flush()
    assert pq.read_table(_parts(folder)[0]).column("new_value").to_pylist() == [0.2]


def test_uri_storage(tmp_path):
    uri = f"file://{tmp_path}/run"
    writer = P.metrics_writer(uri, "t1")
    writer.append(P.metrics_row({"acc/val": 0.5}, 1, 1.0))
    path = writer.flush()
    assert path.startswith(str(tmp_path)) and Path(path).exists()
    filesystem, root = P.resolve(uri)
    assert root == f"{tmp_path}/run"


def _write_two_trials(run_dir: Path) -> None:
    for trial_id, values in (("a", [0.2, 0.4]), ("b", [0.3])):
        writer = P.metrics_writer(str(run_dir), trial_id)
        for iteration, acc in enumerate(values, start=1):
            writer.append(P.metrics_row({"acc/val": acc, "acc/test": acc / 2, "epoch": iteration}, iteration, 1.0))
        writer.flush()
        trials = P.trials_writer(str(run_dir))
        trials.append(P.trial_row(trial_id, "start", 0, {"seed": 1 if trial_id == "a" else 2}))
        trials.flush()


def test_pyarrow_pandas_polars_duckdb_read_the_layout(tmp_path):
    _write_two_trials(tmp_path)
    metrics_dir = tmp_path / "parquet" / "metrics"
    expected = ["training_iteration", "time_total_s", "timestamp", *DESIGN_METRICS, "trial_id"]

    table = ds.dataset(metrics_dir, format="parquet", partitioning="hive").to_table()
    assert table.schema.names == expected
    assert sorted(table.column("acc/val").to_pylist()) == [0.2, 0.3, 0.4]

    frame = pd.read_parquet(metrics_dir)
    assert list(frame.columns) == expected
    assert sorted(map(str, frame["trial_id"])) == ["a", "a", "b"]

    import polars as pl

    lazy = pl.scan_parquet(f"{metrics_dir}/**/*.parquet", hive_partitioning=True)
    polars_frame = lazy.filter(pl.col("trial_id") == "a").select("training_iteration", "acc/val").collect()
    assert polars_frame.sort("training_iteration")["acc/val"].to_list() == [0.2, 0.4]

    import duckdb

    rows = duckdb.sql(
        f"""SELECT trial_id, max("acc/val") AS best FROM read_parquet('{metrics_dir}/*/*.parquet',
        hive_partitioning = true) GROUP BY trial_id ORDER BY trial_id""").fetchall()
    assert rows == [("a", 0.4), ("b", 0.3)]
    columns = [row[0] for row in duckdb.sql(
        f"DESCRIBE SELECT * FROM read_parquet('{metrics_dir}/*/*.parquet', hive_partitioning = true)").fetchall()]
    assert columns == expected
    trials = duckdb.sql(f"SELECT trial_id, json_extract(config_json, '$.seed')::INT FROM "
                        f"read_parquet('{tmp_path}/parquet/trials/*.parquet') ORDER BY trial_id").fetchall()
    assert trials == [("a", 1), ("b", 2)]


def test_hyperparameter_and_accuracy_columns_are_dictionary_encoded_and_losses_are_not(tmp_path):
    writer = P.metrics_writer(str(tmp_path), "t")
    for iteration in range(1, 50):
        writer.append(P.metrics_row({"loss/c": math.sin(iteration), "lr/c": 1e-3, "acc/val": iteration % 7 / 7},
                                    iteration, 1.0))
    path = writer.flush()
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert any("DICTIONARY" in e for e in encodings["lr/c"])
    assert any("DICTIONARY" in e for e in encodings["acc/val"])
    assert not any("DICTIONARY" in e for e in encodings["loss/c"])


def test_a_trials_row_keeps_its_config_version_and_analysis_reads_the_config_by_it(tmp_path):
    """A config logged with its version (``Config.to_logged``) has it in its row, a column of its own too; one
    without (logged before versions) has a null there. Analysis reads each by its version: a key missing from an
    unversioned config is the value runs trained with before the key existed (teacher_weight 0), not so one
    missing from a config of today's version (its default)."""
    from raydaug.analysis.load import config_dicts, load

    versioned = {key: value for key, value in Config().to_logged().items() if key != "teacher_weight"}
    unversioned = {key: value for key, value in Config().to_dict().items() if key != "teacher_weight"}
    trials = P.trials_writer(str(tmp_path))
    trials.append(P.trial_row("new", "start", 0, versioned))
    trials.append(P.trial_row("old", "start", 0, unversioned))
    trials.flush()
    table = pq.read_table(tmp_path / "parquet" / "trials", schema=P.TRIALS_SCHEMA)
    assert dict(zip(table["trial_id"].to_pylist(), table["config_version"].to_pylist())) == {
        "new": CONFIG_VERSION, "old": None}
    configs = config_dicts(load(str(tmp_path), require_metrics=False))
    assert (configs["new"]["teacher_weight"], configs["old"]["teacher_weight"]) == (1.0, 0.0)
    assert "config_version" not in configs["new"]
