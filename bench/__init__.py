"""Benchmarks for raydaug (``make bench`` = ``python -m bench``; not part of the test suite).

Protocol: every module ``bench/bench_<name>.py`` defines ``run(quick: bool) -> list[dict]``; each dict is
one measured number with the keys ``metric`` (str), ``value`` (number or None), ``unit`` (str), ``goal``
(str, "" when there is none) and ``met`` (True / False / None when there is no goal). Extra keys are kept
in the results file but not shown in the table. ``python -m bench`` runs each module in its own process,
writes ``bench/results/<name>.json`` (rows + machine info) and regenerates the summary table in
``bench/README.md`` from every results file present.

Shared helpers for the modules: :func:`machine_info`, :func:`matmul_rate`, :func:`peak_rss_mb`,
:func:`apply_thread_setting` (the runner applies ``RAYDAUG_BENCH_THREADS`` before calling ``run``;
a module that starts its own processes should call it in them).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
REPO_ROOT = BENCH_DIR.parent
ROW_KEYS = ("metric", "value", "unit", "goal", "met")


class NotApplicable(Exception):
    """Raised by a module's ``run`` when this machine cannot run it (e.g. no CUDA): the runner reports
    it as skipped and keeps the module's earlier results file."""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def apply_thread_setting() -> int:
    """Honour ``RAYDAUG_BENCH_THREADS=N`` (torch intra-op threads for every benchmark; on a machine shared
    with other jobs, N=1 keeps OpenMP from stalling on busy cores). Returns the thread count in use."""
    import torch

    threads = os.environ.get("RAYDAUG_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def machine_info() -> dict[str, Any]:
    """Where a benchmark ran: CPU, cores, memory, load, torch and CUDA device, UTC timestamp."""
    import torch

    info: dict[str, Any] = {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    overrides = {key: os.environ[key] for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                                                 "RAYDAUG_BENCH_THREADS", "RAYDAUG_BENCH_DEVICE") if key in os.environ}
    if overrides:
        info["env"] = overrides
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        pass
    try:  # other processes on a shared machine distort every timing: record how busy it was
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage``; Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if platform.system() != "Darwin" else peak / 2**20


def rss_breakdown_mb() -> dict[str, float]:
    """Current RssAnon / RssFile in MiB (Linux). File-backed pages (torch's shared libraries, a few
    hundred MiB for the CUDA wheels) are shared by every process on the machine; anonymous ones are
    each process's own, the number that decides how many trials fit in memory."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return out


def matmul_rate(size: int | None = None, repeats: int = 5, device: str = "cpu",
                dtype: str = "float32") -> dict[str, Any]:
    """Best-of-``repeats`` FLOP/s of one ``size``×``size`` matmul (2·n³ FLOPs): the machine's practical
    dense peak, the yardstick for achieved-FLOP/s ratios. Default size: 2048 on CPU, 8192 on CUDA."""
    import torch

    size = size or (8192 if device.startswith("cuda") else 2048)
    torch_dtype = getattr(torch, dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=torch_dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=torch_dtype)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    out = torch.empty_like(a)
    torch.matmul(a, b, out=out)  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b, out=out)
        sync()
        best = min(best, time.perf_counter() - started)
    flops = 2.0 * size ** 3
    return {"flops_per_s": flops / best, "size": size, "repeats": repeats, "dtype": dtype, "device": device,
            "seconds": best}
