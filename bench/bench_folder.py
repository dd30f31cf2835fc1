"""``dataset=folder``: decoding and caching a folder of 20,000 small images (PNG, 32 × 32 grey, 10 classes,
written by this module into a temporary folder), then the second start from the cache.

Rows: the first load (scan + decode + write the cache) in seconds and images/s, its peak memory (the RSS
growth of a child process that does only the load), the cache file's size, and the second load (scan +
cache read) — the start every later trial and run pays. ``--quick``: 4,000 images.

``python -m bench.bench_folder [--quick]`` prints the rows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

IMAGES = {False: 20_000, True: 4_000}
SIZE = 32
GOAL_SECOND_START_S = 2.0

CHILD = """
import json, os, resource, sys, time
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from raydaug.folder import load_folder
started = time.perf_counter()
data = load_folder(sys.argv[1], int(sys.argv[2]), log=lambda line: None)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "images": int(data.labels.numel()), "peak_kib": peak, "before_kib": before}))
"""


def _write_folder(root: Path, count: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / "train" / f"class_{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(folder / f"{index:05d}.png")


def _load_in_child(root: Path, image_size: int, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "RAYDAUG_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(root), str(image_size)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = IMAGES[quick]
    with tempfile.TemporaryDirectory() as folder:
        root, cache = Path(folder) / "images", Path(folder) / "cache"
        _write_folder(root, count)
        first = _load_in_child(root, SIZE, cache)
        second = _load_in_child(root, SIZE, cache)
        cache_bytes = sum(path.stat().st_size for path in cache.rglob("*.npz"))
    raw_kib = count * SIZE * SIZE / 1024
    rows = [
        {"metric": f"folder of {count:,} PNG {SIZE}×{SIZE} grey: first load (scan, decode, write cache)",
         "value": round(first["seconds"], 2), "unit": "s", "goal": "", "met": None},
        {"metric": "  decoding rate of the first load", "value": round(count / first["seconds"]),
         "unit": "images/s", "goal": "", "met": None},
        {"metric": "  peak RSS growth of the first load (uint8 images: "
                   f"{raw_kib / 1024:.1f} MiB)", "value": round((first["peak_kib"] - first["before_kib"]) / 1024, 1),
         "unit": "MiB", "goal": "", "met": None},
        {"metric": "  cache file", "value": round(cache_bytes / 2**20, 1), "unit": "MiB", "goal": "", "met": None},
        {"metric": "second start: scan + read the cache", "value": round(second["seconds"], 2), "unit": "s",
         "goal": f"< {GOAL_SECOND_START_S:g} s", "met": second["seconds"] < GOAL_SECOND_START_S},
    ]
    return rows


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
