"""Best checkpoints of a run: find the one a trial saved at its best iteration and publish it (link or
copy) into a report folder. Works on local folders and on any storage URI pyarrow opens."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.fs as pafs

from raydaug.logging.parquet import resolve

# folders of a run that are not Tune trial folders
RUN_FOLDERS = {"parquet", "report", "tensorboard", "checkpoints"}


def _checkpoint_index(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name.rsplit("_", 1)[-1] if ch.isdigit())
    return (int(digits) if digits else -1, name)


def _checkpoint_iteration(filesystem: pafs.FileSystem, folder: str) -> int | None:
    """The training_iteration a Tune checkpoint folder was saved at (its ``trial.json``), if known."""
    try:
        with filesystem.open_input_stream(f"{folder}/trial.json") as stream:
            return int(json.loads(stream.read().decode())["training_iteration"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_checkpoints(run_dir: str, best_iterations: dict[str, int]) -> dict[str, tuple[str, int | None]]:
    """trial_id → (``state.pt`` path, its training_iteration or None): the checkpoint saved at the
    trial's best iteration when it was kept, else its latest. Tune keeps them in
    ``RUN_DIR/<trainable>_<trial_id>_.../checkpoint_*/`` (with a ``trial.json``); ``raydaug train``
    in ``RUN_DIR/checkpoints/state.pt``."""
    filesystem, root = resolve(run_dir)
    found: dict[str, tuple[str, int | None]] = {}
    children = [c for c in filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
                if c.type == pafs.FileType.Directory and c.base_name not in RUN_FOLDERS]
    for trial_id, best_iteration in best_iterations.items():
        candidates: list[tuple[int | None, str, str]] = []
        for owner in (c for c in children if f"_{trial_id}_" in f"_{c.base_name}_"):
            for folder in sorted((c for c in filesystem.get_file_info(pafs.FileSelector(owner.path))
                                  if c.type == pafs.FileType.Directory and c.base_name.startswith("checkpoint")),
                                 key=lambda c: _checkpoint_index(c.base_name)):
                state = f"{folder.path}/state.pt"
                if filesystem.get_file_info(state).type == pafs.FileType.File:
                    candidates.append((_checkpoint_iteration(filesystem, folder.path), folder.base_name, state))
        if candidates:
            at_best = [c for c in candidates if c[0] == best_iteration]
            chosen = at_best[0] if at_best else max(
                candidates, key=lambda c: (c[0] if c[0] is not None else -1, _checkpoint_index(c[1])))
            found[trial_id] = (chosen[2], chosen[0])
    single = f"{root}/checkpoints/state.pt"
    missing = [t for t in best_iterations if t not in found]
    if len(missing) == 1 and len(best_iterations) == 1 \
            and filesystem.get_file_info(single).type == pafs.FileType.File:
        found[missing[0]] = (single, None)
    return found


def publish_checkpoint(run_dir: str, source: str, target: Path) -> Path:
    """Link (local runs) or copy (remote storage, or where links are impossible) a checkpoint."""
    filesystem, _ = resolve(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if isinstance(filesystem, pafs.LocalFileSystem):
        try:
            target.symlink_to(source)
            return target
        except OSError:
            shutil.copyfile(source, target)
            return target
    with filesystem.open_input_stream(source) as stream, open(target, "wb") as handle:
        shutil.copyfileobj(stream, handle)
    return target


def find_checkpoints_in(run_dirs: list[str], best_iterations: dict[str, int]) -> dict[str, tuple[str, int | None]]:
    """``find_checkpoints`` over several runs, in order: a report's own run first, then the runs whose
    trials it merged (a follow-up stage's baselines keep their checkpoints in their own folder)."""
    found: dict[str, tuple[str, int | None]] = {}
    for run_dir in run_dirs:
        missing = {t: i for t, i in best_iterations.items() if t not in found}
        if not missing:
            break
        found.update(find_checkpoints(run_dir, missing))
    return found
