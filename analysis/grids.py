"""Fig. 5: sample grids from a checkpoint — each row an input x then G(x, z) for several z.

G is rebuilt the way training built it: a :class:`raydaug.train.Trainer` from the checkpoint's own
config, then ``load_payload``. The data split comes from that config, so the grid shows the same
training images the trial saw.
"""
from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from raydaug.checkpoint import load_checkpoint
from raydaug.config import Config
from raydaug.errors import NoGeneratorError


def render_samples(checkpoint: str | Path, count: int = 8, num_z: int = 5,
                   seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """The (C, H, W) grid in [0, 1] — ``count`` rows of x then G(x, z_1..z_num_z) — and each row's class name."""
    from raydaug.logging.tensorboard import sample_grid
    from raydaug.state import checkpoint_file
    from raydaug.train import Trainer

    payload = load_checkpoint(checkpoint_file(str(checkpoint)), map_location="cpu")
    if "g" not in payload["nets"]:
        raise NoGeneratorError(f"{checkpoint} holds no generator (aug={payload['config'].get('aug')})")
    config = Config.from_logged(payload["config"], device="cpu")
    trainer = Trainer(config, device=torch.device("cpu"))
    trainer.load_payload(payload)
    generator = trainer.state.nets["g"].eval()
    x = trainer.eval_x[:count]
    noise = torch.Generator(device="cpu").manual_seed(seed)
    with torch.inference_mode():
        fakes = [trainer.splits.denormalize(
            generator(x, torch.randn(x.shape[0], config.noise_dim, generator=noise) * config.noise_std,
                      trainer.eval_y[:count]))
            for _ in range(num_z)]
    names = trainer.splits.class_names
    labels = [names[int(y)] if names else str(int(y)) for y in trainer.eval_y[:count]]
    return sample_grid(trainer.splits.denormalize(x), fakes), labels


def write_grid_png(grid: torch.Tensor, path: Path, title: str, row_labels: list[str] = ()) -> Path:
    """Save a grid as PNG with nearest-neighbour upscaling so 16-px digits stay legible; ``row_labels`` (the
    class of each row) are written at the left of the rows."""
    image = grid.permute(1, 2, 0).clamp(0, 1).numpy()
    if image.shape[2] == 1:
        image = image[:, :, 0]
    height, width = image.shape[:2]
    scale = max(1.0, 360.0 / max(height, width))
    figure = Figure(figsize=(width * scale / 100 + 0.2, height * scale / 100 + 0.5), dpi=100)
    FigureCanvasAgg(figure)
    left = 0.12 if row_labels else 0.02  # room for the class names
    axis = figure.add_axes((left, 0.02, 0.98 - left, 0.86))
    axis.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest", vmin=0, vmax=1)
    axis.set_axis_off()
    for row, label in enumerate(row_labels):
        axis.text(-0.5, (row + 0.5) * height / len(row_labels), label, ha="right", va="center", fontsize=6)
    figure.suptitle(title, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def sample_grid_png(checkpoint: str | Path, path: Path, title: str, count: int = 8, num_z: int = 5) -> Path:
    grid, labels = render_samples(checkpoint, count, num_z)
    return write_grid_png(grid, path, f"{title}: x | G(x, z) for {num_z} z", labels)
