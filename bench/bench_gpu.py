"""GPU benchmarks. On a machine without CUDA the module is skipped and earlier results are kept.

1. **The GPU path end to end**: ``raydaug tune table1_cifar10 --smoke`` in a fresh process, with the
   trials on CUDA (the config's 0.25 GPU share each): exit status, wall time, trials finished, and
   the device each trial's logged config resolved to.
2. **The joint step on CUDA**: ``bench_step``'s configurations (16 px small nets, 32 px paper nets)
   in fp32 and with bf16 autocast (``amp=true``): ms/step, samples/s, achieved TFLOP/s (the FLOPs
   ``FlopCounterMode`` counts for one step), as a fraction of the card's datasheet bf16 dense peak
   and of the bf16 matmul rate measured in the same process, and peak CUDA memory.
3. **Fractional packing**: 1 × 1.0, 2 × 0.5, 4 × 0.25 and 8 × 0.125 GPU trials through Tune, 32 px
   paper nets, aggregate samples/s. Goal: 4 × 0.25 ≥ 3 × the single trial.
4. **Memory per tune_config on CUDA**: ``bench_memory``'s measurement with ``device=cuda`` (peak
   allocated CUDA memory of one trial; how many trials fit on one card).
5. **torch.compile on CUDA**: the 32 px b64 bf16 step with ``compile=true`` (compile time apart).

Each part's rows are also printed as they finish (a run cut short still shows what it measured).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, NotApplicable
from bench.bench_memory import memory_rows
from bench.bench_step import config_label, measure_in_subprocess
from bench.bench_tune import _population_rate, _row

PACKING_GOAL = 3.0  # 4 × 0.25 GPU trials ≥ 3 × one trial on the whole card

# datasheet dense (no sparsity) bf16 tensor-core peaks, TFLOP/s; matched on the device name
BF16_DENSE_PEAK_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                          ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0), ("L4", 121.0))
STEP_CONFIGS = ((16, 32), (16, 256), (32, 64), (32, 256))
COMPILE_TIMEOUT_S = 240


def bf16_peak_tflops(device_name: str) -> float | None:
    for fragment, peak in BF16_DENSE_PEAK_TFLOPS:
        if fragment in device_name:
            return peak
    return None


# ---------------------------------------------------------------------- 1. smoke on CUDA
def bench_smoke(storage: str) -> list[dict[str, Any]]:
    import pandas as pd

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "raydaug", "tune", "table1_cifar10", "--smoke", "--storage", storage,
               "--name", "gpu_smoke"]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-8:]
        raise RuntimeError(f"table1_cifar10 --smoke failed (exit {completed.returncode}): " + " / ".join(tail))
    trials = pd.read_parquet(Path(storage) / "gpu_smoke" / "parquet" / "trials")
    devices = sorted({json.loads(text)["device"] for text in trials["config_json"]})
    metrics = pd.read_parquet(Path(storage) / "gpu_smoke" / "parquet" / "metrics")
    finished = int(metrics.groupby("trial_id", observed=True)["training_iteration"].max().eq(
        metrics["training_iteration"].max()).sum())
    return [_row("GPU path: table1_cifar10 --smoke on CUDA, wall time", wall, "s", "exit 0, trials on cuda",
                 completed.returncode == 0 and devices == ["cuda"], trial_devices=devices,
                 trials_finished=finished, trials=int(trials["trial_id"].nunique()))]


# ---------------------------------------------------------------------- 2. the step on CUDA
def bench_cuda_step(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for size, batch in STEP_CONFIGS:
        for amp in (False, True):
            rows += step_rows(measure_in_subprocess(size, batch, quick, device="cuda", amp=amp))
    return rows


def bench_compile(quick: bool) -> list[dict[str, Any]]:
    result = measure_in_subprocess(32, 64, quick, device="cuda", amp=True, compile=True, timeout=COMPILE_TIMEOUT_S)
    rows = step_rows(result)
    rows.append(_row(f"CUDA {config_label(32, 64)} bf16 autocast compile=true: first step (compilation)",
                     result["counted_step_s"], "s"))
    return rows


def step_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one CUDA step measurement (``bench_step.measure``)."""
    size, batch = result["size"], result["batch"]
    name = (f"CUDA {config_label(size, batch)} {'bf16 autocast' if result['amp'] else 'fp32'}"
            + (" compile=true" if result["compile"] else ""))
    achieved = result["flops"] / result["step_s"]
    peak = bf16_peak_tflops(result["cuda_device"])
    matmul = result["bf16_matmul_flops_per_s"]
    return [
        _row(f"{name}: time", 1000.0 * result["step_s"], "ms/step", card=result["cuda_device"],
             step_s_min=result["step_s_min"], fp32_matmul_tflops=result["matmul_flops_per_s"] / 1e12,
             bf16_matmul_tflops=matmul / 1e12, datasheet_bf16_dense_tflops=peak),
        _row(f"{name}: throughput", batch / result["step_s"], "samples/s"),
        _row(f"{name}: achieved", achieved / 1e12, "TFLOP/s"),
        _row(f"{name}: achieved / bf16 dense peak", achieved / (peak * 1e12) if peak else None, ""),
        _row(f"{name}: achieved / measured bf16 matmul", achieved / matmul, ""),
        _row(f"{name}: peak CUDA memory", result["peak_cuda_mb"], "MiB"),
    ]


