"""Where a Tune run goes: ``--storage`` (a local folder or a URI pyarrow opens) and ``RUN_DIR``.

All checks here run before Ray starts and before anything is written to the storage.
"""
from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

import pyarrow.fs as pafs
from ray import tune

from raydaug.checkpoint import unwritable_folder
from raydaug.errors import UsageError
from raydaug.logging.parquet import resolve, split_query

PROBE_TIMEOUT_S = 3.0


def check_storage(storage: str) -> str:
    """A URI pyarrow can open and whose store answers, or a local folder that exists or can be created;
    returns it normalised (no trailing ``/``; a URI keeps its query)."""
    if "://" in storage:
        base, query = split_query(storage)
        storage = base.rstrip("/") + query
        try:
            filesystem, path = pafs.FileSystem.from_uri(storage)
        except Exception as error:  # pyarrow raises several types for bad/unsupported URIs
            raise UsageError(f"--storage {storage!r}: pyarrow cannot open it ({_first_line(error)})") from None
        check_remote(storage, filesystem, path)
        return storage
    path = Path(storage).expanduser().resolve()
    problem = unwritable_folder(path)
    if problem:
        raise UsageError(f"--storage {storage!r}: {problem}")
    return str(path)


def s3_endpoint(storage: str, filesystem: pafs.S3FileSystem) -> tuple[str, int]:
    """(host, port) an S3 URI's filesystem talks to: its ``endpoint_override`` (query parameter, or the
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL variables pyarrow also reads), else AWS's regional endpoint."""
    query = urllib.parse.parse_qs(split_query(storage)[1].lstrip("?"))
    scheme = query.get("scheme", ["https"])[0]
    endpoint = (query.get("endpoint_override", [""])[0] or os.environ.get("AWS_ENDPOINT_URL_S3", "")
                or os.environ.get("AWS_ENDPOINT_URL", ""))
    if not endpoint:
        return f"s3.{filesystem.region or 'us-east-1'}.amazonaws.com", 443
    if "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
    host, _, port = endpoint.partition("/")[0].rpartition(":")
    if not host or not port.isdigit():
        host, port = endpoint.partition("/")[0], "443" if scheme == "https" else "80"
    return host, int(port)


def check_remote(storage: str, filesystem: pafs.FileSystem, path: str) -> None:
    """Before Ray starts: the store answers, the bucket exists and these credentials may read it.

    An S3 endpoint where nothing listens is refused after a TCP probe (the AWS SDK would retry it for
    seconds, Ray for longer); an unknown bucket reads as "not found" in pyarrow, so it is asked for
    explicitly; wrong credentials fail the bucket's HEAD request (403)."""
    if not isinstance(filesystem, pafs.S3FileSystem):
        try:
            filesystem.get_file_info(path)
        except OSError as error:
            raise UsageError(f"--storage {storage}: cannot read it ({_first_line(error)})") from None
        return
    host, port = s3_endpoint(storage, filesystem)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise UsageError(f"--storage {storage}: no S3 endpoint answers at {host}:{port} ({reason})") from None
    bucket = path.split("/", 1)[0]
    try:
        info = filesystem.get_file_info(bucket)
        if info.type == pafs.FileType.NotFound:
            raise UsageError(f"--storage {storage}: bucket {bucket!r} does not exist (create it first)")
        filesystem.get_file_info(path)
    except OSError as error:  # access denied, invalid key, expired token, ...
        raise UsageError(f"--storage {storage}: cannot read bucket {bucket!r} with these credentials "
                         f"({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


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
