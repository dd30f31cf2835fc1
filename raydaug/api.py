"""raydaug from Python: ``raydaug.fit(...)`` trains one run on your images and returns its results as data.

    import raydaug
    result = raydaug.fit(images=x, labels=y, class_names=["cat", "dog"], epochs=50, image_size=32)
    result.history        # pandas DataFrame: one row per evaluation, every metric
    result.best           # {'acc/val': …, 'acc/test': …, 'epoch': …}
    result.export("model.pt2")   # the best classifier, loads with torch alone

A population through Ray Tune on the same images: :func:`raydaug.tune.sweep`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError
from .images import LabelledImages, from_arrays, from_dataset


def as_labelled_images(images: Any = None, labels: Any = None, *, test_images: Any = None, test_labels: Any = None,
                       class_names: Any = None, dataset: Any = None, test_dataset: Any = None,
                       data: LabelledImages | None = None) -> LabelledImages | None:
    """The one way in for images from Python: arrays/tensors (``images``, ``labels``, optional test set), a
    map-style ``dataset`` of (image, label) (optional ``test_dataset``), or ready :class:`LabelledImages`."""
    given = [name for name, value in (("images", images), ("dataset", dataset), ("data", data)) if value is not None]
    if len(given) > 1:
        raise ConfigError(f"pass one source of images, got {', '.join(given)}")
    if data is not None:
        return data
    if dataset is not None:
        return from_dataset(dataset, test_dataset=test_dataset, class_names=class_names)
    if images is not None:
        if labels is None:
            raise ConfigError("images need labels: pass labels=... (one integer class id per image)")
        return from_arrays(images, labels, test_images=test_images, test_labels=test_labels,
                           class_names=class_names)
    if labels is not None or test_images is not None or test_dataset is not None:
        raise ConfigError("labels / test images were given without images")
    return None


def config_for(config: Config | Mapping[str, Any] | None, keys: Mapping[str, Any],
               data: LabelledImages | None) -> Config:
    """``config`` (a Config or a dict of keys) with ``keys`` on top; images from Python set ``dataset=memory``."""
    values = config.to_dict() if isinstance(config, Config) else dict(config or {})
    values.update(keys)
    if data is not None:
        if values.get("dataset", "memory") != "memory":
            raise ConfigError(f"dataset={values['dataset']!r} but images were passed from Python: leave dataset "
                              "out (it becomes dataset=memory)")
        values["dataset"] = "memory"
    if isinstance(config, Config):
        values["preset"] = ""  # already expanded
    return Config.from_dict(values)


@dataclass
class FitResult:
    """What one run gives back: its config, every evaluation, the best one, and the trained players."""

    config: Config
    history: Any  # pandas.DataFrame: one row per evaluation
    best: dict[str, float]
    class_names: tuple[str, ...]
    out: Path | None = None
    payload: dict[str, Any] = field(default_factory=dict, repr=False)  # the final checkpoint, in memory

    @property
    def base_aug(self) -> str:
        """The hand-made augmentation G stood on: ``config.base_aug``, or with ``auto`` the pilot's choice."""
        pilot = self.payload.get("pilot")
        return pilot["choice"] if self.config.base_aug == "auto" and pilot else self.config.base_aug

    def export(self, path: str | Path) -> Path:
        """Write the best classifier (as ``raydaug export`` does) to ``path``."""
        from .export import export_payload

        return export_payload(self.payload, path)[0]


def fit(config: Config | Mapping[str, Any] | None = None, *, images: Any = None, labels: Any = None,
        test_images: Any = None, test_labels: Any = None, class_names: Any = None, dataset: Any = None,
        test_dataset: Any = None, out: str | Path | None = None, log: Callable[[str], None] | None = print,
        **keys: Any) -> FitResult:
    """Train one run (no Ray) and return its results. Config keys come as ``config`` and/or keyword arguments
    (``epochs=50``, ``aug="strong"``, …). Images from Python: arrays or tensors (``images``, ``labels``,
    optionally ``test_images``/``test_labels`` and ``class_names``) or a map-style ``dataset``; without them
    the run reads ``config.dataset`` (e.g. ``dataset="folder", data_dir=...``). With ``out`` the run writes
    the same folder as ``raydaug train --out`` (Parquet, checkpoints, result.json); without it nothing is
    written anywhere."""
    import pandas as pd

    from .train import Progress, Trainer, log_pilot, run_training

    data = as_labelled_images(images, labels, test_images=test_images, test_labels=test_labels,
                              class_names=class_names, dataset=dataset, test_dataset=test_dataset)
    config = config_for(config, keys, data)
    quiet = log or (lambda _line: None)
    if out is not None:
        from .checkpoint import load_checkpoint
        from .logging.reader import read_metrics

        result = run_training(config, out, log=quiet, data=data)
        payload = load_checkpoint(result["checkpoint"])
        history, _skipped = read_metrics(str(Path(out).resolve()))
        return FitResult(config, history, dict(result["best"]),
                         tuple(payload["data"]["class_names"]), Path(out), payload)
    trainer = Trainer(config, data=data, log=quiet)
    rows = []
    while not trainer.done:
        rows.append(trainer.train_iteration())
        log_pilot(trainer)
        quiet(Progress(trainer.state.epoch, config.epochs, rows[-1]).line())
    payload = trainer.state_payload()
    return FitResult(config, pd.DataFrame(rows), dict(trainer.state.best), tuple(trainer.splits.class_names),
                     None, payload)
