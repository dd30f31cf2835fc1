"""What ``base_aug=auto`` chose: each learned trial's pilot (``parquet/pilots``) beside the hand-made arms that
trained the whole budget on the same split, where the run has them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from raydaug.allowed import MAGNITUDE_KEYS
from raydaug.analysis.comparison import is_hand_made
from raydaug.analysis.load import PARTITION_KEY, RunData, config_dicts
from raydaug.presets import HAND_MADE

COLUMNS = [PARTITION_KEY, "dataset", "train_per_class", "seed", "pilot_epochs", "chosen", "chosen_acc_val",
           "runner_up", "runner_up_acc_val", "pilot_val_best", "z", "full_budget_val_best", "agrees",
           "chosen_full_acc_test", "pilot_val_best_full_acc_test", "val_best_full_acc_test"]
SPLIT = ["dataset", "train_per_class", "seed", "replicate"]


def pilot_table(run: RunData, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per learned trial that ran a pilot: what it chose with its pilot validation accuracy, the
    runner-up, the pilot's validation-best with its paired z over the prior (``pilot_prior``; the chosen one
    without a prior and in runs before config version 4), and where hand-made trials ran on the trial's split
    for the whole budget: the one of them best on validation (``full_budget_val_best``), whether the pilot
    chose it (``agrees``), and the test accuracy (at the best validation) that the chosen, the pilot's
    validation-best and the full-budget validation-best arm reached there."""
    pilots = run.pilots
    if pilots is None or pilots.empty:
        return pd.DataFrame(columns=COLUMNS)
    trials = summary.set_index(PARTITION_KEY)
    configs = config_dicts(run)
    hand_made = summary[summary["aug"].map(is_hand_made) & summary["best_acc_val"].notna()]
    order = {name: rank for rank, name in enumerate(HAND_MADE)}
    last_val = _last_validation(run.metrics)
    rows = []
    for trial_id, group in pilots.groupby(pilots[PARTITION_KEY].astype(str), sort=True):
        if trial_id not in trials.index:
            continue
        latest = group[group["timestamp"] == group["timestamp"].max()]
        ranked = latest.sort_values(["acc_val", "acc_val_last"], ascending=False, kind="stable")
        chosen = ranked[ranked["chosen"]].iloc[0]
        val_best = ranked[ranked["val_best"].fillna(False).astype(bool)] if "val_best" in ranked else ranked[:0]
        val_best = val_best.iloc[0] if not val_best.empty else chosen
        others = ranked[~ranked["chosen"]]
        trial = trials.loc[trial_id]
        same_split = hand_made
        for key in SPLIT:
            same_split = same_split[same_split[key] == trial[key]]
        # the arms the pilot tried: each at the magnitudes the learned trial gave its pilot
        tried = [_same_magnitudes(configs.get(str(arm), {}), configs.get(trial_id, {}))
                 for arm in same_split[PARTITION_KEY]]
        same_split = same_split.loc[np.asarray(tried, dtype=bool)]
        # the full-budget validation-best by the pilot's rule: the best acc/val, ties to the better last
        # evaluation, then to the order of HAND_MADE
        best = same_split.assign(rank=same_split["aug"].map(order),
                                 last=same_split[PARTITION_KEY].astype(str).map(last_val)).sort_values(
            ["best_acc_val", "last", "rank"], ascending=[False, False, True], kind="stable", na_position="last")
        by_aug = best.drop_duplicates("aug").set_index("aug")["test_at_best"]
        rows.append({
            PARTITION_KEY: trial_id, "dataset": trial["dataset"], "train_per_class": trial["train_per_class"],
            "seed": trial["seed"], "pilot_epochs": int(chosen["epochs"]), "chosen": chosen["base_aug"],
            "chosen_acc_val": chosen["acc_val"],
            "runner_up": others.iloc[0]["base_aug"] if not others.empty else None,
            "runner_up_acc_val": others.iloc[0]["acc_val"] if not others.empty else float("nan"),
            "pilot_val_best": val_best["base_aug"], "z": val_best.get("z", float("nan")),
            "full_budget_val_best": best.iloc[0]["aug"] if not best.empty else None,
            "agrees": bool(best.iloc[0]["aug"] == chosen["base_aug"]) if not best.empty else None,
            "chosen_full_acc_test": by_aug.get(chosen["base_aug"], float("nan")),
            "pilot_val_best_full_acc_test": by_aug.get(val_best["base_aug"], float("nan")),
            "val_best_full_acc_test": best.iloc[0]["test_at_best"] if not best.empty else float("nan"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def _last_validation(metrics: pd.DataFrame) -> pd.Series:
    """Per trial, its acc/val at its last evaluation (the pilot's tie-break)."""
    if metrics.empty or "acc/val" not in metrics:
        return pd.Series(dtype=float)
    scored = metrics.dropna(subset=["acc/val"])
    last = scored.groupby(PARTITION_KEY, observed=True).tail(1)
    return pd.Series(last["acc/val"].to_numpy(), index=last[PARTITION_KEY].astype(str))


def _same_magnitudes(arm: dict, learned: dict) -> bool:
    """Whether hand-made trial ``arm`` trained at the magnitudes a learned trial's pilot used for it."""
    return all(arm.get(key) == learned.get(key) for key in MAGNITUDE_KEYS.get(arm.get("aug"), ()))


def pilot_text(table: pd.DataFrame) -> str:
    """One sentence: how often each augmentation was chosen, and how often the full-budget arms agreed."""
    counts = table["chosen"].value_counts()
    text = ("base_aug=auto stood G on " + ", ".join(f"{name} in {count}" for name, count in counts.items())
            + f" of {len(table)} learned trial(s), each chosen by a pilot on its split's validation images.")
    kept = table[table["chosen"] != table["pilot_val_best"]]
    if not kept.empty:
        text += (f" The prior was kept over the pilot's validation-best in {len(kept)}, which the paired test did "
                 "not find better.")
    compared = table["agrees"].dropna()
    if not compared.empty:
        text += (f" The hand-made arm best on validation after the whole budget was the pilot's choice in "
                 f"{int(compared.sum())} of {len(compared)}.")
    return text
