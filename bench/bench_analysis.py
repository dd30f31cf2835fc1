"""Analysis and logging costs.

(1) Loading a run: 100 trials × 10,000 reports (quick: × 1,000) written twice into a temp folder — as
our Parquet layout (the writer's default 1,000-row parts, and once more after ``raydaug compact``) and as
Ray's per-trial ``result.json`` / ``progress.csv`` — then read back: ``analysis.load`` against Ray's own
reading procedure (``ExperimentAnalysis``: per trial, ``json.loads`` of every line then
``pandas.json_normalize``; or ``pandas.read_csv`` of progress.csv), concatenated into one frame. Both
formats hold exactly the same columns (the DESIGN metrics, trial_id, training_iteration, time_total_s,
timestamp); Ray's real files also carry the whole config and bookkeeping fields in every row, so the
real gap is larger. Median of several alternating repeats; goal: ≥ 10× faster and < 1 s.

(2) Logging cost per report: ``metrics_row`` + ``PartWriter.append`` + ``flush`` (a whole part file written
and renamed, as at every checkpoint: the worst case) as a fraction of one training iteration of the
digits default config (``eval_every`` = 5 epochs + evaluation). Goal ≤ 1 %. torch runs with
``$RAYDAUG_BENCH_THREADS`` threads (default 1: on a shared machine more threads only add contention).

``python -m bench.bench_analysis [--quick]`` prints the rows.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TRIALS = 100
ROWS = {False: 10_000, True: 1_000}
REPEATS = {False: 3, True: 3}
GOAL_SPEEDUP = 10.0
GOAL_SECONDS = 1.0
GOAL_LOG_FRACTION = 0.01
# digits default config: 100 training, 300 validation, 1397 test images; acc/aug is a per-batch mean
ACCURACY_DENOMINATORS = {"acc/train": 100, "acc/val": 300, "acc/test": 1397, "acc/aug": 500}


# ---------------------------------------------------------------------- synthetic run
def _trial_columns(rng: np.random.Generator, rows: int, trial: int) -> dict[str, np.ndarray]:
    """Realistic-looking columns: noisy losses and times, accuracies that are fractions of a split size,
    piecewise-constant hyperparameters."""
    from raydaug.logging.parquet import METRICS_SCHEMA

    iteration = np.arange(1, rows + 1, dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    for field in METRICS_SCHEMA:
        name = field.name
        if name == "training_iteration":
            columns[name] = iteration
        elif name in ("epoch", "step"):
            columns[name] = iteration * (5 if name == "epoch" else 20)
        elif name == "time_total_s":
            columns[name] = iteration * 1.7 + rng.random(rows)
        elif name == "timestamp":
            columns[name] = 1.7e9 + trial + iteration * 1.7
        elif name in ACCURACY_DENOMINATORS:  # correct / total on a fixed split
            total = ACCURACY_DENOMINATORS[name]
            columns[name] = rng.integers(0, total + 1, size=rows) / total
        elif name.startswith(("lr/", "hp/")):
            # PBT changes them every 20 reports
            columns[name] = np.repeat(10.0 ** rng.uniform(-4, -1, size=rows // 20 + 1), 20)[:rows]
        else:
            columns[name] = rng.random(rows)
    return columns


def write_runs(root: Path, rows: int) -> tuple[Path, Path]:
    """(parquet run dir, Ray-style experiment dir) holding the same data."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    from raydaug.logging.parquet import METRICS_SCHEMA, write_table_atomic

    run_dir, ray_dir = root / "parquet_run", root / "ray_run"
    filesystem = pafs.LocalFileSystem()
    rng = np.random.default_rng(0)
    names = METRICS_SCHEMA.names
    for trial in range(TRIALS):
        trial_id = f"a1b2c_{trial:05d}"
        columns = _trial_columns(rng, rows, trial)
        table = pa.table(columns, schema=METRICS_SCHEMA)
        for start in range(0, rows, 1000):  # PartWriter's default max_rows
            write_table_atomic(filesystem, f"{run_dir}/parquet/metrics/trial_id={trial_id}", table.slice(start, 1000))
        folder = ray_dir / f"train_trial_{trial_id}_{trial}_2025-01-01_00-00-00"
        folder.mkdir(parents=True)
        values = [columns[name].tolist() for name in names]
        with open(folder / "result.json", "w") as handle:
            for row in zip(*values):
                record = dict(zip(names, row))
                record["trial_id"] = trial_id
                handle.write(json.dumps(record) + "\n")
        frame = table.to_pandas()
        frame["trial_id"] = trial_id
        frame.to_csv(folder / "progress.csv", index=False)
    return run_dir, ray_dir


# ---------------------------------------------------------------------- readers
def read_ray_json(ray_dir: Path):
    """What ``ExperimentAnalysis`` does per trial (it prefers result.json), then one frame."""
    import pandas as pd

    frames = []
    for folder in sorted(ray_dir.iterdir()):
        content = (folder / "result.json").read_bytes().decode("utf-8").rstrip("\n")
        frames.append(pd.json_normalize([json.loads(row) for row in content.split("\n")], sep="/"))
    return pd.concat(frames, ignore_index=True)


def read_ray_csv(ray_dir: Path):
    import io

    import pandas as pd

    frames = []
    for folder in sorted(ray_dir.iterdir()):
        text = (folder / "progress.csv").read_bytes().decode("utf-8")
        frames.append(pd.read_csv(io.StringIO(text), dtype={"trial_id": str}))
    return pd.concat(frames, ignore_index=True)


