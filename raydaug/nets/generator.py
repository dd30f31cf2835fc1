"""G(x, z) = DEC(ENC(T(x, ENC(x, z)), z)): spatial transformer, then a z-conditioned U-Net."""
from __future__ import annotations

import torch
from torch import nn

from .stn import SpatialTransformer
from .unet import UNet


class Generator(nn.Module):
    def __init__(self, channels: int, image_size: int, noise_dim: int, ngf: int,
                 use_stn: bool, use_enc: bool, use_dec: bool, background: torch.Tensor,
                 stn_bound: float = 0.0, res_bound: float = 0.0):
        super().__init__()
        self.noise_dim = noise_dim
        self.stn = SpatialTransformer(channels, image_size, noise_dim, ngf, stn_bound) if use_stn else None
        self.unet = UNet(channels, image_size, noise_dim, ngf, use_enc, res_bound) if use_dec else None
        self.register_buffer("background", background.reshape(1, channels, 1, 1).clone())

    def transform(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (G(x, z), θ of the STN or None)."""
        theta = None
        if self.stn is not None:
            x, theta = self.stn(x, z, self.background)
        if self.unet is not None:
            x = self.unet(x, z)
        return x, theta

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.transform(x, z)[0]


def build_generator(config, channels: int, background: torch.Tensor) -> Generator:
    return Generator(channels, config.image_size, config.noise_dim, config.ngf, config.use_stn,
                     config.use_enc, config.use_dec, background, config.stn_bound, config.res_bound)
