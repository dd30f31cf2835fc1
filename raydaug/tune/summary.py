"""What a finished (or stopped) ``raydaug tune`` run tells its user: the best row, unfinished trials
and how to ``--resume``, and one line per trial that ended in ERROR."""
from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from raydaug.errors import TrialsFailedError
from raydaug.logging.parquet import resolve
from raydaug.logging.reader import read_metrics
from raydaug.logging.tensorboard import viewer_command
from raydaug.tune.plan import TunePlan


def best_row(run_dir: str, metric: str = "acc/val", mode: str = "max") -> dict[str, Any] | None:
    """The best metrics row of the run, read as ``analysis.load`` reads it (the core's reader: the last
    written row of each (trial, iteration) counts, unreadable parts are skipped); None without one."""
    frame, _ = read_metrics(run_dir)
    frame = frame.dropna(subset=[metric]) if metric in frame else frame.iloc[0:0]
    if frame.empty:
        return None
    index = frame[metric].idxmax() if mode == "max" else frame[metric].idxmin()
    return frame.loc[index].to_dict()


def summarize(results, plan: TunePlan, log: Callable[[str], None] = print) -> list[str]:
    """Print the run's summary; returns the ids of the trials that did not reach their last epoch (an
    interrupted run)."""
    best = best_row(plan.run_dir, plan.metric, plan.mode)
    if best is not None:
        log(f"best {plan.metric} {best[plan.metric]:.4f} (trial {best['trial_id']}, iteration "
            f"{int(best['training_iteration'])}) → acc/test {best['acc/test']:.4f}")
    unfinished = [result.metrics.get("trial_id", "?") for result in results
                  if not result.error and _unfinished(result)]
    if unfinished:
        log(f"interrupted: {len(unfinished)} trial(s) did not reach their last epoch; continue with: "
            f"{resume_command(plan)}")
    board = tensorboard_line(plan.run_dir)
    if board:
        log(board)
    log(f"results in {plan.run_dir} (Parquet under parquet/); report: raydaug analyze {shlex.quote(plan.run_dir)}")
    return unfinished


def resume_command(plan: TunePlan) -> str:
    """The command that continues this run (quoted for a shell: a storage URI may hold ``?`` and ``&``).
    It repeats the run's --set and --grid: a follow-up stage not yet started is planned from them."""
    name = plan.stage_of or plan.name  # a follow-up stage resumes through its first stage's run
    changes = "".join(f" --set {shlex.quote(pair)}" for pair in plan.options.sets)
    changes += "".join(f" --grid {shlex.quote(pair)}" for pair in plan.options.grids)
    if plan.options.pilot_store:
        changes += f" --pilot-store {shlex.quote(plan.options.pilot_store)}"
    return (f"raydaug tune {shlex.quote(plan.config_path or name)} --name {shlex.quote(name)} "
            f"--storage {shlex.quote(plan.storage)}{changes}{' --smoke' if plan.smoke else ''}"
            f"{' --no-followup' if plan.options.no_followup else ''} --resume")


def tensorboard_line(run_dir: str) -> str | None:
    """Where TensorBoard finds this run: Ray Tune's logger writes every reported metric of a trial as
    TensorBoard scalars into the trial's folder of RUN_DIR (``events.out.tfevents.*``); the trials write
    no image grids (``raydaug train`` does, into ``OUT/tensorboard``). None when there are no such files."""
    filesystem, root = resolve(run_dir)
    folders = [info for info in filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
               if info.type == pafs.FileType.Directory and _TRIAL_ID_IN_PATH.search(info.base_name)]
    if not any(entry.base_name.startswith("events.out.tfevents")
               for folder in folders for entry in filesystem.get_file_info(pafs.FileSelector(folder.path))):
        return None
    if isinstance(filesystem, pafs.LocalFileSystem):
        return f"TensorBoard (every reported metric, one run per trial): {viewer_command(root)}"
    return (f"TensorBoard (every reported metric, one run per trial): the trial folders of {run_dir} hold the "
            f"event files; copy them to a local folder and run tensorboard --logdir on it")


def _unfinished(result) -> bool:
    """Every trial trains to its config's last epoch; fewer epochs mean the run was stopped."""
    epoch = result.metrics.get("epoch")
    epochs = (result.config or {}).get("epochs")
    return epoch is None or (epochs is not None and int(epoch) < int(epochs))


def raise_on_errors(results, plan: TunePlan) -> None:
    failed = failed_trials(results)
    if failed:
        causes = "; ".join(f"trial {trial_id}: {cause}" for trial_id, cause in failed)
        raise TrialsFailedError(f"{len(failed)} trial(s) failed after {plan.max_failures} retries ({causes}); "
                                f"fix the cause and continue with: {resume_command(plan)}")


_TRIAL_ID_IN_PATH = re.compile(r"_([0-9a-f]{5}_\d{5})(_|$)")


def failed_trials(results) -> list[tuple[str, str]]:
    """(trial id, ``Type: first line`` of its error) of every trial that ended in ERROR."""
    failed = []
    for result in results:
        if result.error is None:
            continue
        trial_id = (result.metrics or {}).get("trial_id")
        if not trial_id:
            match = _TRIAL_ID_IN_PATH.search(Path(str(result.path or "")).name)
            trial_id = match.group(1) if match else "?"
        failed.append((str(trial_id), error_line(result.error)))
    return failed


def error_line(error: BaseException) -> str:
    """A trial's error on one line: Ray's task error is unwrapped to the trainable's own exception."""
    cause = getattr(error, "cause", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
