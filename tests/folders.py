"""Image folders in torchvision's ImageFolder layout, written by the tests in real PNG / JPEG files: each class
is a learnable pattern (a bright bar at a class-specific position) with noise, so a classifier can beat chance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def class_image(label: int, num_classes: int, size: int, rng: np.random.Generator, colour: bool) -> np.ndarray:
    image = rng.integers(0, 60, (size, size), dtype=np.uint8)
    row = int(label * (size - 3) / max(1, num_classes - 1))
    image[row:row + 3, :] = 230
    if colour:
        rgb = np.stack([image, np.roll(image, 1, axis=1), image // 2], axis=-1)
        return rgb.astype(np.uint8)
    return image


def write_folder(root: Path, counts: dict[str, int], test_counts: dict[str, int] | None = None, size: int = 20,
                 colour: bool = False, formats: tuple[str, ...] = ("png", "jpg"), seed: int = 0) -> Path:
    """``root/train/<class>/<i>.<fmt>`` with ``counts[class]`` images (and ``root/test/...`` likewise); the
    class id of a name is its rank in sorted order, as ImageFolder has it."""
    rng = np.random.default_rng(seed)
    names = sorted(counts)
    for split, split_counts in (("train", counts), ("test", test_counts or {})):
        for name, count in split_counts.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                array = class_image(names.index(name), len(names), size, rng, colour)
                fmt = formats[i % len(formats)]
                # JPEG is lossy: the bar stays recognisable; quality high so decode differences stay small
                Image.fromarray(array).save(folder / f"{i:04d}.{fmt}", quality=95)
    return root
