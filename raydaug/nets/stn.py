"""The spatial transformer T(x, ENC(x, z)): regress an affine matrix from (x, z) and resample x; with
``warp_bound`` > 0 also a smooth displacement field (a 4×4 grid of offsets, bounded, interpolated bilinearly)
added to the affine sampling grid, so G can learn elastic deformations as well as affine ones."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownEncoder, NoiseMap, down_steps, encoder_widths

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def bounded(offset: torch.Tensor, bound: float) -> torch.Tensor:
    """``bound·tanh(offset)`` (each entry within ±bound, the identity map near 0); unbounded for 0."""
    return offset if bound == 0 else bound * torch.tanh(offset)


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, image_size: int, noise_dim: int, ngf: int, bound: float = 0.0,
                 noise_channels: int = 8, warp_bound: float = 0.0):
        super().__init__()
        widths = encoder_widths(ngf, down_steps(image_size))
        self.bound = bound
        self.warp_bound = warp_bound
        self.noise = NoiseMap(noise_dim, noise_channels)
        self.encoder = DownEncoder(channels + noise_channels, widths)
        # GAP, 32-unit hidden layer, 6 affine offsets from the identity, all zero at initialisation
        self.head = nn.Sequential(nn.Linear(widths[-1], 32), nn.ReLU(inplace=True), nn.Linear(32, 6))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("identity", torch.tensor(IDENTITY).view(1, 2, 3))
        # the displacement field: 2 offsets (x, y, in normalised coordinates) at each cell of the 4×4
        # bottleneck, zero at initialisation (no warp)
        self.warp = nn.Conv2d(widths[-1], 2, 3, padding=1) if warp_bound > 0 else None
        if self.warp is not None:
            nn.init.zeros_(self.warp.weight)
            nn.init.zeros_(self.warp.bias)

    def sampling(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(θ, the warp's displacement field or None): θ = I + offset, each offset entry bounded to ±``bound``
        (when > 0); the field (B, H, W, 2) in normalised coordinates, ±``warp_bound`` at the 4×4 control
        points (``warp_bound`` = 0.125 is one pixel at 16 px), interpolated linearly between them, so no
        offset passes the bound."""
        features = self.encoder(torch.cat([x, self.noise(z, x.shape[-1])], dim=1))[-1]
        offset = self.head(features.mean(dim=(2, 3))).view(-1, 2, 3)
        theta = self.identity + bounded(offset, self.bound)
        if self.warp is None:
            return theta, None
        control = self.warp_bound * torch.tanh(self.warp(features))
        field = F.interpolate(control, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=True)
        return theta, field.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (T(x), θ). Pixels sampled from outside x take the ``background`` value (the
        normalised black), not 0, which after normalisation would be mid-grey."""
        theta, field = self.sampling(x, z)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if field is not None:
            grid = grid + field
        moved = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + background, theta
