"""The spatial transformer T(x, ENC(x, z)): regress an affine matrix from (x, z) and resample x."""
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
                 noise_channels: int = 8):
        super().__init__()
        widths = encoder_widths(ngf, down_steps(image_size))
        self.bound = bound
        self.noise = NoiseMap(noise_dim, noise_channels)
        self.encoder = DownEncoder(channels + noise_channels, widths)
        # GAP, 32-unit hidden layer, 6 affine offsets from the identity, all zero at initialisation
        self.head = nn.Sequential(nn.Linear(widths[-1], 32), nn.ReLU(inplace=True), nn.Linear(32, 6))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("identity", torch.tensor(IDENTITY).view(1, 2, 3))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Weights saved before θ was written as I + offset (no ``identity`` buffer; the head's last bias held
        θ itself, unbounded) load as the same θ: the identity moves from that bias into the buffer. This is
        torch's own hook for a module's state-dict format changes (BatchNorm uses it the same way)."""
        bias = f"{prefix}head.2.bias"
        if f"{prefix}identity" not in state_dict and bias in state_dict:
            state_dict[bias] = state_dict[bias] - torch.tensor(IDENTITY, dtype=state_dict[bias].dtype)
            state_dict[f"{prefix}identity"] = torch.tensor(IDENTITY).view(1, 2, 3)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def theta(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """θ = I + offset, each offset entry bounded to ±``bound`` (when > 0)."""
        features = self.encoder(torch.cat([x, self.noise(z, x.shape[-1])], dim=1))[-1]
        offset = self.head(features.mean(dim=(2, 3))).view(-1, 2, 3)
        return self.identity + bounded(offset, self.bound)

    def forward(self, x: torch.Tensor, z: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (T(x), θ). Pixels sampled from outside x take the ``background`` value (the
        normalised black), not 0, which after normalisation would be mid-grey."""
        theta = self.theta(x, z)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        moved = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + background, theta
