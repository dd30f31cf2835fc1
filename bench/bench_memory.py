"""Peak memory of one trial of every tune_config: how many trials share a machine, or a GPU.

Per tune_config, in a fresh process: the trial config (the experiment's base; a grid-searched key at its
largest value, e.g. fig3's 4000 images per class; sampled hyperparameters stay at the preset's values,
they do not change memory) on data of the trial's shapes and sizes (the embedded digits as they are;
for the torchvision datasets, which are not downloaded here, random images of the dataset's channels,
``image_size``, reduced train/val split and full test set), then what a trial does between two
checkpoints: a few training steps as ``Trainer.train_epoch`` drives them, one ``Trainer.report``
(train/val/test accuracy, ``aug/*`` health) and one checkpoint write. Rows: peak RSS (``getrusage``)
and, on CUDA, peak allocated and reserved CUDA memory.

On the CPU the evaluation reads only the first :data:`CPU_EVAL_IMAGES` images of each split (evaluating
49,000 32 px images with the paper's classifier takes minutes on a small CPU) and the test set holds only
that many; the rest of the full test set's float32 bytes are added to the peak RSS. Both are exact to
first order: evaluation runs in chunks of 1024 images, so only the resident tensors grow with the splits,
and the training and validation splits stay resident at full size. Not included: Ray's worker process on top of the
trial (row "Ray worker baseline": a Python process with torch and ``ray.tune`` imported), and the raw
uint8 dataset a torchvision loader holds while it selects the reduced split (freed before training).

This module measures on the CPU; ``bench_gpu`` calls :func:`memory_rows` with ``cuda`` for the GPU figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

NUM_CLASSES = 10  # the synthetic data's class count (the built-in datasets have 10)

# (channels, test-set size) of the torchvision datasets (their standard test splits)
DATASET_SHAPES = {"mnist": (1, 10000), "fashion_mnist": (1, 10000), "svhn": (3, 26032), "cifar10": (3, 10000)}
CPU_EVAL_IMAGES = 1024
STEPS = 2


def tune_config_names() -> list[str]:
    from bench import REPO_ROOT

    return sorted(path.stem for path in (REPO_ROOT / "tune_configs").glob("*.py") if not path.stem.startswith("_"))


def _players(values: dict[str, Any]) -> int:
    """How many networks a trial of these values builds and trains (G's parts and discriminators count)."""
    from raydaug.config import Config

    config = Config.from_dict(values)
    if config.aug != "learned":
        return 0
    return 1 + sum(bool(flag) for flag in (config.use_stn, config.use_enc, config.use_dec, config.use_dc,
                                           config.use_dd))


def trial_values(name: str) -> dict[str, Any]:
    """Config values of the tune_config's largest trial: a numeric grid key at its largest value, any
    other grid key (aug, a Table 3 row's preset) at the value that trains the most networks."""
    from raydaug.experiment import load_experiment

    experiment = load_experiment(name)
    values = dict(experiment.base)
    grids = {key: list(space["grid_search"]) for key, space in experiment.search_space.items()
             if isinstance(space, dict) and "grid_search" in space}
    for key, options in grids.items():
        if all(isinstance(option, (int, float)) and not isinstance(option, bool) for option in options):
            values[key] = max(options)
    for key, options in grids.items():
        if key not in values or values[key] not in options:
            values[key] = max(options, key=lambda option: _players({**values, key: option}))
    return values


def synthetic_splits(config, test_images: int):
    """Random data with the trial's shapes and sizes (torchvision datasets), on the CPU."""
    import torch

    from raydaug.data import Split, Splits

    channels, _ = DATASET_SHAPES[config.dataset]
    generator = torch.Generator().manual_seed(0)

    def split(count: int) -> Split:
        labels = torch.arange(NUM_CLASSES).repeat_interleave(-(-count // NUM_CLASSES))[:count]
        images = torch.rand(count, channels, config.image_size, config.image_size, generator=generator)
        return Split(images.contiguous(memory_format=torch.channels_last), labels)

    train = split(config.train_per_class * NUM_CLASSES)
    return Splits(train, split(config.val_per_class * NUM_CLASSES), split(test_images),
                  train.images.mean(dim=(0, 2, 3), keepdim=True),
                  train.images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3), channels=channels,
                  num_classes=NUM_CLASSES)


def measure(name: str) -> dict[str, Any]:
    """One tune_config's trial, in this process."""
    import torch

    from bench import apply_thread_setting, peak_rss_mb
    from bench.bench_step import step_driver
    from raydaug.config import Config
    from raydaug.data import Split
    from raydaug.state import resolve_device
    from raydaug.train import Trainer

    apply_thread_setting()
    device = os.environ.get("RAYDAUG_BENCH_DEVICE", "cpu")
    values = {**trial_values(name), "device": device}
    config = Config.from_dict(values)
    cuda = resolve_device(config.device).type == "cuda"
    test_added_mb = 0.0
    if config.dataset == "digits":
        trainer = Trainer(config)
    else:
        channels, test_size = DATASET_SHAPES[config.dataset]
        used = test_size if cuda else min(test_size, CPU_EVAL_IMAGES)
        test_added_mb = (test_size - used) * channels * config.image_size ** 2 * 4 / 2**20
        splits = synthetic_splits(config, used).to(resolve_device(config.device))
        trainer = Trainer(config, splits=splits)
    step = step_driver(trainer)
    for _ in range(STEPS):
        step()
    if cuda:
        trainer.report()
    else:  # views of the resident splits: no new memory, a bounded evaluation
        full = trainer.splits
        trainer.splits = replace(full, **{name: Split(getattr(full, name).images[:CPU_EVAL_IMAGES],
                                                      getattr(full, name).labels[:CPU_EVAL_IMAGES])
                                          for name in ("train", "val", "test")})
        trainer.report()
        trainer.splits = full
    with tempfile.TemporaryDirectory(prefix="raydaug-bench-memory-") as folder:
        trainer.save(Path(folder) / "state.pt")
        checkpoint_mb = (Path(folder) / "state.pt").stat().st_size / 2**20
    result = {"tune_config": name, "device": str(trainer.device), "dataset": config.dataset, "aug": config.aug,
              "image_size": config.image_size, "batch_size": config.batch_size,
              "train_images": len(trainer.splits.train), "test_images_added_mb": test_added_mb,
              "peak_rss_mb": peak_rss_mb() + test_added_mb, "checkpoint_mb": checkpoint_mb,
              "parameters": sum(p.numel() for net in trainer.state.nets.values() for p in net.parameters())}
    if cuda:
        torch.cuda.synchronize()
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["peak_cuda_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        result["cuda_device"] = torch.cuda.get_device_name()
    return result


def ray_worker_baseline() -> float:
    """Peak RSS (MiB) of a Python process that imported torch, raydaug's trainable and ray.tune."""
    import raydaug.tune.trainable  # noqa: F401 - the imports a Tune trial worker holds
    from bench import peak_rss_mb

    return peak_rss_mb()


def _child(argument: str, device: str) -> dict[str, Any]:
    from bench import REPO_ROOT

    env = dict(os.environ, RAYDAUG_BENCH_DEVICE=device)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-m", "bench.bench_memory", argument], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{argument} failed (exit {completed.returncode}): " + " / ".join(tail))
    return json.loads(completed.stdout.strip().splitlines()[-1])


def memory_rows(device: str) -> list[dict[str, Any]]:
    """The rows for every tune_config on ``device`` (each measured in a fresh process)."""
    rows: list[dict[str, Any]] = []
    if device == "cpu":
        baseline = _child("--ray-baseline", device)["peak_rss_mb"]
        rows.append({"metric": "memory: Ray worker baseline (python + torch + ray.tune imported)",
                     "value": baseline, "unit": "MiB", "goal": "", "met": None})
    for name in tune_config_names():
        try:
            result = _child(f"--measure={name}", device)
        except Exception as error:  # noqa: BLE001 - one failing config must not hide the others
            rows.append({"metric": f"memory: {name}: failed", "value": None, "unit": "", "goal": "runs",
                         "met": False, "error": str(error)})
            continue
        shape = f"{result['dataset']} {result['image_size']} px b{result['batch_size']}, {result['train_images']} train"
        rows.append({"metric": f"memory: {name} ({shape}, {device}): peak RSS per trial",
                     "value": result["peak_rss_mb"], "unit": "MiB", "goal": "", "met": None, "detail": result})
        if "peak_cuda_mb" in result:
            rows.append({"metric": f"memory: {name}: peak CUDA allocated per trial", "value": result["peak_cuda_mb"],
                         "unit": "MiB", "goal": "", "met": None, "reserved_mb": result["peak_cuda_reserved_mb"],
                         "cuda_device": result["cuda_device"]})
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    return memory_rows("cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--measure", metavar="TUNE_CONFIG", help="measure one tune_config in this process")
    parser.add_argument("--ray-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ray_baseline:
        print(json.dumps({"peak_rss_mb": ray_worker_baseline()}))
    elif args.measure:
        print(json.dumps(measure(args.measure)))
    else:
        print(json.dumps(run(quick=True), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
