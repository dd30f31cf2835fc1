"""The paper's tables, with its numbers side by side: Table 1 (dataset × augmentation) and Table 3 (ablation
rows), and the top trials by validation with their best checkpoints."""
from __future__ import annotations

import math

import pandas as pd

from raydaug.analysis.comparison import LEARNED, one_result_per_split
from raydaug.analysis.load import PARTITION_KEY
from raydaug.analysis.reference import PAPER_TABLE3, TABLE3_REFERENCE, table1_reference
from raydaug.analysis.scores import is_joint_scored, mean_std
from raydaug.presets import TABLE3_ROWS


def is_table1_trial(row: pd.Series) -> bool:
    """Table 1 compares augmentations with the full method: joint training, and for ``learned`` all
    players (Table 3 row l)."""
    return is_joint_scored(row) and (row["aug"] != LEARNED or row["table3_row"] == "l")


def table1(summary: pd.DataFrame) -> pd.DataFrame:
    """Dataset × training-set size × augmentation (× variant): trials, acc/test mean ± std (%), the reference
    number. A PBT population counts once per split, by its validation-best member
    (:func:`raydaug.analysis.comparison.one_result_per_split`)."""
    chosen = one_result_per_split(summary[summary.apply(is_table1_trial, axis=1)]) if not summary.empty else summary
    rows = []
    for (dataset, per_class, aug, variant), group in chosen.groupby(
            ["dataset", "train_per_class", "aug", "variant"], sort=True):
        mean, std = mean_std(group["test_at_best"])
        paper, source = table1_reference(dataset, int(per_class), aug)
        rows.append({"dataset": dataset, "train_per_class": int(per_class), "aug": aug, "variant": variant,
                     "trials": len(group), "acc_test_mean": mean, "acc_test_std": std, "paper": paper,
                     "paper_source": source})
    return pd.DataFrame(rows, columns=["dataset", "train_per_class", "aug", "variant", "trials", "acc_test_mean",
                                       "acc_test_std", "paper", "paper_source"])


def table3(summary: pd.DataFrame) -> pd.DataFrame:
    """Ablation rows a..l per dataset and training-set size, with the paper's CIFAR-10/4000 numbers (a PBT
    population once per split, as in :func:`table1`). Empty unless the run holds at least one ablation row (b..h)."""
    chosen = one_result_per_split(summary[summary["table3_row"].notna() & summary["test_at_best"].notna()]) \
        if not summary.empty else summary
    columns = ["dataset", "train_per_class", "row", "players", "trials", "acc_test_mean", "acc_test_std", "paper"]
    ablations = set(TABLE3_ROWS) - {"a", "l"}
    if chosen.empty or not ablations & set(chosen["table3_row"]):
        return pd.DataFrame(columns=columns)
    order = list(TABLE3_ROWS)
    rows = []
    for (dataset, per_class), block in chosen.groupby(["dataset", "train_per_class"], sort=True):
        for letter, group in sorted(block.groupby("table3_row"), key=lambda item: order.index(item[0])):
            mean, std = mean_std(group["test_at_best"])
            paper = PAPER_TABLE3[letter] if (dataset, int(per_class)) == TABLE3_REFERENCE else math.nan
            rows.append({"dataset": dataset, "train_per_class": int(per_class), "row": letter,
                         "players": TABLE3_ROWS[letter][0], "trials": len(group), "acc_test_mean": mean,
                         "acc_test_std": std, "paper": paper})
    return pd.DataFrame(rows, columns=columns)


def best_checkpoint_table(summary: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The top-``k`` trials by best acc/val with their acc/test there."""
    scored = summary.dropna(subset=["best_acc_val"])
    top = scored.sort_values(["best_acc_val", PARTITION_KEY], ascending=[False, True], kind="stable").head(k)
    return top[[PARTITION_KEY, "dataset", "aug", "best_acc_val", "test_at_best", "best_iteration", "best_epoch",
                "last_iteration"]].reset_index(drop=True)
