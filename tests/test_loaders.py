"""The torchvision loaders read small files that the test writes in each dataset's real on-disk format.

MNIST / FashionMNIST: uncompressed idx-ubyte files under ``<root>/<Name>/raw``; CIFAR-10: the pickled
``cifar-10-batches-py`` folder (5 training batches, ``test_batch``, ``batches.meta``); SVHN: MATLAB
``train_32x32.mat`` / ``test_32x32.mat`` (X as H×W×C×N uint8, y in 1..10 with 10 meaning digit 0).
torchvision checks the md5 of the official CIFAR-10 and SVHN files; the test points those expected
hashes at the files it wrote (the format is the real one, only the hash is ours). No network.
"""
from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from raydaug.config import Config, ConfigError
from raydaug.data import DataError, load_splits

TRAIN_PER_CLASS_ON_DISK = 4  # images of every class in the fake training file
TEST_PER_CLASS_ON_DISK = 2
NATIVE = {"mnist": (1, 28), "fashion_mnist": (1, 28), "svhn": (3, 32), "cifar10": (3, 32)}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _fake_images(n_per_class: int, channels: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) uint8 images with labels 0..9 in a shuffled order; every image holds a 0 and a 255,
    and pixel [0, 0, 0] stores the label so a mix-up of images and labels would show."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10), n_per_class)).astype(np.int64)
    images = rng.integers(1, 255, size=(len(labels), channels, side, side), dtype=np.uint8)
    images[:, :, 1, 1] = 0
    images[:, :, 2, 2] = 255
    images[:, 0, 0, 0] = labels * 20 + 3
    return images, labels


# ---------------------------------------------------------------------- writers (real formats)
def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """idx3-ubyte / idx1-ubyte: big-endian magic (0x0803 / 0x0801) and sizes, then raw uint8 data."""
    folder.mkdir(parents=True, exist_ok=True)
    n, _, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x0803, n, h, w) + images[:, 0].astype(np.uint8).tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x0801, n) + labels.astype(np.uint8).tobytes())


def _write_mnist_like(root: Path, folder_name: str, train, test) -> None:
    raw = root / folder_name / "raw"
    _write_idx(raw, "train", *train)
    _write_idx(raw, "t10k", *test)


def _write_cifar10(root: Path, train, test, monkeypatch) -> None:
    import torchvision.datasets as tvd

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(name: str, images: np.ndarray, labels: np.ndarray) -> list[str]:
        entry = {"batch_label": name, "labels": [int(v) for v in labels],
                 "data": images.reshape(len(images), -1).astype(np.uint8),  # rows: R plane, G plane, B plane
                 "filenames": [f"img_{i}.png" for i in range(len(images))]}
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle, protocol=2)
        return [name, _md5(folder / name)]

    images, labels = train
    chunks = np.array_split(np.arange(len(labels)), 5)
    train_list = [batch(f"data_batch_{k + 1}", images[idx], labels[idx]) for k, idx in enumerate(chunks)]
    test_list = [batch("test_batch", *test)]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"], "num_cases_per_batch": 10000,
                     "num_vis": 3072}, handle, protocol=2)
    meta = {"filename": "batches.meta", "key": "label_names", "md5": _md5(folder / "batches.meta")}
    monkeypatch.setattr(tvd.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(tvd.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(tvd.CIFAR10, "meta", meta)


def _write_svhn(root: Path, train, test, monkeypatch) -> None:
    import scipy.io
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    split_list = dict(tvd.SVHN.split_list)
    for split, (images, labels) in (("train", train), ("test", test)):
        name = f"{split}_32x32.mat"
        svhn_labels = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)  # SVHN: '0' is 10
        scipy.io.savemat(root / name, {"X": np.ascontiguousarray(images.transpose(2, 3, 1, 0)),
                                       "y": svhn_labels})
        url = split_list[split][0]
        split_list[split] = [url, name, _md5(root / name)]
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)


def write_dataset(name: str, root: Path, monkeypatch) -> tuple[tuple, tuple]:
    channels, side = NATIVE[name]
    train = _fake_images(TRAIN_PER_CLASS_ON_DISK, channels, side, seed=1)
    test = _fake_images(TEST_PER_CLASS_ON_DISK, channels, side, seed=2)
    if name == "mnist":
        _write_mnist_like(root, "MNIST", train, test)
    elif name == "fashion_mnist":
        _write_mnist_like(root, "FashionMNIST", train, test)
    elif name == "cifar10":
        _write_cifar10(root, train, test, monkeypatch)
    else:
        _write_svhn(root, train, test, monkeypatch)
    return train, test


def config(name: str, root: Path, **changes) -> Config:
    values = {"dataset": name, "data_dir": str(root), "image_size": 32, "train_per_class": 2,
              "val_per_class": 1, "aug": "none", "seed": 0}
    values.update(changes)
    return Config.from_dict(values)


# ---------------------------------------------------------------------- helpers for the assertions
def _native_view(images: torch.Tensor, name: str) -> torch.Tensor:
    """Undo the 28 → 32 zero padding of the MNIST family (2 px on every side)."""
    return images[:, :, 2:30, 2:30] if NATIVE[name][1] == 28 else images


