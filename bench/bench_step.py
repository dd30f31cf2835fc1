"""The joint four-player step (DC, DD, G, C updates of one minibatch), as ``Trainer.train_epoch`` drives it.

Configurations: 16 px (digits, ``classifier=small``, ``disc=small``, default ``ngf``) and 32 px
(CIFAR-sized random data, 3 channels, the paper's nets: ``preset=paper_cifar10`` without CIFAR files),
batch 32 and 64. Per configuration, in a fresh process (so peak RSS is its own): ms/step (median),
samples/s, FLOPs per step (``torch.utils.flop_counter.FlopCounterMode`` over one whole ``train_step``
including every backward), achieved FLOP/s, and its ratio to the best float32 matmul rate of the run (each
configuration's process measures one just before and one just after its timed steps). Goal: ≥ 0.6 of the matmul rate.

``python -m bench.bench_step --profile [--size 16] [--batch 32]`` prints a ``torch.profiler`` table of a
few steps instead. ``RAYDAUG_BENCH_THREADS=N`` sets torch's intra-op threads (default: torch's own);
``RAYDAUG_BENCH_DEVICE=cpu|cuda`` overrides the device (default: the CPU; ``bench_gpu`` measures the
same step on CUDA, fp32 and bf16 autocast).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

NUM_CLASSES = 10  # the synthetic data's class count (the built-in datasets have 10)

GOAL_RATIO = 0.6
CONFIGS = ((16, 32), (16, 64), (32, 32), (32, 64))  # (image size, batch)
TRAIN_PER_CLASS = 32  # 320 training images: whole batches of 32 and 64
# timed steps per configuration: (quick, full). 0: the FLOP-counted step is also the timed one (quick
# mode at 32 px, where one step of the paper nets takes seconds on a small CPU)
TIMED_STEPS = {16: (6, 20), 32: (0, 2)}
CUDA_TIMED_STEPS = (20, 50)  # a GPU step takes milliseconds: time more of them
MATMUL_REPEATS = (3, 5)


def config_label(size: int, batch: int) -> str:
    nets = "small nets" if size == 16 else "paper nets"
    return f"step {size}px {nets} b{batch}"


# ---------------------------------------------------------------------- one configuration
def build_trainer(size: int, batch: int, device: str | None = None, amp: bool = False, compile: bool = False):
    """A Trainer for the configuration: digits at 16 px, CIFAR-shaped random Splits at 32 px.
    ``device`` defaults to ``$RAYDAUG_BENCH_DEVICE`` or ``cpu``; ``amp``: bf16 autocast; ``compile``: torch.compile."""
    import torch

    from raydaug.config import Config
    from raydaug.data import Split, Splits
    from raydaug.state import resolve_device
    from raydaug.train import Trainer

    device = device or os.environ.get("RAYDAUG_BENCH_DEVICE", "cpu")
    if size == 16:
        config = Config.from_dict({"dataset": "digits", "image_size": 16, "classifier": "small", "disc": "small",
                                   "batch_size": batch, "train_per_class": TRAIN_PER_CLASS, "val_per_class": 0,
                                   "device": device, "amp": amp, "compile": compile})
        return Trainer(config)
    config = Config.from_dict({"preset": "paper_cifar10", "batch_size": batch, "train_per_class": TRAIN_PER_CLASS,
                               "val_per_class": 1, "device": device, "amp": amp,
                               "compile": compile})
    generator = torch.Generator().manual_seed(0)

    def split(per_class: int) -> Split:
        labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
        return Split(torch.rand(len(labels), 3, 32, 32, generator=generator), labels)

    train = split(TRAIN_PER_CLASS)
    splits = Splits(train, split(1), split(1), train.images.mean(dim=(0, 2, 3), keepdim=True),
                    train.images.std(dim=(0, 2, 3), keepdim=True), channels=3, num_classes=NUM_CLASSES)
    return Trainer(config, splits=splits.to(resolve_device(device)))


def step_driver(trainer) -> Callable[[], None]:
    """One call = one ``Trainer.train_batch`` (as ``Trainer.train_epoch`` runs it) over a fresh random
    permutation of the training set, cycling over epochs."""
    import torch

    n, batch = len(trainer.splits.train), trainer.config.batch_size
    position = {"order": torch.randperm(n, device=trainer.device), "start": 0}

    def step() -> None:
        if position["start"] + batch > n:
            position["order"] = torch.randperm(n, device=trainer.device)
            position["start"] = 0
        trainer.train_batch(position["order"][position["start"]:position["start"] + batch])
        position["start"] += batch

    return step


class _GlobalOnly:
    """Stand-in for FlopCounterMode's module tracker: everything counts under "Global"."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def count_flops(trainer, step: Callable[[], None]) -> tuple[int, dict[str, int]]:
    """FLOPs of one ``step()`` (forward and every backward: ``FlopCounterMode`` counts matmuls and
    convolutions), with a per-player split when torch's module tracker can follow the step.

    The tracker's backward hooks fail inside ``torch.autograd.grad`` for weight-normalised
    (parametrised) layers ("A leaf node was passed to _will_engine_execute_node ..."), so nets with
    parametrisations (the paper's) are counted as one total."""
    from torch.nn.utils import parametrize
    from torch.utils.flop_counter import FlopCounterMode

    nets = trainer.state.nets
    if not any(parametrize.is_parametrized(module) for net in nets.values() for module in net.modules()):
        with FlopCounterMode(display=False) as counter:
            step()
        by_class = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items() if "." not in name}
        by_player = {player: int(by_class.get(type(net).__name__, 0)) for player, net in nets.items()}
        return counter.get_total_flops(), by_player
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        step()
    return counter.get_total_flops(), {}


