"""The batched hand-made augmentations of raydaug.augment: per-image draws, torchvision's ops and tables,
today's light/strong, elastic distortion, label preservation on digits, parameter validation."""
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from raydaug import augment, augment_ops
from raydaug.augment import HAND_MADE, HandMadeParams, elastic_distort, hand_made
from raydaug.augment_ops import OPS, apply_ops, magnitude_table
from raydaug.config import Config
from raydaug.errors import ConfigError
from raydaug.steps import hand_made_params

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CHANGING = ("light", "strong", "trivial", "randaugment", "autoaugment", "augmix", "elastic")
TORCHVISION = {"trivial": (v2.TrivialAugmentWide, augment_ops.TRIVIAL_BINS, "nearest"),
               "randaugment": (v2.RandAugment, augment_ops.RANDAUGMENT_BINS, "nearest"),
               "autoaugment": (v2.AutoAugment, augment_ops.AUTOAUGMENT_BINS, "nearest"),
               "augmix": (v2.AugMix, augment_ops.AUGMIX_BINS, "bilinear")}


def _digits(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 1,797 8×8 digits at ``size`` px, [0, 1], with their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, torch.from_numpy(bunch.target).long()


def _colour(n: int = 1, size: int = 32) -> torch.Tensor:
    """Smooth, asymmetric colour images in [0, 1]."""
    coarse = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(5))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def _batches():
    return {"grey16": (_digits()[0][3:4], "digits"), "colour32": (_colour(), "cifar10")}


@pytest.mark.parametrize("kind", ["grey16", "colour32"])
@pytest.mark.parametrize("name", CHANGING)
def test_each_augmentation_draws_its_parameters_per_image(name, kind, monkeypatch):
    """64 copies of one image come out as many different images; one draw per batch would give one."""
    if name == "augmix":
        # equal mixing weights, so that only the ops each image drew can tell the copies apart
        monkeypatch.setattr(torch.distributions.Dirichlet, "sample",
                            lambda self, *shape: self.mean)
    image, dataset = _batches()[kind]
    torch.manual_seed(0)
    out = hand_made(name, image.expand(64, -1, -1, -1).contiguous(), dataset=dataset)
    distinct = torch.unique((out * 1000).round().flatten(1), dim=0).shape[0]
    assert distinct >= 16, f"{name}: only {distinct} different images among 64 copies"
    changed = (out - image).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.float().mean() > 0.5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", HAND_MADE)
def test_shape_dtype_range_device_kept_and_a_seed_repeats(name, device):
    for images, dataset in (( _digits()[0][:24], "mnist5k"), (_colour(24), "cifar10")):
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        torch.manual_seed(7)
        out = hand_made(name, images, dataset=dataset)
        torch.manual_seed(7)
        again = hand_made(name, images, dataset=dataset)
        assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert torch.equal(out, again), "the same seed must give the same images"
        if name != "none":
            torch.manual_seed(8)
            assert not torch.equal(out, hand_made(name, images, dataset=dataset))


def _torchvision_op(image: torch.Tensor, name: str, magnitude: float, interpolation: str) -> torch.Tensor:
    """torchvision's v2 functional op for one uint8 image, with the arguments its auto-augment classes pass."""
    mode = InterpolationMode(interpolation)
    if name == "Identity":
        return image
    if name in ("ShearX", "ShearY"):
        degrees = math.degrees(math.atan(magnitude))
        shear = [degrees, 0.0] if name == "ShearX" else [0.0, degrees]
        return TF.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=mode,
                         center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        shift = [int(magnitude), 0] if name == "TranslateX" else [0, int(magnitude)]
        return TF.affine(image, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], interpolation=mode)
    if name == "Rotate":
        return TF.rotate(image, angle=magnitude, interpolation=mode)
    factor = 1.0 + magnitude
    colour = {"Brightness": lambda: TF.adjust_brightness(image, factor),
              "Color": lambda: TF.adjust_saturation(image, factor),
              "Contrast": lambda: TF.adjust_contrast(image, factor),
              "Sharpness": lambda: TF.adjust_sharpness(image, factor),
              "Posterize": lambda: TF.posterize(image, int(magnitude)),
              "Solarize": lambda: TF.solarize(image, 255.0 * magnitude),
              "AutoContrast": lambda: TF.autocontrast(image),
              "Equalize": lambda: TF.equalize(image),
              "Invert": lambda: TF.invert(image)}
    return colour[name]()