def _match(loaded: torch.Tensor, written: np.ndarray) -> list[int]:
    """Index of the written image each loaded one is, exactly (uint8 / 255)."""
    reference = torch.from_numpy(written).float().div(255.0).flatten(1)
    found = []
    for image in loaded.flatten(1):
        hits = torch.nonzero((reference - image).abs().amax(dim=1) < 1e-6).flatten().tolist()
        assert len(hits) == 1, "a loaded image is not one of the written images"
        found.append(hits[0])
    return found


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "svhn", "cifar10"])
def test_loader_reads_the_real_format(name, tmp_path, monkeypatch):
    (train_images, train_labels), (test_images, test_labels) = write_dataset(name, tmp_path, monkeypatch)
    splits = load_splits(config(name, tmp_path))
    channels = NATIVE[name][0]
    assert splits.channels == channels
    sizes = {"train": 2 * 10, "val": 1 * 10, "test": TEST_PER_CLASS_ON_DISK * 10}
    for part, size in sizes.items():
        split = getattr(splits, part)
        assert split.images.shape == (size, channels, 32, 32), part
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert float(split.images.min()) == 0.0 and float(split.images.max()) == 1.0, part

    # stratified: exactly train_per_class / val_per_class images of every class, labels 0..9
    assert torch.bincount(splits.train.labels, minlength=10).tolist() == [2] * 10
    assert torch.bincount(splits.val.labels, minlength=10).tolist() == [1] * 10
    assert torch.bincount(splits.test.labels, minlength=10).tolist() == [TEST_PER_CLASS_ON_DISK] * 10

    # every image is one of the written ones, with its own label (SVHN's 10 → 0 included), and the
    # train and val sets are disjoint subsets of the training file; the test set is the test file
    train_idx = _match(_native_view(splits.train.images, name), train_images)
    val_idx = _match(_native_view(splits.val.images, name), train_images)
    test_idx = _match(_native_view(splits.test.images, name), test_images)
    assert not set(train_idx) & set(val_idx)
    assert splits.train.labels.tolist() == train_labels[train_idx].tolist()
    assert splits.val.labels.tolist() == train_labels[val_idx].tolist()
    assert sorted(test_idx) == list(range(len(test_labels)))
    assert splits.test.labels.tolist() == test_labels[test_idx].tolist()
    # the label pixel survives the trip: images were not decoupled from their labels
    stamp = (splits.train.images[:, 0, 0, 0] if NATIVE[name][1] == 32 else splits.train.images[:, 0, 2, 2])
    assert torch.allclose(stamp * 255, (splits.train.labels * 20 + 3).float(), atol=1e-3)

    # normalisation statistics come from the training split
    assert torch.allclose(splits.mean.flatten(), splits.train.images.mean(dim=(0, 2, 3)))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_28px_images_are_zero_padded_to_32(name, tmp_path, monkeypatch):
    write_dataset(name, tmp_path, monkeypatch)
    splits = load_splits(config(name, tmp_path))
    for split in (splits.train, splits.val, splits.test):
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert torch.count_nonzero(split.images[:, :, border]) == 0  # 2 px of zeros on every side
        assert torch.all(split.images[:, :, 2:30, 2:30].amax(dim=(1, 2, 3)) == 1.0)  # content untouched


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_loader_resizes_to_16px(name, tmp_path, monkeypatch):
    write_dataset(name, tmp_path, monkeypatch)
    splits = load_splits(config(name, tmp_path, image_size=16))
    channels = NATIVE[name][0]
    assert splits.train.images.shape == (20, channels, 16, 16)
    assert splits.test.images.shape == (20, channels, 16, 16)
    for split in (splits.train, splits.val, splits.test):
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0


def test_splits_are_seeded(tmp_path, monkeypatch):
    write_dataset("cifar10", tmp_path, monkeypatch)
    first = load_splits(config("cifar10", tmp_path, seed=3))
    again = load_splits(config("cifar10", tmp_path, seed=3))
    assert torch.equal(first.train.images, again.train.images)
    assert torch.equal(first.val.images, again.val.images)
    # 4 images per class, 2 train + 1 val: over several seeds the chosen train sets must vary
    others = [load_splits(config("cifar10", tmp_path, seed=s)).train.images for s in range(4, 8)]
    assert any(not torch.equal(first.train.images, other) for other in others)


def test_too_few_images_per_class_is_a_config_error(tmp_path, monkeypatch):
    write_dataset("mnist", tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="train_per_class"):
        load_splits(config("mnist", tmp_path, train_per_class=3, val_per_class=2))  # only 4 on disk


@pytest.mark.parametrize("name, expected", [
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
    ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
    ("svhn", "train_32x32.mat"),
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
])
def test_missing_files_name_the_expected_path(name, expected, tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_splits(config(name, root))
    message = str(info.value)
    assert str(root / expected) in message
    assert "download=true" in message
    assert not root.exists() or not any(root.rglob("*.gz"))  # nothing was fetched


def test_corrupted_cifar_file_is_a_data_error(tmp_path, monkeypatch):
    write_dataset("cifar10", tmp_path, monkeypatch)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "ab") as handle:
        handle.write(b"garbage")  # md5 no longer matches
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_splits(config("cifar10", tmp_path))
