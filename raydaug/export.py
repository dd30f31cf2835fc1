"""The trained classifier as a file that loads with torch alone, and predictions from it.

Format: a ``torch.export`` program (``torch.export.save``), the format current PyTorch supports for shipping a
model without its Python code (TorchScript is in maintenance). It maps a float batch ``(N, C, H, W)`` in
[0, 1] at the run's image size to logits, any batch size, the training split's normalisation inside. The class
names, image size and channel count travel with it as ``raydaug.json`` in the archive::

    extra = {"raydaug.json": ""}
    model = torch.export.load("model.pt2", extra_files=extra).module()
    meta = json.loads(extra["raydaug.json"])  # class_names, image_size, channels, ...
    logits = model(batch)
"""
from __future__ import annotations

import copy
import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import DataError
from .images import decode_image, image_extensions

META_FILE = "raydaug.json"
PREDICT_BATCH = 256


class Normalized(nn.Module):
    """``classifier((x - mean) / std)``: the deployed model takes images in [0, 1]."""

    def __init__(self, classifier: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", mean.detach().reshape(1, -1, 1, 1).float().cpu())
        self.register_buffer("std", std.detach().reshape(1, -1, 1, 1).float().cpu())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier((images - self.mean) / self.std)


def export_classifier(classifier: nn.Module, mean: torch.Tensor, std: torch.Tensor, meta: dict[str, Any],
                      path: str | Path) -> Path:
    """Write ``classifier`` (eval mode, on the CPU) with its normalisation as a ``torch.export`` archive.
    ``meta`` must hold ``image_size``, ``channels`` and ``class_names``; it is stored beside the program."""
    module = Normalized(copy.deepcopy(classifier).cpu().float(), mean, std).eval()
    size, channels = int(meta["image_size"]), int(meta["channels"])
    example = torch.rand(2, channels, size, size)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes={"images": {0: batch}})
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(target), extra_files={META_FILE: json.dumps(meta, sort_keys=True)})
    return target


def load_exported(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The exported model (a plain ``nn.Module``) and its metadata."""
    extra = {META_FILE: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as error:  # not a torch.export archive
        raise DataError(f"{path}: not a model exported by `raydaug export` ({type(error).__name__}: {error})") \
            from error
    if not extra[META_FILE]:
        raise DataError(f"{path}: a torch.export archive without raydaug's metadata ({META_FILE})")
    return program.module(), json.loads(extra[META_FILE])


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named, and those inside named folders (walked recursively, hidden files skipped, files
    that are not images by their ending skipped); a named file that is not an image is an error."""
    extensions = image_extensions()
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                            and not any(part.startswith(".") for part in p.relative_to(given).parts))
        elif given.is_file():
            if given.suffix.lower() not in extensions:
                raise DataError(f"{given}: not an image file (Pillow opens {', '.join(sorted(extensions)[:8])}, …)")
            found.append(given)
        else:
            raise DataError(f"{given}: no such file or folder")
    if not found:
        raise DataError(f"no image files in {', '.join(map(str, paths))}")
    return found


def predict_files(model: nn.Module, meta: dict[str, Any], files: Iterable[Path]) -> list[tuple[str, str, float]]:
    """(path, class name, probability) per file, each read exactly as training read a folder's images."""
    size, channels, names = int(meta["image_size"]), int(meta["channels"]), meta["class_names"]
    files = list(files)
    rows: list[tuple[str, str, float]] = []
    for start in range(0, len(files), PREDICT_BATCH):
        chunk = files[start:start + PREDICT_BATCH]
        batch = torch.stack([torch.from_numpy(decode_image(path, size, channels)) for path in chunk])
        with torch.no_grad():
            probabilities = model(batch.float().div_(255.0)).softmax(dim=1)
        confidence, label = probabilities.max(dim=1)
        rows += [(str(path), names[int(k)], float(p)) for path, k, p in zip(chunk, label, confidence)]
    return rows


def write_predictions(rows: list[tuple[str, str, float]], out: str | Path | None) -> None:
    """``path,label,probability`` rows as CSV, to ``out`` or standard output."""
    import sys

    handle = open(out, "w", newline="") if out else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "probability"])
        writer.writerows((path, label, f"{p:.6f}") for path, label, p in rows)
    finally:
        if out:
            handle.close()


def classifier_from_payload(payload: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier a checkpoint reports as best (its evaluated classifier — the EMA of C where ``eval_ema``
    measured it — at the best validation score) and the metadata an exported model carries."""
    from .config import Config
    from .errors import CheckpointError
    from .nets import build_classifier

    if payload.get("best_classifier") is None or "data" not in payload:
        raise CheckpointError("this checkpoint holds no best classifier (made before raydaug kept one, or before "
                              "its first evaluation): train again to export it")
    config = Config.from_logged(payload["config"])
    data = payload["data"]
    classifier = build_classifier(config.classifier, int(data["channels"]), len(data["class_names"]),
                                  config.image_size)
    classifier.load_state_dict(payload["best_classifier"])
    meta = {"class_names": list(data["class_names"]), "image_size": config.image_size,
            "channels": int(data["channels"]), "dataset": config.dataset, "aug": config.aug,
            "classifier": config.classifier, "best": dict(payload["best"]),
            "mean": [float(v) for v in data["mean"]], "std": [float(v) for v in data["std"]]}
    return classifier.eval(), meta


def export_payload(payload: dict[str, Any], path: str | Path, **extra: Any) -> tuple[Path, dict[str, Any]]:
    """Export a checkpoint's best classifier (see :func:`classifier_from_payload`); ``extra`` joins its metadata."""
    classifier, meta = classifier_from_payload(payload)
    meta.update(extra)
    return export_classifier(classifier, torch.tensor(meta["mean"]), torch.tensor(meta["std"]), meta, path), meta
