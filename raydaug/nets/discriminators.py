"""DC(image, label): is this a real image of class y?  DD(x_i, x_j): a real same-class pair, or (x, G(x))?

Both are the shared conv stack with a wider input (label planes or a second image) and one logit out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv_stack


class ClassDiscriminator(nn.Module):
    def __init__(self, family: str, channels: int, num_classes: int, image_size: int):
        super().__init__()
        self.num_classes = num_classes
        self.net = conv_stack(family, channels + num_classes, 1, image_size, batchnorm=False)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(labels, self.num_classes).to(images.dtype)
        planes = onehot[:, :, None, None].expand(-1, -1, images.shape[2], images.shape[3])
        return self.net(torch.cat([images, planes], dim=1)).squeeze(1)


class PairDiscriminator(nn.Module):
    def __init__(self, family: str, channels: int, image_size: int):
        super().__init__()
        self.net = conv_stack(family, 2 * channels, 1, image_size, batchnorm=False)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([first, second], dim=1)).squeeze(1)


def build_discriminators(family: str, channels: int, num_classes: int, image_size: int,
                         use_dc: bool, use_dd: bool) -> tuple[ClassDiscriminator | None, PairDiscriminator | None]:
    dc = ClassDiscriminator(family, channels, num_classes, image_size) if use_dc else None
    dd = PairDiscriminator(family, channels, image_size) if use_dd else None
    return dc, dd
