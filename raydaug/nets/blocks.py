"""Building blocks shared by every player: one definition each."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
         wn: bool = False) -> nn.Module:
    layer = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2 if padding is None else padding)
    return weight_norm(layer) if wn else layer


def down_steps(image_size: int, floor: int = 4) -> int:
    """How many stride-2 halvings take ``image_size`` down to ``floor`` pixels."""
    steps = 0
    while image_size > floor:
        image_size //= 2
        steps += 1
    return steps


def _small_stack(in_ch: int, out_features: int, image_size: int, batchnorm: bool) -> nn.Sequential:
    """conv32-conv32-pool-conv64-conv64-pool-fc128 (the reference-facts protocol's small CNN)."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
        layers.append(nn.BatchNorm2d(cout) if batchnorm else nn.Identity())
        layers.append(nn.ReLU(inplace=True) if batchnorm else nn.LeakyReLU(0.2, inplace=True))
        return layers

    side = image_size // 4
    return nn.Sequential(
        *block(in_ch, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * side * side, 128),
        nn.ReLU(inplace=True) if batchnorm else nn.LeakyReLU(0.2, inplace=True),
        nn.Dropout(0.5), nn.Linear(128, out_features),
    )


def _badgan_stack(in_ch: int, out_features: int) -> nn.Sequential:
    """The weight-normalised conv stack of Salimans et al./Dai et al. ('bad GAN'), used by the authors
    for C, DC and DD: 96,96,96/2, dropout, 192,192,192/2, dropout, 192 3x3, 192 1x1, 192 1x1, GAP, linear."""
    act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
    return nn.Sequential(
        conv(in_ch, 96, wn=True), act(), conv(96, 96, wn=True), act(), conv(96, 96, 3, 2, wn=True), act(),
        nn.Dropout(0.5),
        conv(96, 192, wn=True), act(), conv(192, 192, wn=True), act(), conv(192, 192, 3, 2, wn=True), act(),
        nn.Dropout(0.5),
        conv(192, 192, 3, padding=0, wn=True), act(), conv(192, 192, 1, wn=True), act(),
        conv(192, 192, 1, wn=True), act(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), weight_norm(nn.Linear(192, out_features)),
    )


def conv_stack(family: str, in_ch: int, out_features: int, image_size: int, batchnorm: bool) -> nn.Sequential:
    """The one image→vector network behind C, DC and DD (``family`` = small | badgan)."""
    if family == "small":
        return _small_stack(in_ch, out_features, image_size, batchnorm)
    if family == "badgan":
        return _badgan_stack(in_ch, out_features)
    raise ValueError(f"unknown network family {family!r}")


class NoiseMap(nn.Module):
    """z (B, noise_dim) → a (B, channels, 4, 4) map by a transposed convolution, upsampled on demand."""

    def __init__(self, noise_dim: int, channels: int):
        super().__init__()
        self.project = nn.ConvTranspose2d(noise_dim, channels, kernel_size=4)

    def forward(self, z: torch.Tensor, size: int) -> torch.Tensor:
        base = self.project(z[:, :, None, None])
        if size == base.shape[-1]:
            return base
        return nn.functional.interpolate(base, size=(size, size), mode="nearest")


def encoder_widths(ngf: int, levels: int) -> list[int]:
    """Channel width per resolution level: ngf, 2ngf, ... capped at 16·ngf (64 → 1024 in the paper)."""
    return [ngf * min(2 ** level, 16) for level in range(levels + 1)]


class DownEncoder(nn.Module):
    """Input conv then stride-2 convs down to 4×4; returns the feature map at every level."""

    def __init__(self, in_ch: int, widths: list[int]):
        super().__init__()
        self.stem = nn.Sequential(conv(in_ch, widths[0]), nn.LeakyReLU(0.2, inplace=True))
        self.downs = nn.ModuleList(
            nn.Sequential(conv(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))
            for cin, cout in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features
