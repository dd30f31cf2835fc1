"""Where a Tune run goes: ``--storage`` (a local folder or a URI pyarrow opens) and ``RUN_DIR``.

All checks here run before Ray starts and before anything is written to the storage.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
from ray import tune

from raydaug.errors import UsageError
from raydaug.logging.parquet import resolve


def check_storage(storage: str) -> str:
    """A URI pyarrow can open, or a local folder that exists or can be created; returns it normalised."""
    if "://" in storage:
        try:
            pafs.FileSystem.from_uri(storage)
        except Exception as error:  # pyarrow raises several types for bad/unsupported URIs
            raise UsageError(f"--storage {storage!r}: pyarrow cannot open it ({error})") from None
        return storage.rstrip("/")
    path = Path(storage).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--storage {storage!r} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"--storage {storage!r}: {existing} is not a writable folder")
    return str(path)


def check_run_dir(run_dir: str, resume: bool) -> None:
    """``--resume`` needs a Tune experiment at RUN_DIR; a new run needs RUN_DIR absent or empty."""
    restorable = tune.Tuner.can_restore(run_dir)
    if resume and not restorable:
        raise UsageError(f"--resume: no Tune experiment to resume at {run_dir} (check --name and --storage)")
    if not resume and (restorable or non_empty(run_dir)):
        raise UsageError(f"{run_dir} already holds a run: pass --resume to continue it or --name for a new one")


def non_empty(run_dir: str) -> bool:
    filesystem, path = resolve(run_dir)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type != pafs.FileType.Directory:
        return True
    return bool(filesystem.get_file_info(pafs.FileSelector(path)))


def make_run_dir(run_dir: str) -> None:
    filesystem, path = resolve(run_dir)
    filesystem.create_dir(path, recursive=True)


def write_text(uri_or_path: str, text: str) -> None:
    filesystem, path = resolve(uri_or_path)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())