@pytest.mark.parametrize("kind", ["grey16", "colour32"])
@pytest.mark.parametrize("space", list(TORCHVISION))
def test_batched_ops_are_torchvisions_ops(space, kind):
    """Every op of the space at a few magnitudes, both signs, forced on a batch: the batched result equals
    torchvision's functional op applied image by image."""
    _, num_bins, interpolation = TORCHVISION[space]
    images = _digits()[0][:4] if kind == "grey16" else _colour(4)
    grid = (images * 255).round()
    height, width = images.shape[-2:]
    ids, table, signed = magnitude_table(space, num_bins, height, width)
    for row, op in enumerate(ids.tolist()):
        name = OPS[op]
        for index in (1, num_bins // 2, num_bins - 1):
            for sign in (1.0, -1.0) if bool(signed[row]) else (1.0,):
                magnitude = float(table[row, index]) * sign
                ours = apply_ops(grid, torch.full((4,), op), torch.full((4,), magnitude, dtype=torch.float64),
                                 interpolation=interpolation)
                theirs = torch.stack([_torchvision_op(image.to(torch.uint8), name, magnitude, interpolation)
                                      for image in grid]).float()
                difference = (ours - theirs).abs()
                where = f"{space} {name} magnitude {magnitude:.4g}"
                if name in augment_ops.GEOMETRIC:  # a rounding tie may resolve differently at a few pixels
                    assert (difference > 0).float().mean() <= 0.02, where
                else:
                    assert float(difference.max()) <= 1.0, where


@pytest.mark.parametrize("space", list(TORCHVISION))
def test_op_sets_and_magnitude_tables_are_torchvisions(space):
    """At 32 px (TrivialAugmentWide's translation is scaled with the size elsewhere, see raydaug.augment)."""
    cls, num_bins, _ = TORCHVISION[space]
    reference = cls._AUGMENTATION_SPACE
    ids, table, signed = magnitude_table(space, num_bins, 32, 32)
    assert [OPS[op] for op in ids.tolist()] == list(reference)
    for row, (name, (magnitudes, is_signed)) in enumerate(reference.items()):
        expected = magnitudes(num_bins, 32, 32)
        assert bool(signed[row]) == is_signed, name
        if expected is not None:
            assert torch.equal(table[row], expected.double()), name


def test_autoaugment_uses_the_svhn_policy_on_digit_data_and_cifar10s_on_colour():
    assert augment.autoaugment_policy("digits", 1) is augment.SVHN_POLICY
    assert augment.autoaugment_policy("fashion_mnist", 1) is augment.SVHN_POLICY
    assert augment.autoaugment_policy("folder", 1) is augment.SVHN_POLICY
    assert augment.autoaugment_policy("cifar10", 3) is augment.CIFAR10_POLICY
    assert augment.autoaugment_policy("folder", 3) is augment.CIFAR10_POLICY
    for policy, ours in ((v2.AutoAugmentPolicy.SVHN, augment.SVHN_POLICY),
                         (v2.AutoAugmentPolicy.CIFAR10, augment.CIFAR10_POLICY)):
        assert [tuple(sub) for sub in v2.AutoAugment(policy)._policies] == list(ours)


def _rms_displacement(out: torch.Tensor, ramp: torch.Tensor) -> float:
    """RMS horizontal displacement in pixels, read off a horizontal ramp (away from the zero border)."""
    size = ramp.shape[-1]
    inner = slice(size // 4, size - size // 4)
    return float(((out - ramp)[..., inner, inner] * (size - 1)).pow(2).mean().sqrt())


def _ramp(size: int, n: int = 64) -> torch.Tensor:
    return torch.linspace(0, 1, size).expand(n, 1, size, size).contiguous()


def test_elastic_distortion_with_zero_alpha_is_the_identity():
    images = _digits()[0][:16]
    assert torch.allclose(elastic_distort(images, 0.0, 4.0), images, atol=1e-5)


def test_elastic_displacement_grows_in_proportion_to_alpha():
    ramp = _ramp(28)
    rms = []
    for alpha in (2.0, 4.0, 8.0):
        torch.manual_seed(0)
        rms.append(_rms_displacement(elastic_distort(ramp, alpha, 4.0), ramp))
    assert 0 < rms[0] < rms[1] < rms[2]
    assert 1.8 < rms[1] / rms[0] < 2.2 and 1.8 < rms[2] / rms[1] < 2.2


def test_elastic_distortion_scales_with_the_image_size(monkeypatch):
    """Simard's alpha=34, sigma=4 at 28 px: at 16 and 32 px the displacement, relative to the size, is the
    same (about 1.4 px rms at 28 px)."""
    monkeypatch.setattr(augment, "augment_light", lambda images: images)  # the pad-crop shift aside
    relative = {}
    for size in (16, 28, 32):
        torch.manual_seed(0)
        ramp = _ramp(size)
        relative[size] = _rms_displacement(augment.augment_elastic(ramp, 34.0, 4.0), ramp) / size
    assert 1.0 < relative[28] * 28 < 2.0
    assert 0.8 < relative[16] / relative[28] < 1.25 and 0.8 < relative[32] / relative[28] < 1.25


@pytest.fixture(scope="module")
def digit_reader():
    """A small classifier trained in seconds on 1,200 sklearn digits at 16 px, on clean, shifted, mildly
    rotated/scaled and polarity-inverted images (all of which keep a digit's label), with its test set."""
    from raydaug.nets import build_classifier

    images, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train, test = order[:1200], order[1200:]
    torch.manual_seed(0)
    net = build_classifier("small", 1, 10, 16)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for step in range(200):
        batch = train[torch.randint(len(train), (32,))]
        x = images[batch]
        x = (x, augment.augment_light(x), augment.augment_strong(x, flip=False), 1.0 - x)[step % 4]
        loss = F.cross_entropy(net((x - 0.5) / 0.5), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()

    def accuracy(x: torch.Tensor) -> float:
        with torch.no_grad():
            return float((net((x - 0.5) / 0.5).argmax(1) == labels[test]).float().mean())

    return accuracy, images[test]


@pytest.mark.parametrize("name", HAND_MADE)
def test_each_augmentation_keeps_the_meaning_of_digit_labels(name, digit_reader):
    accuracy, images = digit_reader
    clean = accuracy(images)
    assert clean > 0.85
    torch.manual_seed(0)
    augmented = accuracy(hand_made(name, images, dataset="digits"))
    assert augmented >= 0.6 * clean, f"{name}: {augmented:.3f} against {clean:.3f} on clean digits"


@pytest.mark.parametrize("key, value", [("randaugment_ops", 0), ("randaugment_ops", 11), ("randaugment_ops", True),
                                        ("randaugment_magnitude", 31), ("randaugment_magnitude", 2.5),
                                        ("augmix_severity", 0), ("augmix_severity", 11),
                                        ("elastic_alpha", -1.0), ("elastic_alpha", float("nan")),
                                        ("elastic_sigma", 0.0)])
def test_a_bad_magnitude_is_refused_by_the_config_naming_its_key(key, value):
    with pytest.raises(ConfigError, match=f"{key}"):
        Config.from_dict({key: value})
    assert hand_made_params(Config()) == HandMadeParams()  # the config's defaults are the literature's


def test_an_unknown_name_lists_the_hand_made_augmentations():
    with pytest.raises(ValueError) as error:
        hand_made("cutout", torch.zeros(2, 1, 8, 8), dataset="digits")
    assert all(name in str(error.value) for name in HAND_MADE)
