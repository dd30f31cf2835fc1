"""PBT schedules as data: ``raydaug schedule export`` / ``raydaug schedule replay``.

Format (JSON; the Parquet form holds the same dict in its schema metadata plus one row per change
point)::

    {"trial_id": str, "metric": "acc/val", "initial_config": {full Config dict},
     "changes": [{"training_iteration": k, "config": {every MUTABLE_HPARAMS value from after k on}}]}

``initial_config`` is the config of the lineage's root trial (the trial whose initial weights and
values started the chain of exploits ending in ``trial_id``); a change at ``k`` governs the training of
iterations ``k + 1`` onwards, as in Ray's ``PopulationBasedTrainingReplay``. Every schedule read is
checked by :func:`raydaug.schedule.check_schedule` (the one rule, shared with the replay). This module
reads and writes schedules only: the CLI hands a schedule to ``raydaug.tune.replay`` for a replay.
"""
from __future__ import annotations

import json
import math
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raydaug.analysis.lineage import History
from raydaug.analysis.load import RunData, best_rows, load
from raydaug.config import MUTABLE_HPARAMS
from raydaug.errors import UsageError
from raydaug.logging.parquet import join, parent, resolve, split_query
from raydaug.migrations import LEGACY_VALUES
from raydaug.schedule import changes_through, check_schedule

SCHEDULE_METADATA_KEY = b"raydaug.schedule"


def best_trial(run: RunData, metric: str = "acc/val") -> str:
    best = best_rows(run, metric)
    if best.empty:
        raise UsageError(f"{run.run_dir}: no trial has reported {metric} yet, so there is no best trial")
    return str(best["trial_id"].iloc[0])


def export_schedule(run: RunData, trial_id: str | None = None, metric: str = "acc/val") -> dict[str, Any]:
    """The schedule that produced ``trial_id`` (default: the best trial by ``metric``)."""
    history = History(run)
    trial_id = trial_id or best_trial(run, metric)
    known = set(history.configs) | {e.dst for e in history.exploits}
    if trial_id not in known:
        sample = ", ".join(sorted(known)[:8])
        raise UsageError(f"{run.run_dir} has no trial {trial_id!r}; trials: {sample}"
                         + (" ..." if len(known) > 8 else ""))
    root, steps = history.lineage(trial_id)
    initial = history.initial(root)
    if not initial:
        raise UsageError(f"{run.run_dir}: trial {root!r} (root of {trial_id!r}'s lineage) has no row in "
                         f"parquet/trials, so its starting config is unknown")
    changes = [{"training_iteration": int(iteration), "config": _full(values, initial)}
               for iteration, values in steps[1:]]
    return {"trial_id": trial_id, "metric": metric, "initial_config": initial, "changes": changes}


def _full(values: dict[str, float], initial: dict[str, Any]) -> dict[str, float]:
    return {key: float(values[key] if key in values else initial[key]) for key in MUTABLE_HPARAMS}


def schedule_table(schedule: dict[str, Any]) -> pa.Table:
    """One row per change point (iteration 0 = the initial values); the whole dict in the metadata."""
    points = [(0, {k: schedule["initial_config"][k] for k in MUTABLE_HPARAMS})]
    points += [(c["training_iteration"], c["config"]) for c in schedule["changes"]]
    columns: dict[str, list[Any]] = {
        "trial_id": [schedule["trial_id"]] * len(points), "metric": [schedule["metric"]] * len(points),
        "training_iteration": [it for it, _ in points]}
    for key in MUTABLE_HPARAMS:
        columns[key] = [float(values[key]) for _, values in points]
    schema = pa.schema([("trial_id", pa.string()), ("metric", pa.string()), ("training_iteration", pa.int64())]
                       + [(key, pa.float64()) for key in MUTABLE_HPARAMS],
                       metadata={SCHEDULE_METADATA_KEY: json.dumps(schedule, sort_keys=True)})
    return pa.Table.from_pydict(columns, schema=schema)


