"""TensorBoard scalars for every metric and an image grid of x beside G(x, z) for several z."""
from __future__ import annotations

import importlib.util
import math
import shlex

import torch
from tensorboardX import SummaryWriter
from torchvision.utils import make_grid


def sample_grid(real: torch.Tensor, fakes: list[torch.Tensor]) -> torch.Tensor:
    """Rows: one input image then its transforms for each z. Inputs in [0, 1], (N, C, H, W)."""
    columns = torch.stack([real, *fakes], dim=1)  # (N, 1 + K, C, H, W)
    return make_grid(columns.flatten(0, 1).clamp(0, 1), nrow=columns.shape[1], padding=1, pad_value=1.0)


class TensorBoardSink:
    def __init__(self, log_dir: str):
        self.writer = SummaryWriter(log_dir)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(name, value, step)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        self.writer.add_image(tag, grid.cpu(), step)

    def close(self) -> None:
        self.writer.close()


def viewer_command(logdir: str) -> str:
    """The command that shows ``logdir`` in TensorBoard. raydaug writes event files with tensorboardX and
    does not depend on TensorBoard itself: when it is missing, say how to install it."""
    command = f"tensorboard --logdir {shlex.quote(logdir)}"
    if importlib.util.find_spec("tensorboard") is None:
        command += " (TensorBoard is not installed: pip install 'raydaug[tensorboard]')"
    return command
