"""The classifier C (``classifier=small|badgan``)."""
from __future__ import annotations

from torch import nn

from .blocks import conv_stack


def build_classifier(family: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    return conv_stack(family, channels, num_classes, image_size, batchnorm=True)