def measure(size: int, batch: int, timed_steps: int, matmul_repeats: int,
            cuda_timed_steps: int = CUDA_TIMED_STEPS[1], device: str | None = None,
            amp: bool = False, compile: bool = False) -> dict[str, Any]:
    """Measure one configuration in this process (on CUDA also the bf16 matmul rate)."""
    import torch

    from bench import apply_thread_setting, matmul_rate, peak_rss_mb, rss_breakdown_mb

    apply_thread_setting()
    rss_start = peak_rss_mb()
    trainer = build_trainer(size, batch, device, amp, compile)
    device = trainer.device
    cuda = device.type == "cuda"
    if cuda:
        timed_steps = cuda_timed_steps

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    matmul_before = matmul_rate(repeats=matmul_repeats, device=str(device))
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    step = step_driver(trainer)
    # the first step (oneDNN primitive creation, allocator warm-up) is the FLOP-counted one
    started = time.perf_counter()
    if compile:  # FlopCounterMode does not see inside compiled graphs: count an eager twin's step;
        twin = build_trainer(size, batch, str(device), amp)  # the compiled first step (compilation) is timed
        flops, by_player = count_flops(twin, step_driver(twin))
        del twin
        started = time.perf_counter()
        step()
    else:
        flops, by_player = count_flops(trainer, step)
    sync()
    counted_step_s = time.perf_counter() - started
    for _ in range(3 if compile else 1 if timed_steps > 0 and counted_step_s < 2.0 else 0):
        step()  # untimed warm-up outside the counting mode when steps are cheap (recompilations)
        sync()
    times = []
    loop_started = time.perf_counter()
    for _ in range(timed_steps):
        started = time.perf_counter()
        step()
        if not cuda:  # on CUDA the loop is timed as a whole (no sync per step)
            times.append(time.perf_counter() - started)
    sync()
    loop_seconds = time.perf_counter() - loop_started
    trainer.accumulator.check_finite()
    if timed_steps == 0:  # quick mode for slow configurations: the counted step is the timed one
        step_s = loop_seconds = counted_step_s
    else:
        step_s = statistics.median(times) if times else loop_seconds / timed_steps
    peak_rss = peak_rss_mb()  # before the second matmul's buffers
    rss_now = rss_breakdown_mb()
    peak_cuda_mb = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    matmul_after = matmul_rate(repeats=matmul_repeats, device=str(device))
    matmul = max(matmul_before["flops_per_s"], matmul_after["flops_per_s"])
    result = {
        "size": size, "batch": batch, "device": str(device), "threads": torch.get_num_threads(),
        "timed_steps": timed_steps, "step_s": step_s, "step_s_min": min(times) if times else step_s,
        "step_s_mean": loop_seconds / max(1, timed_steps), "counted_step_s": counted_step_s,
        "flops": flops, "flops_by_player": by_player,
        "matmul_flops_per_s": matmul, "matmul_before": matmul_before["flops_per_s"],
        "matmul_after": matmul_after["flops_per_s"], "matmul_size": matmul_before["size"],
        "peak_rss_mb": peak_rss, "rss_before_build_mb": rss_start,
        "rss_anon_mb_after": rss_now.get("RssAnon"), "rss_file_mb_after": rss_now.get("RssFile"),
        "parameters": {player: sum(p.numel() for p in net.parameters()) for player, net in trainer.state.nets.items()},
    }
    result["amp"], result["compile"] = amp, compile
    if cuda:
        result["peak_cuda_mb"] = peak_cuda_mb
        result["cuda_device"] = torch.cuda.get_device_name(device)
        result["bf16_matmul_flops_per_s"] = matmul_rate(repeats=matmul_repeats, device=str(device),
                                                        dtype="bfloat16")["flops_per_s"]
    return result


