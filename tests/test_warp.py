"""The STN's learned displacement field (``warp_bound``): identity at initialisation, bounded, in the units
the docs give, one field per image and per noise, non-affine, and reported by ``aug/warp_px``."""
import pytest
import torch

from raydaug.config import ConfigError
from raydaug.steps import augmentation_health
from raydaug.train import Trainer
from tests.helpers import tiny


def _generator(warp_bound: float):
    trainer = Trainer(tiny(warp_bound=warp_bound))
    return trainer, trainer.state.nets["g"]


def test_warp_starts_at_the_identity():
    trainer, generator = _generator(0.25)
    x, z = trainer.eval_x, trainer.eval_z[0]
    with torch.no_grad():
        out, _ = generator.transform(x, z)
        _, field = generator.stn.sampling(x, z)
    assert torch.equal(field, torch.zeros_like(field))
    assert torch.allclose(out, x, atol=1e-5)


def test_warp_bound_is_one_pixel_at_two_over_the_size_and_moves_the_image_by_it():
    """A field saturated at +warp_bound in x and 0 in y, with warp_bound = 2/size, samples each output pixel
    from the pixel one to its right: the image moves one pixel left (the last column from the background)."""
    trainer, generator = _generator(2.0 / 16)
    x, z = trainer.eval_x, trainer.eval_z[0]
    with torch.no_grad():
        generator.stn.warp.bias.copy_(torch.tensor([50.0, 0.0]))  # tanh → 1 in x, 0 in y
        moved, _ = generator.transform(x, z)
        health = augmentation_health(trainer.state, x, trainer.eval_y, z, trainer.eval_z[1])
    assert torch.allclose(moved[..., :-1], x[..., 1:], atol=1e-5)
    assert torch.allclose(moved[..., -1], generator.background[..., 0].expand_as(moved[..., -1]), atol=1e-5)
    assert health["aug/warp_px"].item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("warp_bound", [0.05, 0.3])
def test_warp_holds_its_bound_and_is_one_non_affine_field_per_image_and_noise(warp_bound):
    trainer, generator = _generator(warp_bound)
    x, z = trainer.eval_x, trainer.eval_z[0]
    with torch.no_grad():
        for param in generator.stn.parameters():
            param.add_(torch.randn_like(param) * 5.0)
        _, field = generator.stn.sampling(x, z)
        _, other_noise = generator.stn.sampling(x, trainer.eval_z[1])
    assert field.abs().max() <= warp_bound + 1e-6 and field.abs().max() > 0.5 * warp_bound  # used, never passed
    assert not torch.allclose(field[0], field[1]), "one field per image, not one shared by the batch"
    assert not torch.allclose(field, other_noise), "the field depends on z"
    # not an affine map of the pixel coordinates: a least-squares affine fit leaves a residual
    size = field.shape[1]
    ys, xs = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    design = torch.stack([xs.flatten(), ys.flatten(), torch.ones(size * size)], dim=1)
    target = field[0].reshape(-1, 2)
    solution = torch.linalg.lstsq(design, target).solution
    assert (design @ solution - target).abs().max() > 0.05 * warp_bound


def test_without_warp_there_is_no_field_and_no_warp_metric():
    trainer, generator = _generator(0.0)
    x, z = trainer.eval_x, trainer.eval_z[0]
    with torch.no_grad():
        _, field = generator.stn.sampling(x, z)
        health = augmentation_health(trainer.state, x, trainer.eval_y, z, trainer.eval_z[1])
    assert field is None and generator.stn.warp is None and "aug/warp_px" not in health


@pytest.mark.parametrize("values, fragment", [
    ({"warp_bound": -0.1}, "warp_bound=-0.1 is out of range"),
    ({"warp_bound": float("nan")}, "warp_bound=nan is out of range"),
    ({"warp_bound": 0.1, "use_stn": False}, "warp_bound=0.1 needs use_stn=true"),
])
def test_warp_bound_rejects_bad_values(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        tiny(**values)
