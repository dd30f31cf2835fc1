"""Every hand-made augmentation, batched on the training device.

Each function takes a float batch ``(N, C, H, W)`` in [0, 1] (grey C=1 or colour C=3) on any device and
returns one of the same shape, dtype and device. Parameters are drawn per image from torch's global RNG on
the batch's device (``torch.manual_seed`` makes a run repeatable), but the work is batched tensor ops: the
only Python loops run over op kinds (the batch grouped by the op each image drew), never over images.

``trivial``, ``randaugment``, ``autoaugment`` and ``augmix`` re-implement torchvision's
``v2.TrivialAugmentWide``, ``v2.RandAugment``, ``v2.AutoAugment`` and ``v2.AugMix`` (same op sets,
magnitude bins and policies) with per-image draws; torchvision draws once per tensor it is given. Like
torchvision on uint8 images they work on the 0..255 grid and truncate to it after every op, so one op
with the same magnitude gives torchvision's image (tests/test_augment.py checks it). Two deliberate
differences: TrivialAugmentWide's translation (32 px, i.e. up to the whole width of a 32 px CIFAR image)
is scaled with the image width, so it equals torchvision's at 32 px and does not shift a 16 px image off
its canvas for half the bins; and AugMix draws every chain's depth per image (torchvision: per call).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .augment_ops import (
    AUGMIX_BINS,
    AUTOAUGMENT_BINS,
    OP_INDEX,
    OPS,
    RANDAUGMENT_BINS,
    TRIVIAL_BINS,
    apply_ops,
    from_uint8_grid,
    magnitude_table,
    random_signs,
    to_grid,
    to_uint8_grid,
)
from .presets import HAND_MADE

# datasets whose images are digits or similar grey shapes: AutoAugment uses the policy learned on SVHN for
# them (svhn itself included), the CIFAR-10 policy for everything else in colour
DIGIT_LIKE = frozenset({"digits", "mnist", "mnist5k", "fashion_mnist", "svhn"})
AUGMIX_WIDTH = 3  # chains per image (AugMix's and torchvision's default)
AUGMIX_ALPHA = 1.0  # Dirichlet / Beta concentration of the mixing weights
ELASTIC_SIZE = 28  # the image size at which Simard et al.'s alpha and sigma are given


@dataclass(frozen=True)
class HandMadeParams:
    """Magnitudes of the hand-made augmentations; the defaults are the literature's."""

    randaugment_ops: int = 2  # ops applied one after the other per image
    randaugment_magnitude: int = 9  # one shared bin in 0..30
    augmix_severity: int = 3  # magnitudes are drawn from the first `severity` of 10 bins (1..10)
    elastic_alpha: float = 34.0  # displacement scale in px at 28 px (Simard et al. 2003, MNIST)
    elastic_sigma: float = 4.0  # smoothing std in px at 28 px


DEFAULT_PARAMS = HandMadeParams()


# ---------------------------------------------------------------------- light and strong (pad-crop, affine)
def pad_pixels(image_size: int) -> int:
    """4 px at 32 px, as in the paper, scaled with the image size (2 px at 16 px)."""
    return max(1, round(4 * image_size / 32))


