"""Labelled images that a user brings: decoding one image file, and arrays, tensors or a Dataset checked
into one :class:`LabelledImages`.

Every image a user brings is read by :func:`decode_image` — for training (``dataset=folder``), evaluation and
``raydaug predict`` alike — so an exported model sees its inputs exactly as training did.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError

# Pillow modes read as one grey channel; every other mode (RGB, RGBA, P, CMYK, …) is read as RGB
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def image_extensions() -> frozenset[str]:
    """The file endings Pillow can open (``.png``, ``.jpg``, ``.bmp``, …), lower case."""
    from PIL import Image

    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def is_grey(path: str | Path) -> bool:
    """Whether the image file is single-channel (reads the header only)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode in GREY_MODES
    except Exception as error:  # Pillow raises several types for a file that is not an image
        raise DataError(f"cannot decode image {path}: {type(error).__name__}: {error}") from error


def decode_image(path: str | Path, image_size: int, channels: int) -> np.ndarray:
    """One image file as ``(channels, image_size, image_size)`` uint8: converted to grey (``channels=1``)
    or RGB, then resized to a square with Pillow's bilinear filter (antialiased when shrinking). Aspect
    ratio is not kept: a non-square image is squeezed, the same way for training and prediction."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # a truncated file fails here, not later
            image = image.convert("L" if channels == 1 else "RGB")
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError… for a damaged file
        raise DataError(f"cannot decode image {path}: {type(error).__name__}: {error}") from error
    return (array[None] if channels == 1 else array.transpose(2, 0, 1)).copy()  # C order, writable


@dataclass(frozen=True)
class LabelledImages:
    """Images a user brings, before any split: a training pool and, when the user has one, a test set.

    ``images`` are ``(N, C, H, W)``, uint8 (0–255) or float (0–1); ``labels`` int64 in ``[0, len(class_names))``.
    Without a test set, the test split is what the training and validation splits leave of the pool."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def nbytes(self) -> int:
        tensors = [self.images, self.labels, self.test_images, self.test_labels]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _images_tensor(values: Any, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values)) if not isinstance(values, torch.Tensor) else values.detach().cpu()
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
        raise DataError(f"{what} must have shape (N, H, W) or (N, C, H, W) with C = 1 or 3, got "
                        f"{tuple(tensor.shape)} (channels-last arrays: move the channel axis, e.g. "
                        "images.transpose(0, 3, 1, 2))")
    if tensor.shape[0] == 0:
        raise DataError(f"{what} is empty")
    if tensor.dtype == torch.uint8:
        return tensor.contiguous()
    if not tensor.is_floating_point():
        raise DataError(f"{what} must be uint8 (0-255) or float (0-1), got {tensor.dtype}")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise DataError(f"{what} holds NaN or infinite values")
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0.0 or high > 1.0:
        raise DataError(f"{what} is float with values in [{low:g}, {high:g}]; float images must lie in [0, 1] "
                        "(or pass uint8 0-255)")
    return tensor.contiguous()


def _labels_tensor(values: Any, count: int, num_classes: int | None, what: str) -> torch.Tensor:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{what} must be one-dimensional (N,), got shape {array.shape}")
    if array.shape[0] != count:
        raise DataError(f"{what} has {array.shape[0]} entries for {count} images")
    if not np.issubdtype(array.dtype, np.integer):
        if not (np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array))
                and np.all(array == np.round(array))):
            raise DataError(f"{what} must be integer class ids 0..K-1, got dtype {array.dtype}")
    labels = torch.from_numpy(array.astype(np.int64))
    if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
        limit = f"[0, {num_classes})" if num_classes is not None else "≥ 0"
        raise DataError(f"{what} has class ids in [{int(labels.min())}, {int(labels.max())}], outside {limit}")
    return labels


