"""A trial's scores in the trial summary and the arithmetic every table of them shares.

A trial's score is its ``acc/test`` at the iteration with its best ``acc/val`` (ties: the earliest), the
paper's protocol; two more choose no checkpoint (its last report, and its mean over the second half of
training). Groups report mean ± sample standard deviation (ddof = 1) over their trials, in percent.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

# the scores of a trial the comparison sets side by side: the protocol's, then two that choose no checkpoint
SCORES = {"": "test_at_best", "_last": "last_acc_test", "_late": "late_acc_test"}


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and sample standard deviation in percent of fractions ``values`` (NaN where undefined)."""
    values = values.dropna() * 100.0
    mean = float(values.mean()) if len(values) else math.nan
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def is_joint_scored(row: pd.Series) -> bool:
    """A trial with a score whose C trained jointly (a baseline, or a learned G trained with C)."""
    return not (missing(row["joint"]) or not bool(row["joint"]) or missing(row["test_at_best"])
                or missing(row["aug"]))
