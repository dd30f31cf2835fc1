"""The auto-augment op family, batched: the ops TrivialAugmentWide, RandAugment, AutoAugment and AugMix draw
from (torchvision's op sets and magnitude tables), applied to a batch with a per-image op and magnitude.

The ops work on float images holding uint8 values (0..255) and truncate to that grid after every op, as
torchvision does on uint8 images; :func:`apply_ops` groups the batch by op, never loops over images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert")
OP_INDEX = {name: index for index, name in enumerate(OPS)}
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
TRIVIAL_BINS = RANDAUGMENT_BINS = 31
AUTOAUGMENT_BINS = AUGMIX_BINS = 10

# A space maps each op to how its magnitude runs over the bins (torchvision's tables):
#   ("linear", top, signed): from 0 up to ``top`` (a number, or "width"/"height" times a factor);
#   ("bits", start, drop): posterize bits round(start - drop * bin / (bins - 1));
#   ("threshold",): solarize threshold from 1 down to 0;  ("none",): no magnitude.
_RANDAUGMENT = {
    "Identity": ("none",),
    "ShearX": ("linear", 0.3, True), "ShearY": ("linear", 0.3, True),
    "TranslateX": ("linear", ("width", 150.0 / 331.0), True),
    "TranslateY": ("linear", ("height", 150.0 / 331.0), True),
    "Rotate": ("linear", 30.0, True),
    "Brightness": ("linear", 0.9, True), "Color": ("linear", 0.9, True), "Contrast": ("linear", 0.9, True),
    "Sharpness": ("linear", 0.9, True),
    "Posterize": ("bits", 8, 4), "Solarize": ("threshold",), "AutoContrast": ("none",), "Equalize": ("none",),
}
SPACES: dict[str, tuple[tuple[str, ...], dict[str, tuple]]] = {}


def _space(name: str, table: dict[str, tuple]) -> None:
    SPACES[name] = (tuple(table), table)


_space("trivial", {
    "Identity": ("none",),
    "ShearX": ("linear", 0.99, True), "ShearY": ("linear", 0.99, True),
    # torchvision: 32 px whatever the size; here 32 px at 32 px, scaled with the size (module docstring)
    "TranslateX": ("linear", ("width", 1.0), True), "TranslateY": ("linear", ("height", 1.0), True),
    "Rotate": ("linear", 135.0, True),
    "Brightness": ("linear", 0.99, True), "Color": ("linear", 0.99, True), "Contrast": ("linear", 0.99, True),
    "Sharpness": ("linear", 0.99, True),
    "Posterize": ("bits", 8, 6), "Solarize": ("threshold",), "AutoContrast": ("none",), "Equalize": ("none",),
})
_space("randaugment", _RANDAUGMENT)
_space("autoaugment", {**{op: kind for op, kind in _RANDAUGMENT.items() if op != "Identity"}, "Invert": ("none",)})
_space("augmix", {
    "ShearX": ("linear", 0.3, True), "ShearY": ("linear", 0.3, True),
    "TranslateX": ("linear", ("width", 1.0 / 3.0), True), "TranslateY": ("linear", ("height", 1.0 / 3.0), True),
    "Rotate": ("linear", 30.0, True),
    "Posterize": ("bits", 4, 4), "Solarize": ("threshold",), "AutoContrast": ("none",), "Equalize": ("none",),
    # torchvision's default all_ops=True adds the colour ops that the AugMix paper leaves out because they
    # overlap ImageNet-C's corruptions; we follow torchvision (no corruption benchmark here)
    "Brightness": ("linear", 0.9, True), "Color": ("linear", 0.9, True), "Contrast": ("linear", 0.9, True),
    "Sharpness": ("linear", 0.9, True),
})


def magnitude_table(space: str, num_bins: int, height: int, width: int,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(op ids into OPS, magnitudes (ops, bins) float64, signed (ops,) bool)`` of one space."""
    names, table = SPACES[space]
    rows, signed = [], []
    for name in names:
        kind = table[name]
        if kind[0] == "linear":
            top = kind[1]
            if isinstance(top, tuple):
                top = (width if top[0] == "width" else height) * top[1]
            row = torch.linspace(0.0, top, num_bins)  # float32 like torchvision, so the values agree exactly
        elif kind[0] == "bits":
            row = (kind[1] - torch.arange(num_bins) / ((num_bins - 1) / kind[2])).round()
        elif kind[0] == "threshold":
            row = torch.linspace(1.0, 0.0, num_bins)
        else:
            row = torch.zeros(num_bins)
        rows.append(row.double())
        signed.append(kind[0] == "linear" and kind[2])
    ids = torch.tensor([OP_INDEX[name] for name in names], device=device)
    return ids, torch.stack(rows).to(device), torch.tensor(signed, device=device)