def _median_time(function, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench_load(quick: bool) -> list[dict[str, Any]]:
    import raydaug.analysis as analysis
    from raydaug.analysis.load import compact_run

    rows = ROWS[quick]
    repeats = REPEATS[quick]
    label = f"{TRIALS} trials × {rows:,} rows"
    root = Path(tempfile.mkdtemp(prefix="raydaug-bench-analysis-"))
    try:
        run_dir, ray_dir = write_runs(root, rows)
        load = lambda: analysis.load(str(run_dir))  # noqa: E731
        load()  # first read: import and page-cache effects stay out of the timings (all files were just written)
        ours, json_, csv = [], [], []
        for _ in range(repeats):  # alternate so load changes on the machine hit every reader
            ours.append(_median_time(load, 1)[0])
            json_.append(_median_time(lambda: read_ray_json(ray_dir), 1)[0])
            csv.append(_median_time(lambda: read_ray_csv(ray_dir), 1)[0])
            if not quick and len(json_) == 1 and json_[0] > 60:
                break  # one measurement of a minute-long reader is enough
        ours_s, json_s, csv_s = (statistics.median(x) for x in (ours, json_, csv))
        frame = load()
        assert len(frame.metrics) == TRIALS * rows and len(read_ray_csv(ray_dir)) == TRIALS * rows
        compact_run(str(run_dir))
        compact_s, _ = _median_time(load, repeats)
        size_parquet = sum(p.stat().st_size for p in run_dir.rglob("*.parquet"))
        size_json = sum(p.stat().st_size for p in ray_dir.rglob("result.json"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        {"metric": f"analysis.load {label} (1,000-row parts)", "value": ours_s, "unit": "s",
         "goal": f"< {GOAL_SECONDS:g} s", "met": ours_s < GOAL_SECONDS},
        {"metric": f"analysis.load {label} after compact", "value": compact_s, "unit": "s",
         "goal": f"< {GOAL_SECONDS:g} s", "met": compact_s < GOAL_SECONDS},
        {"metric": f"Ray result.json reader {label}", "value": json_s, "unit": "s", "goal": "", "met": None},
        {"metric": f"Ray progress.csv reader {label}", "value": csv_s, "unit": "s", "goal": "", "met": None},
        {"metric": "speed-up of analysis.load vs Ray result.json", "value": json_s / ours_s, "unit": "×",
         "goal": f"≥ {GOAL_SPEEDUP:g}×", "met": json_s / ours_s >= GOAL_SPEEDUP},
        {"metric": "speed-up of analysis.load vs Ray progress.csv", "value": csv_s / ours_s, "unit": "×",
         "goal": f"≥ {GOAL_SPEEDUP:g}×", "met": csv_s / ours_s >= GOAL_SPEEDUP},
        {"metric": "size: compacted Parquet / result.json", "value": size_parquet / size_json, "unit": "",
         "goal": "", "met": None},
    ]


# ---------------------------------------------------------------------- logging cost
def bench_logging(quick: bool) -> list[dict[str, Any]]:
    import torch

    from raydaug.config import Config
    from raydaug.logging.parquet import metrics_row, metrics_writer
    from raydaug.train import Trainer

    torch.set_num_threads(int(os.environ.get("RAYDAUG_BENCH_THREADS", "1")))
    trainer = Trainer(Config.from_dict({"dataset": "digits", "device": os.environ.get("RAYDAUG_BENCH_DEVICE",
                                                                                      "auto")}))
    metrics = trainer.train_iteration()  # warm-up
    iterations = [_median_time(trainer.train_iteration, 1)[0] for _ in range(1 if quick else 3)]
    iteration_s = statistics.median(iterations)
    reports = 100 if quick else 500
    root = Path(tempfile.mkdtemp(prefix="raydaug-bench-logging-"))
    try:
        writer = metrics_writer(str(root), "t", max_rows=10**9, max_seconds=1e9)
        started = time.perf_counter()
        for iteration in range(reports):
            writer.append(metrics_row(metrics, iteration + 1, float(iteration)))
            writer.flush()
        flush_each = (time.perf_counter() - started) / reports
        buffered = metrics_writer(str(root), "u")
        started = time.perf_counter()
        for iteration in range(reports):
            buffered.append(metrics_row(metrics, iteration + 1, float(iteration)))
        buffered.flush()
        default = (time.perf_counter() - started) / reports
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        {"metric": f"training iteration, digits default config ({trainer.config.eval_every} epochs + eval, "
                   f"{torch.get_num_threads()} thread(s), {trainer.device.type})", "value": iteration_s, "unit": "s",
         "goal": "", "met": None},
        {"metric": "Parquet logging per report, part written every report", "value": flush_each * 1000,
         "unit": "ms", "goal": "", "met": None},
        {"metric": "Parquet logging per report (flush every report) / iteration", "value": flush_each / iteration_s,
         "unit": "", "goal": f"≤ {GOAL_LOG_FRACTION:.0%}", "met": flush_each / iteration_s <= GOAL_LOG_FRACTION},
        {"metric": "Parquet logging per report, default buffering", "value": default * 1000, "unit": "ms",
         "goal": "", "met": None},
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    return bench_load(quick) + bench_logging(quick)


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
