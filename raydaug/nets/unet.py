"""U-Net encoder/decoder conditioned on z, predicting a residual over its input image (each pixel's change
bounded to ±``bound`` in normalised units when ``bound`` > 0).

With ``use_enc`` the decoder gets the encoder's bottleneck and skip connections; without it (Table 3
row d, 'DEC from noise or a small code') it starts from a 4×4 average-pooled code of the image and z.
z enters at every decoder level (a 4×4 noise map, upsampled), so skips cannot bypass the noise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownEncoder, NoiseMap, conv, down_steps, encoder_widths
from .stn import bounded


class UNet(nn.Module):
    def __init__(self, channels: int, image_size: int, noise_dim: int, ngf: int, use_enc: bool,
                 bound: float = 0.0, noise_channels: int = 8):
        super().__init__()
        self.bound = bound
        levels = down_steps(image_size)
        widths = encoder_widths(ngf, levels)
        self.encoder = DownEncoder(channels, widths) if use_enc else None
        self.noise = NoiseMap(noise_dim, noise_channels)
        bottom_in = (widths[-1] if use_enc else channels) + noise_channels
        self.bottom = nn.Sequential(conv(bottom_in, widths[-1]), nn.LeakyReLU(0.2, inplace=True))
        self.ups = nn.ModuleList()
        self.merges = nn.ModuleList()
        for cin, cout in zip(widths[:0:-1], widths[-2::-1]):
            self.ups.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)))
            merge_in = cout * (2 if use_enc else 1) + noise_channels
            self.merges.append(nn.Sequential(conv(merge_in, cout), nn.LeakyReLU(0.2, inplace=True)))
        self.out = conv(widths[0], channels)
        nn.init.zeros_(self.out.weight)  # start as the identity: G(x) = T(x)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            skips = self.encoder(x)
            h = skips[-1]
        else:
            skips = None
            h = F.adaptive_avg_pool2d(x, 4)
        h = self.bottom(torch.cat([h, self.noise(z, h.shape[-1])], dim=1))
        for level, (up, merge) in enumerate(zip(self.ups, self.merges)):
            h = up(h)
            parts = [h] if skips is None else [h, skips[-2 - level]]
            parts.append(self.noise(z, h.shape[-1]))
            h = merge(torch.cat(parts, dim=1))
        return x + bounded(self.out(h), self.bound)