def random_signs(signed: torch.Tensor) -> torch.Tensor:
    """-1 with probability 1/2 where the op's magnitude is signed, else +1 (float64)."""
    flip = signed & (torch.rand(signed.shape, device=signed.device) <= 0.5)
    return torch.where(flip, -1.0, 1.0).double()


# ---------- the ops, on float images holding uint8 values (0..255) and a float64 magnitude per image
def _weight(values: torch.Tensor) -> torch.Tensor:
    """Per-image float64 factors as float32 (N, 1, 1, 1), the precision torchvision's scalars get."""
    return values.float().view(-1, 1, 1, 1)


def to_grid(images: torch.Tensor) -> torch.Tensor:
    """uint8 truncation, as ``.to(torch.uint8)`` after torchvision's clamp."""
    return images.clamp_(0.0, 255.0).floor_()


def _grey(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, floored to the uint8 grid (torchvision's grayscale of a uint8 image)."""
    red, green, blue = images.unbind(dim=1)
    return (red * 0.2989 + green * 0.587 + blue * 0.114).floor_().unsqueeze(1)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # addcmul rounds as torchvision's add_(other, alpha=1 - factor) does (one fused multiply-add)
    return to_grid(torch.addcmul(images * _weight(factor), other, _weight(1.0 - factor)))


def _brightness(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return to_grid(images * _weight(1.0 + magnitude))


def _color(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:  # saturation of a grey image: unchanged, as torchvision (and PIL)
        return images
    return _blend(images, _grey(images), 1.0 + magnitude)


def _contrast(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    grey = _grey(images) if images.shape[1] == 3 else images
    return _blend(images, grey.mean(dim=(1, 2, 3), keepdim=True), 1.0 + magnitude)


def _sharpness(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    channels, height, width = images.shape[1:]
    if height <= 2 or width <= 2:
        return images
    kernel = torch.ones(3, 3, device=images.device, dtype=images.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(channels, 1, 3, 3)
    blurred = F.conv2d(images, kernel, groups=channels).round_()
    # the border keeps its pixels; the inside moves towards (factor < 1) or away from (> 1) the blur
    out = images.clone()
    inside = out[..., 1:-1, 1:-1]
    inside.addcmul_(blurred - inside, _weight(1.0 - (1.0 + magnitude)))  # torchvision: 1 - factor
    return to_grid(out)


def _posterize(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` high bits: a multiple of 2**(8 - bits) (bits=8: unchanged, 0: black)."""
    step = _weight(torch.pow(2.0, 8.0 - magnitude.clamp(0.0, 8.0)))
    return (images / step).floor_() * step


def _solarize(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    # float32, as torchvision compares a uint8 image with a Python float threshold
    threshold = (255.0 * magnitude).float().view(-1, 1, 1, 1)
    return torch.where(images >= threshold, 255.0 - images, images)


def _invert(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return 255.0 - images


def _autocontrast(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF  # per image and channel already, on a batch

    return TF.autocontrast(images.to(torch.uint8)).to(images.dtype)


def _equalize(images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF  # per image and channel already, on a batch

    return TF.equalize(images.to(torch.uint8)).to(images.dtype)


_COLOUR = {"Brightness": _brightness, "Color": _color, "Contrast": _contrast, "Sharpness": _sharpness,
           "Posterize": _posterize, "Solarize": _solarize, "AutoContrast": _autocontrast, "Equalize": _equalize,
           "Invert": _invert}


def _inverse_affine(ops: torch.Tensor, magnitude: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-image (N, 2, 3) float64 map from output to input pixel, in pixel coordinates centred on the
    image, for the geometric ops as torchvision's affine/rotate define them (shears about the top-left
    corner, translations truncated to whole pixels, rotation counter-clockwise)."""
    n = ops.shape[0]
    matrix = torch.zeros(n, 2, 3, dtype=torch.float64, device=ops.device)
    matrix[:, 0, 0] = matrix[:, 1, 1] = 1.0
    # torchvision passes the shear as degrees(atan(m)) and takes its tangent back
    shear = torch.tan(torch.deg2rad(torch.rad2deg(torch.atan(magnitude))))
    is_x, is_y = ops == OP_INDEX["ShearX"], ops == OP_INDEX["ShearY"]
    matrix[:, 0, 1] = torch.where(is_x, shear, 0.0)
    matrix[:, 0, 2] = torch.where(is_x, shear * (height / 2), 0.0)
    matrix[:, 1, 0] = torch.where(is_y, shear, 0.0)
    matrix[:, 1, 2] = torch.where(is_y, shear * (width / 2), 0.0)
    shift = -torch.trunc(magnitude)
    matrix[:, 0, 2] += torch.where(ops == OP_INDEX["TranslateX"], shift, 0.0)
    matrix[:, 1, 2] += torch.where(ops == OP_INDEX["TranslateY"], shift, 0.0)
    rotate = ops == OP_INDEX["Rotate"]
    angle = torch.deg2rad(torch.where(rotate, magnitude, 0.0))
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    matrix[:, :, :2] = torch.where(rotate.view(-1, 1, 1), rotation, matrix[:, :, :2])
    return matrix


def _warp(images: torch.Tensor, matrix: torch.Tensor, mode: str) -> torch.Tensor:
    """Resample each image through its own pixel-coordinate map (float32 grid, as torchvision builds it;
    zeros outside; bilinear results rounded to the uint8 grid)."""
    n, _, height, width = images.shape
    device, dtype = images.device, images.dtype
    base = torch.empty(1, height, width, 3, device=device, dtype=dtype)
    base[..., 0] = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=device)
    base[..., 1] = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=device).unsqueeze(-1)
    base[..., 2] = 1.0
    to_unit = torch.tensor([0.5 * width, 0.5 * height], device=device, dtype=dtype)
    theta = matrix.to(dtype).transpose(1, 2) / to_unit
    grid = base.view(1, height * width, 3).expand(n, -1, -1).bmm(theta).view(n, height, width, 2)
    out = F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out if mode == "nearest" else out.round_()


def apply_ops(images: torch.Tensor, ops: torch.Tensor, magnitude: torch.Tensor,
              interpolation: str = "nearest") -> torch.Tensor:
    """Apply op ``OPS[ops[i]]`` with signed magnitude ``magnitude[i]`` to image i of a float batch holding
    uint8 values (0..255), all the geometric ops as one batched resampling, each colour op on its group."""
    out = images.clone()
    present = set(torch.unique(ops).tolist())
    geometric = [OP_INDEX[name] for name in GEOMETRIC if OP_INDEX[name] in present]
    if geometric:
        chosen = torch.isin(ops, torch.tensor(geometric, device=ops.device)).nonzero().squeeze(1)
        matrix = _inverse_affine(ops[chosen], magnitude[chosen], images.shape[-2], images.shape[-1])
        out[chosen] = _warp(images[chosen], matrix, interpolation)
    for name, op in _COLOUR.items():
        if OP_INDEX[name] in present:
            chosen = (ops == OP_INDEX[name]).nonzero().squeeze(1)
            out[chosen] = op(images[chosen], magnitude[chosen])
    return out


def to_uint8_grid(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().float()


def from_uint8_grid(grid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return grid.div(255.0).to(like.dtype)
