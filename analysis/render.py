"""Tables for reading: ``mean ± std`` strings, Markdown (no extra dependency) and the CSV + Markdown pair
each report table is written as; the ``display_*`` functions turn a table of numbers into its shown form."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from raydaug.analysis.scores import missing

AUG_NAMES = {"none": "baseline (no augmentation)", "light": "light DA", "strong": "strong DA",
             "trivial": "TrivialAugmentWide", "learned": "learned (ours)"}


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    if missing(mean):
        return "—"
    return f"{mean:.{digits}f}" if missing(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def percent(change: float, digits: int = 0) -> str:
    return f"{change * 100:+.{digits}f} %"


def _cell(value: Any) -> str:
    if missing(value):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_table(frame: pd.DataFrame, display: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """``stem.csv`` (numbers, full precision) and ``stem.md`` (for reading)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    frame.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(display))
    return [csv_path, md_path]


def aug_name(aug: str, variant: str) -> str:
    return AUG_NAMES.get(aug, aug) + (f" [{variant}]" if variant else "")


def _changes(values: pd.Series) -> list[str]:
    return [percent(c, 1) if not missing(c) else "—" for c in values]


def _interval(lows: pd.Series, highs: pd.Series, form: Any) -> list[str]:
    return [f"{form(low)} to {form(high)}" if math.isfinite(low) else "—" for low, high in zip(lows, highs)]


def _mean_std_column(table: pd.DataFrame, stem: str) -> list[str]:
    return [format_mean_std(m, s) for m, s in zip(table[f"{stem}_mean"], table[f"{stem}_std"])]


def display_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`raydaug.analysis.comparison.comparison` for reading."""
    return pd.DataFrame({
        "dataset": table["dataset"], "train/class": table["train_per_class"],
        "augmentation": [aug_name(a, v) for a, v in zip(table["aug"], table["variant"])], "trials": table["trials"],
        "members": table["members"],
        "acc/test % (mean ± std)": _mean_std_column(table, "acc_test"),
        "test error vs best hand-made": _changes(table["error_change_vs_best_hand_made"]),
        "95 % CI over splits": _interval(table["error_change_ci_low"], table["error_change_ci_high"],
                                         lambda c: percent(c, 1)),
        "splits ahead / behind": [f"{int(a)} / {int(b)} of {int(n)}" if n else "—" for a, b, n in
                                  zip(table["ahead_splits"], table["behind_splits"], table["paired_splits"])],
        "probability of improvement": [f"{p:.2f}" if not missing(p) else "—"
                                       for p in table["probability_of_improvement"]],
        "its 95 % CI": _interval(table["probability_of_improvement_ci_low"],
                                 table["probability_of_improvement_ci_high"], lambda p: f"{p:.2f}"),
        "best acc/val %": [format_mean_std(v, math.nan) for v in table["acc_val_mean"]],
        "acc/test % at the last report": _mean_std_column(table, "acc_test_last"),
        "test error vs best hand-made at the last report": _changes(table["error_change_last"]),
        "acc/test % over the second half": _mean_std_column(table, "acc_test_late"),
        "test error vs best hand-made over the second half": _changes(table["error_change_late"]),
        "healthy G": [f"{int(h)}/{int(n)}" if not missing(h) else "—"
                      for h, n in zip(table["healthy_trials"], table["trials"])],
        "collapsed": [int(c) if not missing(c) else "—" for c in table["collapsed_trials"]],
        "unfinished": table["unfinished_trials"],
    })


def display_table1(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 for reading: ``mean ± std`` strings and the reference beside them."""
    return pd.DataFrame({
        "dataset": table["dataset"], "train/class": table["train_per_class"],
        "augmentation": [aug_name(a, v) for a, v in zip(table["aug"], table["variant"])], "trials": table["trials"],
        "acc/test % (mean ± std)": _mean_std_column(table, "acc_test"),
        "reference %": [_cell(p) if not missing(p) else "—" for p in table["paper"]],
        "reference from": [s or "—" for s in table["paper_source"]],
    })


def display_table3(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": table["dataset"], "train/class": table["train_per_class"], "row": table["row"],
        "players": table["players"], "trials": table["trials"],
        "acc/test % (mean ± std)": _mean_std_column(table, "acc_test"),
        "paper %": [_cell(p) for p in table["paper"]],
    })