def write_schedule(schedule: dict[str, Any], path: str) -> str:
    """Write ``schedule`` as JSON or Parquet (by the file's suffix) to a local path or URI."""
    filesystem, target = resolve(path)
    suffix = PurePosixPath(target).suffix.lower()
    if suffix not in (".json", ".parquet"):
        raise UsageError(f"--out {path}: the schedule file must end in .json or .parquet")
    parent = target.rsplit("/", 1)[0]
    if parent:
        filesystem.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{PurePosixPath(target).name}.tmp"
    with filesystem.open_output_stream(tmp) as stream:
        if suffix == ".json":
            stream.write((json.dumps(schedule, indent=2, sort_keys=True) + "\n").encode())
        else:
            pq.write_table(schedule_table(schedule), stream)
    filesystem.move(tmp, target)
    return path


def read_schedule(path: str) -> dict[str, Any]:
    filesystem, target = resolve(path)
    if filesystem.get_file_info(target).type != pafs.FileType.File:
        raise UsageError(f"{path}: no such schedule file")
    try:
        if target.lower().endswith(".parquet"):
            metadata = pq.read_schema(target, filesystem=filesystem).metadata or {}
            if SCHEDULE_METADATA_KEY not in metadata:
                raise UsageError(f"{path} is a Parquet file but not a raydaug schedule (no schedule metadata)")
            schedule = json.loads(metadata[SCHEDULE_METADATA_KEY])
        else:
            with filesystem.open_input_stream(target) as stream:
                schedule = json.loads(stream.read().decode())
    except (pa.ArrowException, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path} is not a readable schedule file: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from error
    _fill_legacy(schedule)
    check_schedule(schedule, path)
    schedule.setdefault("metric", "acc/val")
    return schedule


def _fill_legacy(schedule: Any) -> None:
    """A schedule exported before a key existed (e.g. teacher_weight) replays with that key's legacy value
    (``LEGACY_VALUES``), at the start and at every change, not with today's default."""
    if not isinstance(schedule, dict) or not isinstance(schedule.get("initial_config"), dict):
        return
    initial = schedule["initial_config"] = {**LEGACY_VALUES, **schedule["initial_config"]}
    for change in schedule.get("changes") or []:
        if isinstance(change, dict) and isinstance(change.get("config"), dict):
            for key in set(LEGACY_VALUES) & set(MUTABLE_HPARAMS):
                change["config"].setdefault(key, initial[key])


def values_at(schedule: dict[str, Any], iteration: int) -> dict[str, float]:
    """The hyperparameters that train iteration ``iteration`` (1-based) under ``schedule``."""
    values = {key: float(schedule["initial_config"][key]) for key in MUTABLE_HPARAMS}
    values.update(changes_through(((c["training_iteration"], c["config"]) for c in schedule["changes"]),
                                  iteration - 1))
    return values


def _is_schedule_file(source: str) -> bool:
    return split_query(source)[0].lower().endswith((".json", ".parquet"))


def export_command(run_dir: str, trial_id: str | None = None, out: str | None = None) -> str:
    """``raydaug schedule export``: write the schedule of ``trial_id`` (default: the best trial)."""
    schedule = export_schedule(load(run_dir), trial_id)
    out = out or join(run_dir, f"schedule_{schedule['trial_id']}.json")
    write_schedule(schedule, out)
    print(describe(schedule))
    print(f"schedule of trial {schedule['trial_id']}: {len(schedule['changes'])} change(s) → {out}")
    return out


def schedule_to_replay(source: str, trial_id: str | None = None) -> tuple[dict[str, Any], str]:
    """(schedule, default storage of the replay) for ``raydaug schedule replay SOURCE``: SOURCE is an
    exported schedule file or a RUN_DIR (then the schedule of ``trial_id``, default the best trial);
    the replay goes beside it by default. The CLI hands the schedule to ``raydaug.tune.replay``."""
    if _is_schedule_file(source):
        folder = parent(source)  # an exported file lies in its run by default: the replay goes beside that run
        filesystem, root = resolve(folder)
        in_a_run = filesystem.get_file_info(f"{root}/parquet").type == pafs.FileType.Directory
        return read_schedule(source), parent(folder) if in_a_run else folder
    return export_schedule(load(source), trial_id), parent(source)


def describe(schedule: dict[str, Any]) -> str:
    """A few readable lines: the starting values, then each change."""
    lines = [f"trial {schedule['trial_id']}: start " + ", ".join(
        f"{k}={schedule['initial_config'][k]:.4g}" for k in MUTABLE_HPARAMS)]
    for change in schedule["changes"]:
        lines.append(f"  after iteration {change['training_iteration']}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in change["config"].items() if not math.isnan(v)))
    return "\n".join(lines)
