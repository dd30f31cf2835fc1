"""Hand-made baselines vs learned augmentation on the embedded digits data, same split and budget.

Runs `raydaug train` in-process for every (augmentation, split seed) and prints a Markdown table of test
accuracy at the best-validation evaluation (mean ± std over seeds). Each run keeps its full output
(Parquet, TensorBoard, checkpoints) under OUT/<aug>_s<seed>/, so `raydaug analyze` works on each.

    python scripts/digits_compare.py --out runs/digits_compare --augs none light strong trivial learned \
        --seeds 0 1 2 --set epochs=500
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from raydaug.config import Config
from raydaug.overrides import parse_overrides
from raydaug.train import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/digits_compare")
    parser.add_argument("--augs", nargs="+", default=["none", "light", "strong", "trivial", "learned"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    rows = []
    for aug in args.augs:
        accs = []
        for seed in args.seeds:
            config = Config.from_dict({**overrides, "aug": aug, "seed": seed})
            run_dir = Path(args.out) / f"{aug}_s{seed}"
            result = run_training(config, run_dir, log=lambda line: None)
            accs.append(100 * result["best"]["acc/test"])
            print(f"{aug:8s} seed {seed}: best val {100 * result['best']['acc/val']:.2f} "
                  f"(epoch {result['best']['epoch']}) → test {accs[-1]:.2f}", flush=True)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append((aug, statistics.mean(accs), std, accs))
    table = ["| aug | test acc % (mean ± std) | per seed |", "|---|---|---|"]
    table += [f"| {aug} | {mean:.2f} ± {std:.2f} | {', '.join(f'{a:.2f}' for a in accs)} |"
              for aug, mean, std, accs in rows]
    print("\n".join(table))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text("\n".join(table) + "\n")
    (Path(args.out) / "table.json").write_text(json.dumps(
        {"overrides": overrides, "seeds": args.seeds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
