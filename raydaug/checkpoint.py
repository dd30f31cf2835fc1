"""Atomic, verified checkpoint files.

Layout: one header line ``RAYDAUG-CKPT 1 <sha256> <payload bytes>\n`` followed by a ``torch.save``
payload. Writes go to a temporary file in the same folder, are fsynced, then renamed over the target,
so a crash leaves either the old file or the new one. Loads check size and hash before unpickling.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

MAGIC = b"RAYDAUG-CKPT"
VERSION = 1


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwritable_folder(path: Path) -> str | None:
    """Why a folder cannot be made or written at ``path`` (checked without creating anything), or None."""
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create a folder under {existing}, which is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not a writable folder"
    return None


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    header = b"%s %d %s %d\n" % (MAGIC, VERSION, hashlib.sha256(body).hexdigest().encode(), len(body))
    atomic_write_bytes(path, header + body)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    newline = data.find(b"\n", 0, 256)
    parts = data[:newline].split(b" ") if newline > 0 else []
    if len(parts) != 4 or parts[0] != MAGIC:
        raise CheckpointError(f"{path} is not a raydaug checkpoint (no header)")
    if int(parts[1]) != VERSION:
        raise CheckpointError(f"{path}: checkpoint format {parts[1].decode()} is not supported")
    body = data[newline + 1:]
    if len(body) != int(parts[3]):
        raise CheckpointError(f"{path} is truncated: {len(body)} of {int(parts[3])} payload bytes")
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        raise CheckpointError(f"{path} is corrupted: content hash does not match its header")
    return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
