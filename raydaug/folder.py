"""``dataset=folder``: labelled images in torchvision's ImageFolder layout, decoded once and cached.

Layout: ``DATA_DIR/train/<class>/<image files>`` and, optionally, ``DATA_DIR/test/<class>/<image files>``
(files may sit in sub-folders of a class folder). Class ids are the sorted class-folder names of ``train/``.
Hidden files and files Pillow cannot open by their ending (``.txt``, ``.csv``, …) are skipped and counted;
a file with an image ending that does not decode stops the run, naming it.

The decoded images (uint8, resized to ``image_size``) are cached in ``$RAYDAUG_CACHE`` (default
``~/.cache/raydaug``), keyed by the folder's file list, sizes and modification times and the image size: the
trials of a population and every later run start from the cache; a changed folder is decoded again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .images import LabelledImages, decode_image, image_extensions, is_grey

CACHE_FORMAT = 1
# refuse a folder whose decoded images need more than this share of the memory available now: training also
# holds float copies of the splits it keeps, the players and Ray's workers
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class FolderIndex:
    """What a folder holds, before decoding: class names and the image files of each split."""

    root: Path
    class_names: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]  # (file, class id)
    test: tuple[tuple[Path, int], ...]
    skipped: tuple[Path, ...]  # files that are not images (by their ending)
    stats: dict[Path, tuple[int, int]]  # size and modification time (ns) of every image file

    @property
    def files(self) -> list[Path]:
        return [path for path, _ in (*self.train, *self.test)]


def cache_dir() -> Path:
    return Path(os.environ.get("RAYDAUG_CACHE") or Path.home() / ".cache" / "raydaug")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_files(folder: Path, extensions: frozenset[str],
                 stats: dict[Path, tuple[int, int]]) -> tuple[list[Path], list[Path]]:
    """Image files and other files below ``folder`` (hidden ones skipped), sorted; each file's size and
    modification time go into ``stats`` (one stat per file: the cache key needs them)."""
    images, skipped = [], []
    for directory, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(directory, name)
            info = path.stat()
            stats[path] = (info.st_size, info.st_mtime_ns)
            (images if path.suffix.lower() in extensions else skipped).append(path)
    return sorted(images), sorted(skipped)


def scan_folder(data_dir: str | Path) -> FolderIndex:
    """Index ``data_dir``'s layout, checking it: a ``train/`` folder of at least two class folders, each with
    at least one image; a ``test/`` folder, where there is one, holding only classes ``train/`` has."""
    root = Path(data_dir).expanduser().resolve()
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir():
        raise DataError(f"dataset=folder: no train/ folder in data_dir={root}; expected "
                        f"{root}/train/<class>/<image files> (and optionally {root}/test/<class>/...)")
    extensions = image_extensions()
    class_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir() and _visible(p))
    if len(class_dirs) < 2:
        found = ", ".join(repr(p.name) for p in class_dirs) or "none"
        raise DataError(f"dataset=folder: {train_dir} needs at least 2 class folders, found {len(class_dirs)} "
                        f"({found})")
    names = tuple(p.name for p in class_dirs)
    stats: dict[Path, tuple[int, int]] = {}
    train: list[tuple[Path, int]] = []
    skipped: list[Path] = []
    for label, folder in enumerate(class_dirs):
        images, others = _class_files(folder, extensions, stats)
        if not images:
            raise DataError(f"dataset=folder: class {folder.name!r} has no image files in {folder}"
                            + (f" ({len(others)} other files)" if others else ""))
        train += [(path, label) for path in images]
        skipped += others
    test: list[tuple[Path, int]] = []
    if test_dir.is_dir():
        for folder in sorted(p for p in test_dir.iterdir() if p.is_dir() and _visible(p)):
            if folder.name not in names:
                raise DataError(f"dataset=folder: test class {folder.name!r} ({folder}) is not a class of "
                                f"train/ ({', '.join(names)})")
            images, others = _class_files(folder, extensions, stats)
            test += [(path, names.index(folder.name)) for path in images]
            skipped += others
        if not test:
            raise DataError(f"dataset=folder: {test_dir} holds no image files in class folders")
    return FolderIndex(root, names, tuple(train), tuple(test), tuple(skipped), stats)


def cache_key(index: FolderIndex, image_size: int) -> str:
    """A digest of every file's path, size and modification time, and the image size."""
    digest = hashlib.sha256(json.dumps([CACHE_FORMAT, str(index.root), image_size, index.class_names]).encode())
    for path in index.files:
        size, mtime = index.stats[path]
        digest.update(f"{path.relative_to(index.root)}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:32]


def available_memory() -> int:
    """Bytes of memory available now (Linux: MemAvailable; elsewhere the free physical pages)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_memory(count: int, channels: int, image_size: int, root: Path) -> None:
    needed = count * channels * image_size * image_size
    available = available_memory()
    if needed > MEMORY_SHARE * available:
        raise DataError(f"dataset=folder: {count} images of {channels}×{image_size}×{image_size} need "
                        f"{needed / 2**30:.2f} GiB as uint8, more than {MEMORY_SHARE:.0%} of the "
                        f"{available / 2**30:.2f} GiB available; use a smaller image_size or fewer images in {root}")


def _decode_all(paths: list[Path], image_size: int, channels: int, desc: str) -> np.ndarray:
    from tqdm import tqdm

    out = np.empty((len(paths), channels, image_size, image_size), dtype=np.uint8)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(paths), desc=desc, unit="img", file=sys.stderr, mininterval=1.0) as bar:
        for i, array in enumerate(pool.map(lambda p: decode_image(p, image_size, channels), paths, chunksize=32)):
            out[i] = array
            bar.update(1)
    return out


def load_folder(data_dir: str | Path, image_size: int, log=print) -> LabelledImages:
    """The folder's images at ``image_size`` (uint8), from the cache when the folder has not changed."""
    index = scan_folder(data_dir)
    path = cache_dir() / "folders" / f"{cache_key(index, image_size)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                return _labelled(index, {name: cached[name] for name in cached.files})
        except (OSError, ValueError, KeyError) as error:
            log(f"dataset=folder: cache {path} is unreadable ({error}); decoding again")
    channels = 1 if all(is_grey(p) for p in index.files) else 3
    _check_memory(len(index.files), channels, image_size, index.root)
    skipped = f", {len(index.skipped)} non-image files skipped" if index.skipped else ""
    log(f"dataset=folder: decoding {len(index.files)} images of {len(index.class_names)} classes in "
        f"{index.root} at {image_size} px ({'grey' if channels == 1 else 'colour'}{skipped}); cached in {path}")
    arrays = {"train_images": _decode_all([p for p, _ in index.train], image_size, channels, "train"),
              "train_labels": np.array([label for _, label in index.train], dtype=np.int64)}
    if index.test:
        arrays["test_images"] = _decode_all([p for p, _ in index.test], image_size, channels, "test")
        arrays["test_labels"] = np.array([label for _, label in index.test], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)  # whole or not at all: trials of a population may decode at once
    return _labelled(index, arrays)


def _labelled(index: FolderIndex, arrays: dict[str, np.ndarray]) -> LabelledImages:
    test = "test_images" in arrays
    return LabelledImages(
        torch.from_numpy(arrays["train_images"]), torch.from_numpy(arrays["train_labels"]), index.class_names,
        torch.from_numpy(arrays["test_images"]) if test else None,
        torch.from_numpy(arrays["test_labels"]) if test else None)
