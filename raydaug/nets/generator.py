"""G(x, z) = DEC(ENC(T(x, ENC(x, z)), z)): spatial transformer, then a z-conditioned U-Net.

With ``num_classes`` (config ``g_class_cond``) G is class-conditional: G(x, z, y) sees z + e(y), a learned
vector per class added to the noise before both the STN and the U-Net. Adding rather than concatenating
keeps every layer of the unconditional G (same shapes, same initialisation), and it reads simply: each
class gets its own mean of G's noise, so its own region of the transformations G has learned to make.
e starts at zero, so a class-conditional G starts as exactly the unconditional one.
"""
from __future__ import annotations

import torch
from torch import nn

from .stn import SpatialTransformer
from .unet import UNet


class Generator(nn.Module):
    def __init__(self, channels: int, image_size: int, noise_dim: int, ngf: int,
                 use_stn: bool, use_enc: bool, use_dec: bool, background: torch.Tensor,
                 stn_bound: float = 0.0, res_bound: float = 0.0, num_classes: int | None = None):
        super().__init__()
        self.noise_dim = noise_dim
        self.stn = SpatialTransformer(channels, image_size, noise_dim, ngf, stn_bound) if use_stn else None
        self.unet = UNet(channels, image_size, noise_dim, ngf, use_enc, res_bound) if use_dec else None
        self.register_buffer("background", background.reshape(1, channels, 1, 1).clone())
        # built last and from zeros: it draws no random numbers, so every other weight of the run is initialised
        # as without it
        self.class_embedding = (nn.Embedding.from_pretrained(torch.zeros(num_classes, noise_dim), freeze=False)
                                if num_classes is not None else None)

    def _code(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """What the STN and the U-Net are conditioned on: z, plus e(y) when class-conditional."""
        if self.class_embedding is None:
            return z
        if y is None:
            raise TypeError("this generator is class-conditional (g_class_cond=true): call it as G(x, z, y)")
        return z + self.class_embedding(y)

    def transform(self, x: torch.Tensor, z: torch.Tensor,
                  y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (G(x, z, y), θ of the STN or None). ``y`` (class indices) is ignored by an unconditional G."""
        z = self._code(z, y)
        theta = None
        if self.stn is not None:
            x, theta = self.stn(x, z, self.background)
        if self.unet is not None:
            x = self.unet(x, z)
        return x, theta

    def forward(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.transform(x, z, y)[0]


def build_generator(config, channels: int, background: torch.Tensor, num_classes: int | None = None) -> Generator:
    """G of ``config``; ``num_classes`` is needed (and used) only with ``g_class_cond``."""
    if config.g_class_cond and num_classes is None:
        raise TypeError("g_class_cond=true needs the number of classes to build the generator")
    return Generator(channels, config.image_size, config.noise_dim, config.ngf, config.use_stn,
                     config.use_enc, config.use_dec, background, config.stn_bound, config.res_bound,
                     num_classes if config.g_class_cond else None)