# ---------------------------------------------------------------------- the bench protocol
def measure_in_subprocess(size: int, batch: int, quick: bool, device: str | None = None, amp: bool = False,
                          compile: bool = False, timeout: float | None = None) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (its own peak RSS / CUDA memory)."""
    from bench import REPO_ROOT

    spec = {"size": size, "batch": batch, "timed_steps": TIMED_STEPS[size][0 if quick else 1],
            "matmul_repeats": MATMUL_REPEATS[0 if quick else 1],
            "cuda_timed_steps": CUDA_TIMED_STEPS[0 if quick else 1], "device": device, "amp": amp,
            "compile": compile}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-m", "bench.bench_step", "--measure", json.dumps(spec)],
                               cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{config_label(size, batch)} failed (exit {completed.returncode}): " + " / ".join(tail))
    return json.loads(completed.stdout.strip().splitlines()[-1])


def rows_for(result: dict[str, Any], matmul_peak: float) -> list[dict[str, Any]]:
    """Rows of one configuration; ``matmul_peak`` is the best matmul rate of the whole run (a busy
    machine makes any single matmul measurement low, which would flatter the ratio)."""
    label = config_label(result["size"], result["batch"])
    achieved = result["flops"] / result["step_s"]
    ratio = achieved / matmul_peak
    best_ratio = result["flops"] / result["step_s_min"] / matmul_peak
    detail = {key: result[key] for key in ("device", "threads", "timed_steps", "step_s_min", "step_s_mean",
                                           "counted_step_s",
                                           "matmul_before", "matmul_after", "matmul_size", "flops_by_player",
                                           "parameters", "rss_before_build_mb", "rss_anon_mb_after",
                                           "rss_file_mb_after")}
    detail["ratio_from_fastest_step"] = best_ratio  # both best-of: robust to a busy machine
    rows = [
        {"metric": f"{label}: time", "value": 1000.0 * result["step_s"], "unit": "ms/step", "goal": "",
         "met": None, "detail": detail},
        {"metric": f"{label}: throughput", "value": result["batch"] / result["step_s"], "unit": "samples/s",
         "goal": "", "met": None},
        {"metric": f"{label}: FLOPs per step", "value": result["flops"] / 1e9, "unit": "GFLOP", "goal": "",
         "met": None},
        {"metric": f"{label}: achieved", "value": achieved / 1e9, "unit": "GFLOP/s", "goal": "", "met": None},
        {"metric": f"{label}: achieved / fp32 matmul", "value": ratio, "unit": "",
         "goal": f"≥ {GOAL_RATIO} of matmul", "met": ratio >= GOAL_RATIO, "matmul_gflops": matmul_peak / 1e9,
         "ratio_to_own_process_matmul": achieved / result["matmul_flops_per_s"]},
        {"metric": f"{label}: peak RSS", "value": result["peak_rss_mb"], "unit": "MiB", "goal": "", "met": None},
    ]
    if "peak_cuda_mb" in result:
        rows.append({"metric": f"{label}: peak CUDA memory", "value": result["peak_cuda_mb"], "unit": "MiB",
                     "goal": "", "met": None, "cuda_device": result.get("cuda_device")})
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    results, failures = [], []
    for size, batch in CONFIGS:
        try:
            results.append(measure_in_subprocess(size, batch, quick))
        except Exception as error:  # noqa: BLE001 - one failing configuration must not hide the others
            failures.append({"metric": f"{config_label(size, batch)}: failed", "value": None, "unit": "",
                             "goal": f"≥ {GOAL_RATIO} of matmul", "met": False, "error": str(error)})
    if not results:
        raise RuntimeError("every configuration failed: " + " | ".join(row["error"] for row in failures))
    # the yardstick: the best fp32 matmul rate measured in this run (before and after every configuration)
    peak = max(result["matmul_flops_per_s"] for result in results)
    best = max(results, key=lambda result: result["matmul_flops_per_s"])
    rows: list[dict[str, Any]] = [{
        "metric": f"fp32 matmul {best['matmul_size']}² ({best['device']}, {best['threads']} threads, best of run)",
        "value": peak / 1e9, "unit": "GFLOP/s", "goal": "", "met": None,
        "per_config": {config_label(r["size"], r["batch"]): r["matmul_flops_per_s"] / 1e9 for r in results}}]
    for result in results:
        rows.extend(rows_for(result, peak))
    return rows + failures


# ---------------------------------------------------------------------- profiling
def profile(size: int, batch: int, steps: int, rows: int) -> str:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from bench import apply_thread_setting

    apply_thread_setting()
    trainer = build_trainer(size, batch)
    step = step_driver(trainer)
    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with torch_profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
    sort = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    return (averages.table(sort_by=sort, row_limit=rows) + "\n"
            + prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_step", description=__doc__.splitlines()[0])
    parser.add_argument("--measure", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table")
    parser.add_argument("--size", type=int, default=16, choices=(16, 32))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return 0
    if args.profile:
        print(profile(args.size, args.batch, args.steps, args.rows))
        return 0
    print(json.dumps(run(quick=True), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