def from_arrays(images: Any, labels: Any, *, test_images: Any = None, test_labels: Any = None,
                class_names: list[str] | tuple[str, ...] | None = None) -> LabelledImages:
    """Check and wrap NumPy arrays or tensors: images ``(N, H, W)`` or ``(N, C, H, W)``, uint8 or float in
    [0, 1]; labels ``(N,)`` integer class ids. ``class_names`` default to ``"0"``, ``"1"``, …"""
    train = _images_tensor(images, "images")
    num_classes = len(class_names) if class_names is not None else None
    train_labels = _labels_tensor(labels, train.shape[0], num_classes, "labels")
    test = test_labels_t = None
    if (test_images is None) != (test_labels is None):
        raise DataError("test_images and test_labels go together: pass both or neither")
    if test_images is not None:
        test = _images_tensor(test_images, "test_images")
        if test.shape[1:] != train.shape[1:]:
            raise DataError(f"test_images have shape {tuple(test.shape[1:])} per image, images "
                            f"{tuple(train.shape[1:])}")
        test_labels_t = _labels_tensor(test_labels, test.shape[0], num_classes, "test_labels")
        if test.dtype != train.dtype:
            test = test.float().div_(255.0) if test.dtype == torch.uint8 else test
            train = train.float().div_(255.0) if train.dtype == torch.uint8 else train
    if class_names is None:
        top = int(train_labels.max())
        if test_labels_t is not None:
            top = max(top, int(test_labels_t.max()))
        class_names = [str(index) for index in range(top + 1)]
    names = tuple(str(name) for name in class_names)
    if len(set(names)) != len(names):
        raise DataError(f"class_names repeat a name: {list(names)}")
    if len(names) < 2:
        raise DataError(f"at least 2 classes are needed, got {len(names)}")
    missing = sorted(set(range(len(names))) - set(train_labels.unique().tolist()))
    if missing:
        raise DataError(f"class(es) {[names[i] for i in missing]} have no training image")
    return LabelledImages(train, train_labels, names, test, test_labels_t)


def from_dataset(dataset: Any, *, test_dataset: Any = None,
                 class_names: list[str] | tuple[str, ...] | None = None) -> LabelledImages:
    """Read a map-style ``torch.utils.data.Dataset`` of ``(image, label)`` once into memory. An image may be a
    PIL image, a tensor or an array (``(H, W)``, ``(C, H, W)``); all must share one size and channel count
    (resize them in the dataset's own transform, or use ``dataset=folder``). ``class_names`` default to the
    dataset's ``classes`` attribute where it has one (torchvision datasets do)."""
    names = class_names if class_names is not None else getattr(dataset, "classes", None)
    images, labels = _read_dataset(dataset, "dataset")
    test_images = test_labels = None
    if test_dataset is not None:
        test_images, test_labels = _read_dataset(test_dataset, "test_dataset")
    return from_arrays(images, labels, test_images=test_images, test_labels=test_labels, class_names=names)


def _read_dataset(dataset: Any, what: str) -> tuple[torch.Tensor, list[int]]:
    try:
        count = len(dataset)
    except TypeError as error:
        raise DataError(f"{what} must be a map-style Dataset (with __len__ and __getitem__)") from error
    images, labels = [], []
    for index in range(count):
        item = dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"{what}[{index}] must be an (image, label) pair, got {type(item).__name__}")
        image, label = item[0], item[1]
        tensor = _image_item(image, f"{what}[{index}]")
        if images and tensor.shape != images[0].shape:
            raise DataError(f"{what}[{index}] has shape {tuple(tensor.shape)}, {what}[0] "
                            f"{tuple(images[0].shape)}: every image must have one size and channel count")
        images.append(tensor)
        labels.append(int(label.item() if hasattr(label, "item") else label))
    if not images:
        raise DataError(f"{what} is empty")
    return torch.stack(images), labels


def _image_item(image: Any, what: str) -> torch.Tensor:
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        array = np.asarray(image.convert("L" if image.mode in GREY_MODES else "RGB"))
        return torch.from_numpy((array[None] if array.ndim == 2 else array.transpose(2, 0, 1)).copy())
    tensor = image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise DataError(f"{what}: an image must be (H, W) or (C, H, W), got shape {tuple(tensor.shape)}")
    return tensor