def affine_batch(images: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def light_theta(n: int, image_size: int, device: torch.device) -> torch.Tensor:
    """Zero-pad + random crop as an affine map: an integer pixel shift in [-pad, pad] per image."""
    pad = pad_pixels(image_size)
    shift = torch.randint(-pad, pad + 1, (n, 2), device=device).float() * (2.0 / image_size)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    return theta


def augment_light(images: torch.Tensor) -> torch.Tensor:
    theta = light_theta(images.shape[0], images.shape[-1], images.device)
    return affine_batch(images, theta, mode="nearest")


def augment_strong(images: torch.Tensor, flip: bool) -> torch.Tensor:
    """Light + rotation ±10° + scale 0.5–2 (+ horizontal flip), one bilinear resampling per image."""
    n, device = images.shape[0], images.device
    angle = (torch.rand(n, device=device) * 20.0 - 10.0) * (math.pi / 180.0)
    # sample the scale log-uniformly so zoom-in and zoom-out are equally likely
    scale = torch.exp(torch.empty(n, device=device).uniform_(math.log(0.5), math.log(2.0)))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = light_theta(n, images.shape[-1], device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    if flip:
        sign = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
        theta[:, :, 0] = theta[:, :, 0] * sign.unsqueeze(1)
    return affine_batch(images, theta, mode="bilinear")


# ---------------------------------------------------------------------- elastic distortion
def _gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, K, H, W) maps with a kernel summing to one, reflecting at the
    borders so the field keeps its strength there."""
    height, width = maps.shape[-2:]
    radius = max(1, min(math.ceil(3 * sigma), height - 1, width - 1))
    offsets = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = maps.shape[1]
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    columns = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="reflect"), rows, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), columns, groups=channels)


def elastic_distort(images: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """Simard et al. (2003): a random displacement field per image, uniform in [-1, 1] per pixel and axis,
    smoothed by a Gaussian of std ``sigma`` px, scaled by ``alpha`` px, applied by bilinear resampling."""
    n, _, height, width = images.shape
    field = torch.rand(n, 2, height, width, device=images.device, dtype=images.dtype) * 2.0 - 1.0
    displacement = _gaussian_smooth(field, sigma) * alpha  # (dx, dy) in pixels
    identity = torch.eye(2, 3, device=images.device, dtype=images.dtype).expand(n, 2, 3)
    grid = F.affine_grid(identity, [n, 1, height, width], align_corners=False)
    # a pixel is 2 / size wide in grid_sample's [-1, 1] coordinates
    scale = torch.tensor([2.0 / width, 2.0 / height], device=images.device, dtype=images.dtype)
    grid = grid + displacement.permute(0, 2, 3, 1) * scale
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_elastic(images: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """Light (pad-crop), then an elastic distortion with ``alpha`` and ``sigma`` given at 28 px.

    At another size s the smoothing is scaled by s/28 and alpha by (s/28)²: a unit Gaussian of std sigma
    leaves the uniform field an amplitude proportional to 1/sigma, so scaling alpha only linearly would keep
    the displacement in pixels fixed (1.4 px rms at every size) and distort a 16 px image 28/16 times as
    much, relative to its size, as Simard's MNIST. This way the displacement scales with the image."""
    size_ratio = images.shape[-1] / ELASTIC_SIZE
    return elastic_distort(augment_light(images), alpha * size_ratio**2, sigma * size_ratio)


def _draw(space: str, num_bins: int, bins: torch.Tensor | None, images: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: an op drawn uniformly from ``space`` and its signed magnitude at bin ``bins`` (a random
    bin in 0..num_bins-1 when None)."""
    n, device = images.shape[0], images.device
    ids, table, signed = magnitude_table(space, num_bins, images.shape[-2], images.shape[-1], device)
    choice = torch.randint(len(ids), (n,), device=device)
    if bins is None:
        bins = torch.randint(num_bins, (n,), device=device)
    return ids[choice], table[choice, bins] * random_signs(signed[choice])


def augment_trivial(images: torch.Tensor) -> torch.Tensor:
    """TrivialAugmentWide (Müller & Hutter 2021): per image one op of the wide set, at a random one of
    31 magnitude bins."""
    ops, magnitude = _draw("trivial", TRIVIAL_BINS, None, images)
    return from_uint8_grid(apply_ops(to_uint8_grid(images), ops, magnitude), images)


def augment_randaugment(images: torch.Tensor, num_ops: int, magnitude: int) -> torch.Tensor:
    """RandAugment (Cubuk et al. 2020): ``num_ops`` ops per image, each drawn uniformly, all at bin
    ``magnitude`` of 31."""
    grid = to_uint8_grid(images)
    bins = torch.full((images.shape[0],), magnitude, device=images.device)
    for _ in range(num_ops):
        ops, values = _draw("randaugment", RANDAUGMENT_BINS, bins, images)
        grid = apply_ops(grid, ops, values)
    return from_uint8_grid(grid, images)


# AutoAugment's learned sub-policies (Cubuk et al. 2019; torchvision's tables): two (op, probability,
# magnitude bin of 10) each
CIFAR10_POLICY = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)
SVHN_POLICY = (
    (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
    (("Equalize", 0.6, None), ("Solarize", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
    (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
    (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
    (("Invert", 0.9, None), ("AutoContrast", 0.8, None)), (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
    (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
    (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
    (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
    (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
    (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
    (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)), (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
    (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
)


def autoaugment_policy(dataset: str, channels: int) -> tuple:
    """The SVHN policy for digit-like data (DIGIT_LIKE, or any grey images), CIFAR-10's for colour."""
    return SVHN_POLICY if dataset in DIGIT_LIKE or channels == 1 else CIFAR10_POLICY


def augment_autoaugment(images: torch.Tensor, policy: tuple) -> torch.Tensor:
    """AutoAugment: per image one sub-policy drawn uniformly; each of its two ops applied with its
    probability, at its magnitude (sign drawn where signed)."""
    n, device = images.shape[0], images.device
    ids, table, signed = magnitude_table("autoaugment", AUTOAUGMENT_BINS, images.shape[-2], images.shape[-1],
                                         device)
    row_of = {OPS[int(op)]: row for row, op in enumerate(ids.tolist())}
    chosen = torch.randint(len(policy), (n,), device=device)
    grid = to_uint8_grid(images)
    for slot in range(2):
        rows = torch.tensor([row_of[sub[slot][0]] for sub in policy], device=device)[chosen]
        probability = torch.tensor([sub[slot][1] for sub in policy], device=device)[chosen]
        bins = torch.tensor([sub[slot][2] or 0 for sub in policy], device=device)[chosen]
        applied = torch.rand(n, device=device) <= probability
        ops = torch.where(applied, ids[rows], OP_INDEX["Identity"])
        grid = apply_ops(grid, ops, table[rows, bins] * random_signs(signed[rows]))
    return from_uint8_grid(grid, images)


def augment_augmix(images: torch.Tensor, severity: int, width: int = AUGMIX_WIDTH,
                   alpha: float = AUGMIX_ALPHA) -> torch.Tensor:
    """AugMix (Hendrycks et al. 2020), augmentation only (no JSD loss): per image ``width`` chains of 1-3
    random ops at one of the first ``severity`` of 10 bins (bilinear resampling), mixed with Dirichlet(alpha)
    weights, then mixed with the original by a Beta(alpha, alpha) weight."""
    n, device = images.shape[0], images.device
    original = to_uint8_grid(images)
    skip = torch.distributions.Dirichlet(torch.full((n, 2), alpha, device=device)).sample()
    weights = torch.distributions.Dirichlet(torch.full((n, width), alpha, device=device)).sample()
    weights = weights * skip[:, 1:]
    # the chains run side by side as one batch of width × n images (chain-major)
    chains = original.repeat(width, 1, 1, 1)
    depth = torch.randint(1, 4, (width * n,), device=device)
    for step in range(3):
        bins = torch.randint(severity, (width * n,), device=device)
        ops, values = _draw("augmix", AUGMIX_BINS, bins, chains)
        ops = torch.where(step < depth, ops, OP_INDEX["Identity"])
        chains = apply_ops(chains, ops, values, interpolation="bilinear")
    mixed = (chains.view(width, *original.shape) * weights.t().reshape(width, n, 1, 1, 1)).sum(0)
    mix = original * skip[:, :1].view(-1, 1, 1, 1) + mixed
    return from_uint8_grid(to_grid(mix), images)


# ---------------------------------------------------------------------- the entry point
def hand_made(name: str, images: torch.Tensor, *, dataset: str,
              params: HandMadeParams = DEFAULT_PARAMS) -> torch.Tensor:
    """Apply the hand-made augmentation ``name`` (one of HAND_MADE) to a [0, 1] batch (N, C, H, W)."""
    if name == "none":
        return images
    if name == "light":
        return augment_light(images)
    if name == "strong":
        return augment_strong(images, flip=dataset == "cifar10")
    if name == "trivial":
        return augment_trivial(images)
    if name == "randaugment":
        return augment_randaugment(images, params.randaugment_ops, params.randaugment_magnitude)
    if name == "autoaugment":
        return augment_autoaugment(images, autoaugment_policy(dataset, images.shape[1]))
    if name == "augmix":
        return augment_augmix(images, params.augmix_severity)
    if name == "elastic":
        return augment_elastic(images, params.elastic_alpha, params.elastic_sigma)
    raise ValueError(f"not a hand-made augmentation: {name!r}; choose one of {', '.join(HAND_MADE)}")
