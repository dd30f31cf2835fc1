"""The hand-made augmentations of ``raydaug.augment``: one call's time, and its share of a training step.

Configurations: 16 px grey (digit-like) and 32 px colour (CIFAR-like) random batches of 64 and 25 images.
Per configuration: ms per call (median) of a per-image-loop TrivialAugmentWide
(torchvision's transform image by image, as raydaug did before) and of every batched
augmentation; the speed-up of the batched trivial over the loop (goal ≥ 2×); the ms of one classifier step
(``build_classifier('small', …)`` forward + backward + Adam on the batch); and, for batch 64, each
augmentation's share of a step, aug / (aug + step).

Device: CUDA when present, else the CPU (``RAYDAUG_BENCH_DEVICE=cpu|cuda`` overrides).
``python -m bench.bench_augment [--quick]`` prints the rows.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

CONFIGS = ((16, 1, "digits", 64), (16, 1, "digits", 25), (32, 3, "cifar10", 64), (32, 3, "cifar10", 25))
SHARE_BATCH = 64  # the batch whose step shares are reported
REPEATS = {False: 15, True: 5}
GOAL_SPEEDUP = 2.0


def _device():
    import torch

    wanted = os.environ.get("RAYDAUG_BENCH_DEVICE")
    return torch.device(wanted or ("cuda" if torch.cuda.is_available() else "cpu"))


def _median_ms(action: Callable[[], Any], repeats: int, device) -> float:
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    action()  # warm-up: lazy imports, allocator, kernels
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def _step(size: int, channels: int, images, device) -> Callable[[], None]:
    """One classifier update on ``images``: forward, cross-entropy, backward, Adam."""
    import torch
    import torch.nn.functional as F

    from raydaug.nets import build_classifier

    net = build_classifier("small", channels, 10, size).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    labels = torch.randint(10, (images.shape[0],), device=device)

    def step() -> None:
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def looped_trivial(images):
    """The "before": torchvision's TrivialAugmentWide draws one op per tensor it is given, so raydaug applied
    it image by image (raydaug.data.augment_trivial until the batched raydaug.augment replaced it)."""
    import torch
    from torchvision.transforms import v2

    transform = v2.TrivialAugmentWide()
    as_uint8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return torch.stack([transform(image) for image in as_uint8]).float().div_(255.0)


def run(quick: bool = False) -> list[dict[str, Any]]:
    import torch

    from raydaug.augment import HAND_MADE, hand_made

    device, repeats = _device(), REPEATS[quick]
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []

    def row(metric: str, value: float, unit: str, goal: str = "", met: bool | None = None) -> None:
        rows.append({"metric": metric, "value": round(value, 3), "unit": unit, "goal": goal, "met": met,
                     "device": device.type})

    for size, channels, dataset, batch in CONFIGS:
        label = f"{size} px {'grey' if channels == 1 else 'colour'} b{batch}"
        images = torch.rand(batch, channels, size, size, device=device)
        loop = _median_ms(lambda images=images: looped_trivial(images), repeats, device)
        row(f"{label}: trivial, per-image loop (torchvision's transform image by image)", loop, "ms")
        times = {}
        for name in HAND_MADE[1:]:
            call = lambda name=name, images=images, dataset=dataset: hand_made(name, images, dataset=dataset)  # noqa: E731
            times[name] = _median_ms(call, repeats, device)
            row(f"{label}: {name}, batched", times[name], "ms")
        speedup = loop / times["trivial"]
        row(f"{label}: speed-up of batched trivial over the loop", speedup, "×", f"≥ {GOAL_SPEEDUP:g}×",
            speedup >= GOAL_SPEEDUP)
        step_ms = _median_ms(_step(size, channels, images, device), repeats, device)
        row(f"{label}: classifier step ('small', fwd+bwd+Adam)", step_ms, "ms")
        if batch == SHARE_BATCH:
            for name, aug_ms in times.items():
                row(f"{label}: {name} share of aug + step", aug_ms / (aug_ms + step_ms), "")
    return rows


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
