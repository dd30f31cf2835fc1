"""The spatial transformer T(x, ENC(x, z)): regress an affine matrix from (x, z) and resample x."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownEncoder, NoiseMap, down_steps, encoder_widths

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, image_size: int, noise_dim: int, ngf: int, noise_channels: int = 8):
        super().__init__()
        widths = encoder_widths(ngf, down_steps(image_size))
        self.noise = NoiseMap(noise_dim, noise_channels)
        self.encoder = DownEncoder(channels + noise_channels, widths)
        # GAP, 32-unit hidden layer, 6 affine parameters starting at the identity transform
        self.head = nn.Sequential(nn.Linear(widths[-1], 32), nn.ReLU(inplace=True), nn.Linear(32, 6))
        nn.init.zeros_(self.head[-1].weight)
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.tensor(IDENTITY))

    def theta(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        features = self.encoder(torch.cat([x, self.noise(z, x.shape[-1])], dim=1))[-1]
        return self.head(features.mean(dim=(2, 3))).view(-1, 2, 3)

    def forward(self, x: torch.Tensor, z: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (T(x), θ). Pixels sampled from outside x take the ``background`` value (the
        normalised black), not 0, which after normalisation would be mid-grey."""
        theta = self.theta(x, z)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        moved = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + background, theta
