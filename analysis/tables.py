"""Per-trial summary and the paper's tables (Table 1: dataset × augmentation; Table 3: ablation rows),
with the paper's numbers side by side, as DataFrames, Markdown and CSV.

A trial's score is its ``acc/test`` at the iteration with its best ``acc/val`` (ties: the earliest),
the paper's protocol. Groups report mean ± sample standard deviation (ddof = 1) over their trials
(seeds), in percent.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raydaug.analysis.load import PARTITION_KEY, RunData, best_rows, config_dicts
from raydaug.config import BASE_AUGS, HAND_MADE_KEYS, MUTABLE_HPARAMS, REMOVED_KEYS, TABLE3_ROWS

# Table 1 of the paper: test accuracy (%) on the reduced training sets.
PAPER_TABLE1: dict[tuple[str, str], float] = {
    ("mnist", "none"): 90.81, ("fashion_mnist", "none"): 79.02, ("svhn", "none"): 79.55, ("cifar10", "none"): 66.73,
    ("mnist", "light"): 97.55, ("fashion_mnist", "light"): 78.96, ("svhn", "light"): 84.48, ("cifar10", "light"): 74.76,
    ("mnist", "strong"): 98.50, ("fashion_mnist", "strong"): 80.37, ("svhn", "strong"): 84.33,
    ("cifar10", "strong"): 77.74,
    ("mnist", "learned"): 98.61, ("fashion_mnist", "learned"): 82.43, ("svhn", "learned"): 86.07,
    ("cifar10", "learned"): 80.5,
}
# The paper's reduced sets (550 / 550 / 1000 / 4000 images) in images per class.
PAPER_TRAIN_PER_CLASS = {"mnist": 55, "fashion_mnist": 55, "svhn": 100, "cifar10": 400}
# Baselines measured on the embedded digits data by the project's reference runs (before raydaug; the
# protocol of docs/reproducing.md): 10 training images per class.
DIGITS_REFERENCE: dict[str, tuple[float, float]] = {
    "none": (95.47, 0.57), "light": (97.59, 0.89), "strong": (96.52, 0.73), "trivial": (97.59, 0.87)}
DIGITS_REFERENCE_TRAIN_PER_CLASS = 10
# Table 3 of the paper (CIFAR-10, 4000 training images).
PAPER_TABLE3 = {"a": 66.73, "b": 64.75, "c": 70.62, "d": 68.03, "e": 67.24, "f": 67.11, "g": 73.82,
                "h": 80.14, "l": 80.51}
ABLATION_FLAGS = ("use_stn", "use_enc", "use_dec", "use_dc", "use_dd", "use_gadv")
# The health of a learned augmentation, from its aug/* metrics (docs/analysis.md). A G whose outputs lost
# their label (under the EMA teacher) or no longer depend on the input is a regulariser, not an augmentation.
HEALTHY_LABEL_KEPT = 0.9   # at the chosen checkpoint: at least this share of G(x) keep their label
HEALTHY_X_DIV = 0.5        # ... G(x) still varies with x (1 = as much as x does)
HEALTHY_Z_DIV = 0.01       # ... and with z (mean |G(x,z1) − G(x,z2)| in normalised units)
COLLAPSE_LABEL_KEPT = 0.5  # collapsed where most G(x) lost their label
COLLAPSE_X_DIV = 0.2       # ... or G(x) became nearly the same image for every x
COLLAPSE_EVALS = 2         # ... at this many evaluations in a row: label_kept is measured on 64 images under a
                           # teacher that is itself young early on, so one low reading alone is noise
# config keys that never tell two learned augmentations apart (split, bookkeeping, PBT-mutated values)
NOT_A_VARIANT = {"seed", "replicate", "data_dir", "download", "device", "preset", "g_checkpoint", "dataset",
                 "train_per_class", "val_per_class", "eval_every", "checkpoint_every", "compile", "amp",
                 *ABLATION_FLAGS}  # the players a trial trains are named by their Table 3 row instead
AUG_NAMES = {"none": "baseline (no augmentation)", "light": "light DA", "strong": "strong DA",
             "trivial": "TrivialAugmentWide", "learned": "learned (ours)"}


def table3_row(config: dict[str, Any]) -> str | None:
    """The Table 3 row letter whose players ``config`` trains (joint training only), or None."""
    if not config or not config.get("joint", True):
        return None
    if config.get("aug") == "none":
        return "a"
    if config.get("aug") != "learned":
        return None
    for letter, (_, flags) in TABLE3_ROWS.items():
        if flags["aug"] == "learned" and all(config.get(key) == flags[key] for key in ABLATION_FLAGS):
            return letter
    return None


def variant_labels(configs: dict[str, dict[str, Any]], mutated: set[str] = frozenset()) -> dict[str, str]:
    """trial_id → a name for its variant: for a learned augmentation, the config keys in which the run's
    learned trials differ (``base_aug=trivial, teacher_weight=1``), ignoring seeds, splits and the keys a
    PBT scheduler ``mutated`` (a population's members start from sampled values of those); for a hand-made
    one, the :data:`HAND_MADE_KEYS` in which the trials of that augmentation differ (``lr_c=0.002``); "" when
    every trial of its kind is configured alike. Trials are compared within their dataset and training-set
    size (the comparison's groups): a budget that differs only between datasets names no variant."""
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for trial_id, config in configs.items():
        if config.get("aug") in ("learned", *BASE_AUGS):
            key = (config.get("dataset"), config.get("train_per_class"), config.get("aug"))
            groups.setdefault(key, {})[trial_id] = config
    labels = {trial_id: "" for trial_id in configs}
    for (_, _, aug), trials in groups.items():
        learned = aug == "learned"
        candidates = {key for c in trials.values() for key in c} - NOT_A_VARIANT if learned else set(HAND_MADE_KEYS)
        keys = sorted(candidates - set(mutated))
        differing = [key for key in keys if len({_hashable(_value(c, key)) for c in trials.values()}) > 1]
        players = {t: _players(c) if learned else "" for t, c in trials.items()}
        name_players = len(set(players.values())) > 1
        for trial_id, config in trials.items():
            tokens = [players[trial_id]] if name_players and players[trial_id] else []
            tokens += [f"{key}={_short(_value(config, key))}" for key in differing]
            labels[trial_id] = ", ".join(tokens)
    return labels


def _sampled_keys(configs: dict[str, dict[str, Any]]) -> set[str]:
    """Float keys of MUTABLE_HPARAMS whose value differs in every trial of a population (more than two
    trials): sampled at random, not a variant. A grid's values repeat across seeds."""
    learned = [c for c in configs.values() if c.get("aug") == "learned"]
    if len(learned) < 3:
        return set()
    return {key for key in MUTABLE_HPARAMS if len({c.get(key) for c in learned}) == len(learned)}


def _players(config: dict[str, Any]) -> str:
    """"" for all players (Table 3 row l), ``Table 3 row b`` for another row, else the players left out."""
    row = table3_row(config)
    if row == "l":
        return ""
    if row is not None:
        return f"Table 3 row {row}"
    return "without " + "/".join(flag.removeprefix("use_").upper() for flag in ABLATION_FLAGS
                                 if config.get(flag) is False)


def _value(config: dict[str, Any], key: str) -> Any:
    """``config[key]``; for a key removed since (only logged where it trained something) that a config lacks,
    the value at which it did nothing, which that trial trained with."""
    return config[key] if key in config else REMOVED_KEYS.get(key, (None,))[0]


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, (list, dict)) else repr(value)


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def health(run: RunData, best_iterations: dict[str, int]) -> pd.DataFrame:
    """Per trial with a generator: the aug/* values at its chosen (best-validation) iteration, whether G is
    healthy there, and the epoch at which it first collapsed: the first of ``COLLAPSE_EVALS`` evaluations in a
    row below the collapse thresholds (NaN if never)."""
    rows = []
    metrics = run.metrics
    for trial_id, frame in metrics.groupby(PARTITION_KEY, sort=True, observed=True):
        if "aug/label_kept" not in frame or frame["aug/label_kept"].isna().all():
            continue
        frame = frame.dropna(subset=["aug/label_kept"])
        low = ((frame["aug/label_kept"] < COLLAPSE_LABEL_KEPT) | (frame["aug/x_div"] < COLLAPSE_X_DIV)).to_numpy()
        streak_start = [i for i in range(len(low) - COLLAPSE_EVALS + 1) if low[i:i + COLLAPSE_EVALS].all()]
        at = frame[frame["training_iteration"] == best_iterations.get(str(trial_id), -1)]
        at = at.iloc[-1] if not at.empty else frame.iloc[-1]
        kept, x_div, z_div = (float(at[name]) for name in ("aug/label_kept", "aug/x_div", "aug/z_div"))
        rows.append({PARTITION_KEY: str(trial_id), "label_kept_at_best": kept, "x_div_at_best": x_div,
                     "z_div_at_best": z_div,
                     "healthy": bool(kept >= HEALTHY_LABEL_KEPT and x_div >= HEALTHY_X_DIV and z_div >= HEALTHY_Z_DIV),
                     "collapsed_epoch": float(frame["epoch"].iloc[streak_start[0]]) if streak_start else math.nan})
    return pd.DataFrame(rows, columns=[PARTITION_KEY, "label_kept_at_best", "x_div_at_best", "z_div_at_best",
                                       "healthy", "collapsed_epoch"])


def trial_summary(run: RunData, metric: str = "acc/val") -> pd.DataFrame:
    """One row per trial: its configuration keys that matter for grouping (and its learned-augmentation
    ``variant``), its best-``metric`` row (``best_acc_val``, ``test_at_best``, ``best_iteration``,
    ``best_epoch``), its last row and size, whether it ``finished`` (reached its ``epochs``: the schedulers
    stop no trial early, so one that did not is still running, failed or was interrupted), and G's health at
    the best row."""
    configs = config_dicts(run)
    # a PBT run's members start from sampled values of every searched key; they are one variant
    variants = variant_labels(configs, mutated=set(run.events["key"]) | _sampled_keys(configs))
    metrics = run.metrics
    grouped = metrics.groupby(PARTITION_KEY, sort=True, observed=True)
    sizes = grouped.size()
    last = grouped.tail(1).set_index(PARTITION_KEY)
    late = second_half_test(metrics)
    best = best_rows(run, metric).set_index(PARTITION_KEY)
    rows = []
    for trial_id, config in configs.items():
        row: dict[str, Any] = {
            PARTITION_KEY: trial_id,
            "dataset": config.get("dataset"), "aug": config.get("aug"), "variant": variants[trial_id],
            "train_per_class": config.get("train_per_class"), "seed": config.get("seed"),
            "replicate": config.get("replicate", 0),
            "joint": config.get("joint"), "g_checkpoint": config.get("g_checkpoint") or None,
            "table3_row": table3_row(config),
            "rows": int(sizes.get(trial_id, 0)),
        }
        if trial_id in last.index:
            row.update(last_iteration=last.at[trial_id, "training_iteration"], last_epoch=last.at[trial_id, "epoch"],
                       last_acc_test=last.at[trial_id, "acc/test"], late_acc_test=late.get(trial_id, math.nan))
        row["finished"] = bool(not _missing(row.get("last_epoch")) and config.get("epochs") is not None
                               and row["last_epoch"] >= config["epochs"])
        if trial_id in best.index:
            row.update(best_acc_val=best.at[trial_id, metric], test_at_best=best.at[trial_id, "acc/test"],
                       best_iteration=best.at[trial_id, "training_iteration"], best_epoch=best.at[trial_id, "epoch"])
        rows.append(row)
    columns = [PARTITION_KEY, "dataset", "aug", "variant", "train_per_class", "seed", "replicate", "joint",
               "g_checkpoint", "table3_row", "rows", "last_iteration", "last_epoch", "finished", "last_acc_test",
               "late_acc_test", "best_acc_val", "test_at_best", "best_iteration", "best_epoch"]
    summary = pd.DataFrame(rows, columns=columns)
    best_iterations = {t: int(i) for t, i in zip(summary[PARTITION_KEY], summary["best_iteration"]) if not _missing(i)}
    return summary.merge(health(run, best_iterations), on=PARTITION_KEY, how="left")


def second_half_test(metrics: pd.DataFrame) -> pd.Series:
    """Per trial, the mean ``acc/test`` of its reports in the second half of the epochs it ran (epoch >
    last epoch / 2): a score that picks no checkpoint, so the validation noise that decides a best-``acc/val``
    pick does not enter it."""
    scored = metrics.dropna(subset=["acc/test"])
    if scored.empty:
        return pd.Series(dtype=float)
    half = scored.groupby(PARTITION_KEY, observed=True)["epoch"].transform("max") / 2.0
    late = scored[scored["epoch"] > half]
    return late.groupby(PARTITION_KEY, observed=True)["acc/test"].mean().rename(index=str)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna() * 100.0
    mean = float(values.mean()) if len(values) else math.nan
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def _is_joint_scored(row: pd.Series) -> bool:
    """A trial with a score whose C trained jointly (a baseline, or a learned G trained with C)."""
    return not (_missing(row["joint"]) or not bool(row["joint"]) or _missing(row["test_at_best"])
                or _missing(row["aug"]))


def _is_table1_trial(row: pd.Series) -> bool:
    """Table 1 compares augmentations with the full method: joint training, and for ``learned`` all
    players (Table 3 row l)."""
    return _is_joint_scored(row) and (row["aug"] != "learned" or row["table3_row"] == "l")


def table1(summary: pd.DataFrame) -> pd.DataFrame:
    """Dataset × training-set size × augmentation (× learned variant): trials, acc/test mean ± std (%), the
    paper's number."""
    chosen = summary[summary.apply(_is_table1_trial, axis=1)] if not summary.empty else summary
    rows = []
    for (dataset, per_class, aug, variant), group in chosen.groupby(
            ["dataset", "train_per_class", "aug", "variant"], sort=True):
        mean, std = _mean_std(group["test_at_best"])
        paper, source = _table1_reference(dataset, int(per_class), aug)
        rows.append({"dataset": dataset, "train_per_class": int(per_class), "aug": aug, "variant": variant,
                     "trials": len(group), "acc_test_mean": mean, "acc_test_std": std, "paper": paper,
                     "paper_source": source})
    return pd.DataFrame(rows, columns=["dataset", "train_per_class", "aug", "variant", "trials", "acc_test_mean",
                                       "acc_test_std", "paper", "paper_source"])


# the scores of a trial the comparison sets side by side: the protocol's, then two that choose no checkpoint
SCORES = {"": "test_at_best", "_last": "last_acc_test", "_late": "late_acc_test"}


def _error_change(mean: float, best: float) -> float:
    """Relative change of the test error (100 − ``mean``) against the error of ``best`` (accuracies in %)."""
    best_error = 100.0 - best
    return ((100.0 - mean) - best_error) / best_error if best_error > 0 else math.nan


BOOTSTRAP_RESAMPLES = 2000  # of the splits, for the error change's 95 % interval (fixed RNG seed: reproducible)


def paired_by_split(group: pd.DataFrame, best: pd.DataFrame, score: str = "test_at_best") -> dict[str, Any]:
    """``group`` against the best hand-made augmentation's trials ``best`` on the splits both have (a split
    is a ``seed``; replicates of one split are averaged first): how many splits, on how many ``group`` is
    ahead and behind, and a 95 % percentile bootstrap interval of the relative test-error change, the splits
    resampled with replacement and each resample's change taken from its mean errors, paired (a split's two
    scores are drawn together). With fewer than two splits there is no interval (NaN)."""
    ours = group.dropna(subset=[score]).groupby("seed")[score].mean() * 100.0
    theirs = best.dropna(subset=[score]).groupby("seed")[score].mean() * 100.0
    splits = ours.index.intersection(theirs.index)
    ours_error, theirs_error = 100.0 - ours[splits].to_numpy(), 100.0 - theirs[splits].to_numpy()
    low = high = math.nan
    if len(splits) >= 2:
        draws = np.random.default_rng(0).integers(0, len(splits), size=(BOOTSTRAP_RESAMPLES, len(splits)))
        base = theirs_error[draws].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            changes = (ours_error[draws].mean(axis=1) - base) / base
        if np.isfinite(changes).all():
            low, high = (float(q) for q in np.percentile(changes, [2.5, 97.5]))
    return {"paired_splits": len(splits), "ahead_splits": int((ours_error < theirs_error).sum()),
            "behind_splits": int((ours_error > theirs_error).sum()), "error_change_ci_low": low,
            "error_change_ci_high": high}


def comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Learned against hand-made augmentation on the same split and budget: per dataset and training-set
    size with at least one baseline and one learned trial, every augmentation (each learned variant on
    its own row) with acc/test mean ± std (%), its test error's relative change against the best hand-made
    augmentation of that group (negative: less error), how many of its trials have not finished (their
    scores are of a shorter training) and, for learned ones, how many trials had a healthy G at their
    chosen checkpoint and how many collapsed. Beside the score, three views of how much it owes to the
    checkpoint choice: the mean best ``acc/val`` that chose it (``acc_val_mean``), the ``acc/test`` of the
    trials' last report (``acc_test_last_*``) and its mean over the second half of training
    (``acc_test_late_*``), each of the two with its own error change against the hand-made augmentation
    that is best by the same measure (``error_change_last`` / ``error_change_late``). Split by split against
    the best hand-made augmentation (:func:`paired_by_split`): ``paired_splits``, ``ahead_splits``,
    ``behind_splits`` and the 95 % bootstrap interval of the error change, ``error_change_ci_low`` /
    ``_high``: is the change larger than what the choice of splits moves it by?"""
    columns = ["dataset", "train_per_class", "aug", "variant", "trials", "acc_test_mean", "acc_test_std",
               "error_change_vs_best_hand_made", "error_change_ci_low", "error_change_ci_high", "paired_splits",
               "ahead_splits", "behind_splits", "best_hand_made", "best_hand_made_variant", "acc_val_mean",
               "acc_test_last_mean", "acc_test_last_std", "error_change_last", "acc_test_late_mean",
               "acc_test_late_std", "error_change_late", "unfinished_trials", "healthy_trials", "collapsed_trials"]
    chosen = summary[summary.apply(_is_joint_scored, axis=1)] if not summary.empty else summary
    rows = []
    for (dataset, per_class), block in chosen.groupby(["dataset", "train_per_class"], sort=True):
        baselines = block[block["aug"].isin(BASE_AUGS)]
        learned = block[block["aug"] == "learned"]
        if baselines.empty or learned.empty:
            continue
        # per score: each hand-made augmentation's mean (each of its variants apart), the best, and its name
        best: dict[str, tuple[float, tuple[str, str]]] = {}
        for suffix, score in SCORES.items():
            means = {name: _mean_std(group[score])[0] for name, group in baselines.groupby(["aug", "variant"])}
            top = max(means, key=lambda name: -math.inf if math.isnan(means[name]) else means[name])
            best[suffix] = (means[top], top)
        best_aug, best_variant = best[""][1]
        best_trials = baselines[(baselines["aug"] == best_aug) & (baselines["variant"] == best_variant)]
        for (aug, variant), group in block.groupby(["aug", "variant"], sort=True):
            row: dict[str, Any] = {"dataset": dataset, "train_per_class": int(per_class), "aug": aug,
                                   "variant": variant, "trials": len(group), "best_hand_made": best_aug,
                                   "best_hand_made_variant": best_variant,
                                   "acc_val_mean": _mean_std(group["best_acc_val"])[0]}
            for suffix, score in SCORES.items():
                mean, std = _mean_std(group[score])
                row.update({f"acc_test{suffix}_mean": mean, f"acc_test{suffix}_std": std,
                            f"error_change{suffix or '_vs_best_hand_made'}": _error_change(mean, best[suffix][0])})
            row.update(paired_by_split(group, best_trials))
            is_learned = aug == "learned"
            row.update({
                "unfinished_trials": int((~group["finished"].fillna(False).astype(bool)).sum()),
                "healthy_trials": int(group["healthy"].fillna(False).astype(bool).sum()) if is_learned else None,
                "collapsed_trials": int(group["collapsed_epoch"].notna().sum()) if is_learned else None,
            })
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["dataset", "train_per_class", "acc_test_mean"], ascending=[True, True, False],
                             kind="stable").reset_index(drop=True)


def comparison_headline(table: pd.DataFrame) -> list[str]:
    """One line per group of :func:`comparison`: the best learned variant against the best hand-made
    augmentation, and whether its G was healthy (a collapsed G is named as such, not as a win); a group
    with trials that have not finished says how many."""
    lines = []
    for (dataset, per_class), block in table.groupby(["dataset", "train_per_class"], sort=True):
        learned = block[block["aug"] == "learned"]
        best = block[(block["aug"] == block["best_hand_made"].iloc[0])
                     & (block["variant"] == block["best_hand_made_variant"].iloc[0])].iloc[0]
        top = learned.iloc[0]
        name = "learned" + (f" ({top['variant']})" if top["variant"] else "")
        best_name = best["aug"] + (f" ({best['variant']})" if best["variant"] else "")
        trials, healthy, collapsed = (int(top[key]) for key in ("trials", "healthy_trials", "collapsed_trials"))
        state = ("healthy G in every trial" if healthy == trials else
                 f"UNHEALTHY G: {trials - healthy} of {trials} trial(s) not healthy at their chosen checkpoint, "
                 f"{collapsed} collapsed — a regulariser, not a learned augmentation")
        lines.append(f"{dataset}, {per_class}/class: {name} "
                     f"{format_mean_std(top['acc_test_mean'], top['acc_test_std'])}"
                     f" vs best hand-made {best_name} {format_mean_std(best['acc_test_mean'], best['acc_test_std'])}"
                     f" → {_verdict(top['error_change_vs_best_hand_made'])} test error{_by_split(top)} ({state}); "
                     f"choosing no checkpoint: {_verdict(top['error_change_last'])} at the last report, "
                     f"{_verdict(top['error_change_late'])} over the second half" + _unfinished(block))
    return lines


def _by_split(row: pd.Series) -> str:
    """`` [95 % CI -14 % to -2 %; ahead on 14 of 24 split(s), behind on 9]``; without an interval (one split)
    only the counts."""
    if not row["paired_splits"]:
        return ""
    interval = (f"95 % CI {_percent(row['error_change_ci_low'])} to {_percent(row['error_change_ci_high'])}; "
                if math.isfinite(row["error_change_ci_low"]) else "")
    return (f" [{interval}ahead on {int(row['ahead_splits'])} of {int(row['paired_splits'])} split(s), behind on "
            f"{int(row['behind_splits'])}]")


def _percent(change: float, digits: int = 0) -> str:
    return f"{change * 100:+.{digits}f} %"


def _verdict(change: float) -> str:
    """``12 % less`` / ``3 % more``; a change that rounds to 0 % is neither less nor more error, and one
    against a hand-made augmentation without error (NaN) has no relative size."""
    if not math.isfinite(change):
        return "an undefined change in"
    if round(abs(change) * 100) == 0:
        return "0 % change in"
    return f"{abs(change) * 100:.0f} % {'less' if change < 0 else 'more'}"


def _unfinished(block: pd.DataFrame) -> str:
    count, total = int(block["unfinished_trials"].sum()), int(block["trials"].sum())
    return f"; {count} of {total} trial(s) not finished: a partial result" if count else ""


def _table1_reference(dataset: str, per_class: int, aug: str) -> tuple[float, str]:
    if dataset == "mnist5k" and per_class == PAPER_TRAIN_PER_CLASS["mnist"] and ("mnist", aug) in PAPER_TABLE1:
        # the same protocol on a 5,000-image subset: its test split is not the official test set
        return PAPER_TABLE1[("mnist", aug)], "paper Table 1, MNIST (official test set)"
    if dataset in PAPER_TRAIN_PER_CLASS and per_class == PAPER_TRAIN_PER_CLASS[dataset]:
        if (dataset, aug) in PAPER_TABLE1:
            return PAPER_TABLE1[(dataset, aug)], "paper Table 1"
    if dataset == "digits" and per_class == DIGITS_REFERENCE_TRAIN_PER_CLASS and aug in DIGITS_REFERENCE:
        return DIGITS_REFERENCE[aug][0], "digits baseline (reference runs)"
    return math.nan, ""


def table3(summary: pd.DataFrame) -> pd.DataFrame:
    """Ablation rows a..l per dataset and training-set size, with the paper's CIFAR-10/4000 numbers.
    Empty unless the run holds at least one ablation row (b..h)."""
    chosen = summary[summary["table3_row"].notna() & summary["test_at_best"].notna()] if not summary.empty \
        else summary
    columns = ["dataset", "train_per_class", "row", "players", "trials", "acc_test_mean", "acc_test_std", "paper"]
    ablations = set(TABLE3_ROWS) - {"a", "l"}
    if chosen.empty or not ablations & set(chosen["table3_row"]):
        return pd.DataFrame(columns=columns)
    order = list(TABLE3_ROWS)
    rows = []
    for (dataset, per_class), block in chosen.groupby(["dataset", "train_per_class"], sort=True):
        for letter, group in sorted(block.groupby("table3_row"), key=lambda item: order.index(item[0])):
            mean, std = _mean_std(group["test_at_best"])
            paper = PAPER_TABLE3[letter] if (dataset, int(per_class)) == ("cifar10", 400) else math.nan
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


# ---------------------------------------------------------------------- output
def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    if _missing(mean):
        return "—"
    return f"{mean:.{digits}f}" if _missing(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cell(value: Any) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def _aug_name(aug: str, variant: str) -> str:
    return AUG_NAMES.get(aug, aug) + (f" [{variant}]" if variant else "")


def _changes(values: pd.Series) -> list[str]:
    return [_percent(c, 1) if not _missing(c) else "—" for c in values]


def display_comparison(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": table["dataset"], "train/class": table["train_per_class"],
        "augmentation": [_aug_name(a, v) for a, v in zip(table["aug"], table["variant"])], "trials": table["trials"],
        "acc/test % (mean ± std)": [format_mean_std(m, s)
                                    for m, s in zip(table["acc_test_mean"], table["acc_test_std"])],
        "test error vs best hand-made": _changes(table["error_change_vs_best_hand_made"]),
        "95 % CI over splits": [f"{_percent(low, 1)} to {_percent(high, 1)}" if math.isfinite(low) else "—"
                                for low, high in zip(table["error_change_ci_low"], table["error_change_ci_high"])],
        "splits ahead / behind": [f"{int(a)} / {int(b)} of {int(n)}" if n else "—" for a, b, n in
                                  zip(table["ahead_splits"], table["behind_splits"], table["paired_splits"])],
        "best acc/val %": [format_mean_std(v, math.nan) for v in table["acc_val_mean"]],
        "acc/test % at the last report": [format_mean_std(m, s) for m, s in
                                          zip(table["acc_test_last_mean"], table["acc_test_last_std"])],
        "test error vs best hand-made at the last report": _changes(table["error_change_last"]),
        "acc/test % over the second half": [format_mean_std(m, s) for m, s in
                                            zip(table["acc_test_late_mean"], table["acc_test_late_std"])],
        "test error vs best hand-made over the second half": _changes(table["error_change_late"]),
        "healthy G": [f"{int(h)}/{int(n)}" if not _missing(h) else "—"
                      for h, n in zip(table["healthy_trials"], table["trials"])],
        "collapsed": [int(c) if not _missing(c) else "—" for c in table["collapsed_trials"]],
        "unfinished": table["unfinished_trials"],
    })


def display_table1(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 for reading: ``mean ± std`` strings and the reference beside them."""
    return pd.DataFrame({
        "dataset": table["dataset"], "train/class": table["train_per_class"],
        "augmentation": [_aug_name(a, v) for a, v in zip(table["aug"], table["variant"])], "trials": table["trials"],
        "acc/test % (mean ± std)": [format_mean_std(m, s)
                                    for m, s in zip(table["acc_test_mean"], table["acc_test_std"])],
        "reference %": [_cell(p) if not _missing(p) else "—" for p in table["paper"]],
        "reference from": [s or "—" for s in table["paper_source"]],
    })


def display_table3(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": table["dataset"], "train/class": table["train_per_class"], "row": table["row"],
        "players": table["players"], "trials": table["trials"],
        "acc/test % (mean ± std)": [format_mean_std(m, s)
                                    for m, s in zip(table["acc_test_mean"], table["acc_test_std"])],
        "paper %": [_cell(p) for p in table["paper"]],
    })


def write_table(frame: pd.DataFrame, display: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """``stem.csv`` (numbers, full precision) and ``stem.md`` (for reading)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    frame.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(display))
    return [csv_path, md_path]
