"""Reduced splits and the baseline augmentations."""
import pytest
import torch
import torch.nn.functional as F

from raydaug import augment
from raydaug.allowed import DATASETS
from raydaug.augment import augment_light, augment_strong, augment_trivial, hand_made
from raydaug.augment import pad_pixels as _pad_pixels
from raydaug.data import load_splits, stratified_indices
from tests.helpers import tiny


def baseline_augment(name, images, dataset):
    return hand_made(name, images, dataset=dataset)


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


def _integer_shifts(images: torch.Tensor, out: torch.Tensor, search: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the (dy, dx) with |dy|, |dx| ≤ ``search`` such that ``out`` is exactly ``images``
    zero-padded and cropped at that offset, and how many offsets match (1 for random images)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (search, search, search, search))
    shifts = torch.full((n, 2), 10 ** 6, dtype=torch.long)
    matches = torch.zeros(n, dtype=torch.long)
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            crop = padded[..., search + dy:search + dy + h, search + dx:search + dx + w]
            same = (crop == out).flatten(1).all(dim=1)
            shifts[same] = torch.tensor([dy, dx])
            matches += same.long()
    return shifts, matches


@pytest.mark.parametrize("size, pad", [(16, 2), (32, 4)])
def test_light_shifts_each_image_by_its_own_integer_offset_within_the_pad(size, pad):
    # README: zero-pad 4 px at 32 px, scaled with the size
    assert _pad_pixels(size) == pad
    torch.manual_seed(1)
    n = 400 if size == 16 else 1200
    images = torch.rand(n, 1, size, size)  # random pixels: exactly one offset reproduces each output
    out = augment_light(images)
    shifts, matches = _integer_shifts(images, out, search=pad + 2)
    assert matches.tolist() == [1] * n, "every output is exactly one integer shift of its input, zero-filled"
    assert int(shifts.abs().max()) <= pad, "shifts stay within ±pad"
    seen = {tuple(s) for s in shifts.tolist()}
    every_offset = {(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}
    assert seen == every_offset, f"offsets never drawn: {sorted(every_offset - seen)}"  # per image, not shared
    again, _ = _integer_shifts(images, augment_light(images), search=pad + 2)
    assert (again != shifts).any(dim=1).float().mean() > 0.5, "a second call draws new shifts"


@pytest.fixture
def recorded_theta(monkeypatch):
    """Every (theta, mode, result) that the baseline augmentations resample with."""
    calls: list[tuple[torch.Tensor, str, torch.Tensor]] = []
    original = augment.affine_batch

    def recording(images, theta, mode):
        result = original(images, theta, mode)
        calls.append((theta.detach().clone(), mode, result))
        return result

    monkeypatch.setattr(augment, "affine_batch", recording)
    return calls


def _similarity(theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Angle (degrees), scale, flip and pixel shift of ``theta = [R(angle)·F / scale | t]`` (F: optional
    horizontal flip, a sign on the first column); also how far the linear part is from a similarity."""
    linear, shift = theta[:, :, :2], theta[:, :, 2]
    first, second = linear[:, :, 0], linear[:, :, 1]  # the flip does not touch the second column
    return {
        "angle": torch.rad2deg(torch.atan2(-second[:, 0], second[:, 1])),
        "scale": 1.0 / second.norm(dim=1),
        "flip": torch.linalg.det(linear) < 0,
        "shift": shift,
        "shear": (first * second).sum(dim=1).abs() + (first.norm(dim=1) - second.norm(dim=1)).abs(),
    }


def test_strong_rotates_within_10_degrees_scales_within_half_to_double_and_shifts_per_image(recorded_theta):
    torch.manual_seed(0)
    n, size = 800, 16
    images = torch.rand(n, 1, size, size)
    out = baseline_augment("strong", images, "digits")
    assert len(recorded_theta) == 1, "one resampling per image"
    theta, mode, result = recorded_theta[0]
    assert mode == "bilinear" and theta.shape == (n, 2, 3)
    assert out is result, "the returned batch is that one resampling with the recorded theta"
    got = _similarity(theta)
    assert float(got["shear"].max()) < 1e-5, "rotation + isotropic scale, no shear"
    angle, scale = got["angle"], got["scale"]
    assert len(torch.unique(angle)) > 0.95 * n and len(torch.unique(scale)) > 0.95 * n, "drawn per image"
    assert float(angle.abs().max()) <= 10.0 + 1e-3, f"angle up to {float(angle.abs().max()):.2f}°"
    assert float(angle.min()) < -9.0 and float(angle.max()) > 9.0, "the whole ±10° range is used"
    assert 0.5 - 1e-4 <= float(scale.min()) and float(scale.max()) <= 2.0 + 1e-4, \
        f"scale in [{float(scale.min()):.3f}, {float(scale.max()):.3f}]"
    assert float(scale.min()) < 0.55 and float(scale.max()) > 1.8, "the whole 0.5–2 range is used"
    assert 0.4 < float((scale > 1).float().mean()) < 0.6, "zoom-in and zoom-out equally likely (log-uniform)"
    pixels = got["shift"] * size / 2
    pad = _pad_pixels(size)
    assert torch.allclose(pixels, pixels.round(), atol=1e-4), "light's shift stays a whole-pixel shift"
    assert int(pixels.round().abs().max()) == pad and len(torch.unique(pixels.round(), dim=0)) == (2 * pad + 1) ** 2
    assert not bool(got["flip"].any()), "no flip on digits"
    baseline_augment("strong", images, "digits")
    assert not torch.equal(recorded_theta[1][0], theta), "a second call draws new transforms"


@pytest.mark.parametrize("dataset", DATASETS)
def test_strong_flips_half_the_images_on_cifar10_only(recorded_theta, dataset):
    torch.manual_seed(0)
    baseline_augment("strong", torch.rand(400, 3, 32, 32), dataset)
    flipped = float(_similarity(recorded_theta[0][0])["flip"].float().mean())
    if dataset == "cifar10":
        assert 0.4 < flipped < 0.6
    else:
        assert flipped == 0.0, f"{dataset}: digits and letters must not be mirrored"


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


@pytest.mark.parametrize("channels", [1, 3])
def test_trivial_applies_its_own_random_op_to_each_image_and_keeps_range_and_shape(channels):
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 32)
    image = (0.5 * ramp.view(1, 1, 32) + 0.5 * ramp.view(1, 32, 1) * torch.rand(channels, 1, 1)).clamp(0, 1)
    image[:, 8:20, 10:14] = 1.0  # a bright bar: shears, shifts and rotations move it
    image[:, 24:, :6] = 0.0
    batch = image.expand(64, channels, 32, 32).contiguous()  # 64 copies of one image
    out = augment_trivial(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    quantised = (batch * 255).round() / 255  # what the uint8 round trip alone gives
    changed = (out - quantised).flatten(1).abs().amax(dim=1) > 0.5 / 255
    assert changed.float().mean() > 0.6, "most images are transformed"
    distinct = len(torch.unique(out.flatten(1), dim=0))
    assert distinct >= 16, f"copies of one image got only {distinct} different results: one op for the batch?"
    again = augment_trivial(batch)
    assert (again != out).flatten(1).any(dim=1).float().mean() > 0.5, "a second call draws new ops"


def test_none_is_the_identity():
    images = torch.rand(4, 1, 16, 16)
    assert baseline_augment("none", images, "digits") is images