# ---------------------------------------------------------------------- 3. fractional packing
def bench_gpu_packing(quick: bool, storage: str) -> list[dict[str, Any]]:
    import torch

    values = {"dataset": "digits", "image_size": 32, "classifier": "badgan", "disc": "badgan", "ngf": 64,
              "noise_dim": 100, "train_per_class": 50, "val_per_class": 10, "batch_size": 32, "device": "auto",
              "epochs": 15 if quick else 30, "eval_every": 5, "checkpoint_every": 10}
    card = torch.cuda.get_device_name(0)
    rows, rates = [], {}
    for trials, share in ((1, 1.0), (2, 0.5), (4, 0.25), (8, 0.125)):
        rates[trials] = _population_rate(values, trials, 1.0, share, storage, f"gpu{trials}")
        rows.append(_row(f"GPU packing: {trials} × {share:g} GPU, 32 px paper nets", rates[trials], "samples/s",
                         card=card, speedup=round(rates[trials] / rates[1], 3)))
    ratio = rates[4] / rates[1]
    rows.append(_row("GPU packing: 4 × 0.25 GPU vs 1 × 1.0", ratio, "ratio", f"≥ {PACKING_GOAL}",
                     ratio >= PACKING_GOAL, card=card))
    return rows


def _guarded(name: str, work) -> list[dict[str, Any]]:
    """One part's rows, or a failed row naming the error: one broken part must not hide the others.
    The rows are printed as they come (a run cut short still shows what it measured)."""
    started = time.perf_counter()
    try:
        rows = work()
    except Exception as error:  # noqa: BLE001 - reported in the table
        rows = [_row(f"{name}: failed", None, "", "runs", False, error=str(error)[-2000:])]
    print(f"[bench_gpu] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    for row in rows:
        print(f"[bench_gpu]   {row['metric']} = {row['value']} {row['unit']}", file=sys.stderr, flush=True)
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        raise NotApplicable("no CUDA device")
    import ray

    storage = tempfile.mkdtemp(prefix="raydaug-bench-gpu-")
    try:
        rows = _guarded("GPU path: table1_cifar10 --smoke", lambda: bench_smoke(storage))
        rows += _guarded("CUDA step", lambda: bench_cuda_step(quick))
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        try:
            rows += _guarded("GPU packing", lambda: bench_gpu_packing(quick, storage))
        finally:
            ray.shutdown()
        rows += _guarded("CUDA memory", lambda: memory_rows("cuda"))
        rows += _guarded("CUDA compile", lambda: bench_compile(quick))
        return rows
    finally:
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
