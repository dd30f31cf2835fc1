"""Reduced splits and the baseline augmentations."""
import pytest
import torch

from raydaug.data import (augment_light, augment_strong, augment_trivial, baseline_augment, load_splits,
                          stratified_indices)
from tests.helpers import tiny


def test_digits_splits_are_stratified_disjoint_and_complete():
    splits = load_splits(tiny(train_per_class=10, val_per_class=30))
    assert len(splits.train) == 100 and len(splits.val) == 300 and len(splits.test) == 1797 - 400
    assert torch.bincount(splits.train.labels).tolist() == [10] * 10
    assert torch.bincount(splits.val.labels).tolist() == [30] * 10
    assert splits.train.images.shape == (100, 1, 16, 16)
    assert 0.0 <= float(splits.train.images.min()) and float(splits.train.images.max()) <= 1.0


def test_split_indices_are_seeded_and_disjoint():
    labels = torch.arange(10).repeat_interleave(20)
    a = stratified_indices(labels, [5, 3], seed=1)
    b = stratified_indices(labels, [5, 3], seed=1)
    c = stratified_indices(labels, [5, 3], seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    together = torch.cat(a)
    assert len(together) == 200 and len(torch.unique(together)) == 200
    assert torch.bincount(labels[a[1]]).tolist() == [3] * 10


def test_normalisation_uses_the_training_split():
    splits = load_splits(tiny())
    x = splits.normalize(splits.train.images)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-2
    assert torch.allclose(splits.denormalize(x), splits.train.images, atol=1e-6)


@pytest.mark.parametrize("name", ["light", "strong", "trivial"])
def test_baselines_keep_shape_and_dtype_and_change_images(name):
    torch.manual_seed(0)
    images = load_splits(tiny()).train.images[:20]
    out = baseline_augment(name, images, "digits")
    assert out.shape == images.shape and out.dtype == images.dtype
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0 + 1e-6
    changed = (out - images).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.float().mean() > 0.5, "most images should be transformed"


def test_light_is_an_exact_integer_shift_with_zero_padding():
    torch.manual_seed(1)
    images = torch.rand(50, 1, 16, 16)
    out = augment_light(images)
    for image, shifted in zip(images, out):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
                crop = padded[:, 2 + dy:18 + dy, 2 + dx:18 + dx]
                found |= torch.equal(crop, shifted)
        assert found


def test_strong_flips_only_when_asked():
    torch.manual_seed(0)
    images = torch.zeros(200, 1, 32, 32)
    images[:, :, 8:24, 2:6] = 1.0  # a bar near the left edge
    no_flip = augment_strong(images, flip=False)
    flip = augment_strong(images, flip=True)
    left = lambda t: t[..., :16].sum(dim=(1, 2, 3))  # noqa: E731
    right = lambda t: t[..., 16:].sum(dim=(1, 2, 3))  # noqa: E731
    assert (right(no_flip) > left(no_flip)).float().mean() < 0.05
    assert 0.3 < (right(flip) > left(flip)).float().mean() < 0.7


def test_trivial_augment_runs_on_rgb():
    torch.manual_seed(0)
    out = augment_trivial(torch.rand(8, 3, 32, 32))
    assert out.shape == (8, 3, 32, 32)


def test_none_is_the_identity():
    images = torch.rand(4, 1, 16, 16)
    assert baseline_augment("none", images, "digits") is images
