"""Learned against hand-made augmentation on the same split and budget, with statistics that a choice of
splits, a checkpoint or a baseline cannot flatter.

* The groups: dataset × images per class holding at least one hand-made trial (any ``aug`` but learned:
  none, light, strong, trivial and every name added since) and one learned trial.
* One learned result per split (:func:`one_result_per_split`): a PBT population's members (or a random
  search's samples) on one split are one result, the member chosen on validation, not their mean.
* The best hand-made augmentation (:func:`best_hand_made`) is chosen on validation among every hand-made
  augmentation of the group, never on test; every scores column compares with that one.
* Split by split against it (:func:`paired_by_split`): ahead / behind counts, the probability of
  improvement (Agarwal et al. 2021) and paired bootstrap intervals; a learned result whose G was not
  healthy at its chosen checkpoint counts as a loss on its split, never as a win.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from raydaug.allowed import MAGNITUDE_KEYS
from raydaug.analysis.load import PARTITION_KEY
from raydaug.analysis.render import format_mean_std, percent
from raydaug.analysis.scores import SCORES, is_joint_scored, mean_std

LEARNED = "learned"
# the keys that change what a hand-made run trains, besides its split (dataset, train/val_per_class, seed,
# replicate) and the run's bookkeeping: every other key only concerns G and the discriminators. Two hand-made
# runs of one augmentation are told apart by these keys only.
HAND_MADE_KEYS = ("aug", "image_size", "classifier", "batch_size", "epochs", "lr_c", "weight_decay_c", "eval_ema",
                  "teacher_decay", "randaugment_ops", "randaugment_magnitude", "augmix_severity", "elastic_alpha",
                  "elastic_sigma")


def hand_made_keys(aug: str) -> tuple[str, ...]:
    """The keys that tell two runs of hand-made augmentation ``aug`` apart: :data:`HAND_MADE_KEYS` without the
    magnitudes of the other augmentations (an AugMix run does not read RandAugment's magnitude)."""
    others = {key for name, keys in MAGNITUDE_KEYS.items() if name != aug for key in keys}
    return tuple(key for key in HAND_MADE_KEYS if key not in others)


BOOTSTRAP_RESAMPLES = 2000  # of the splits, for the 95 % intervals (fixed RNG seed: reproducible)
SPLIT = ["dataset", "train_per_class", "aug", "variant", "seed", "replicate"]
RANK_DECIMALS = 9  # accuracies are ratios of counts: closer than this is the order of a float sum, a tie
COLUMNS = ["dataset", "train_per_class", "aug", "variant", "trials", "members", "acc_test_mean", "acc_test_std",
           "error_change_vs_best_hand_made", "error_change_ci_low", "error_change_ci_high", "paired_splits",
           "ahead_splits", "behind_splits", "unhealthy_splits", "probability_of_improvement",
           "probability_of_improvement_ci_low", "probability_of_improvement_ci_high", "best_hand_made",
           "best_hand_made_variant", "hand_made_candidates", "acc_val_mean", "acc_test_last_mean",
           "acc_test_last_std", "error_change_last", "acc_test_late_mean", "acc_test_late_std", "error_change_late",
           "unfinished_trials", "healthy_trials", "collapsed_trials"]


def is_hand_made(aug: Any) -> bool:
    """Any augmentation but the learned one (a trial without a logged config has none)."""
    return isinstance(aug, str) and aug != LEARNED


def one_result_per_split(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with one learned trial per split and variant: where several learned trials of one variant
    share a split (``seed`` and ``replicate``) — a PBT population, whose members start from sampled values
    and copy each other, or a random search — the result is the member that PBT and validation pick, the
    trial with the best validation score at its chosen checkpoint (``best_acc_val``); ties go to the member
    with the higher mean acc/val over its last reports (``final_acc_val``: how PBT ranks it at the end), then
    to the later checkpoint (``best_iteration``), then to the smaller trial id. Never the mean of the members:
    that would count the ones PBT discarded. A variant with one trial per split (a grid over seeds) and every
    hand-made trial stay as they are."""
    learned = summary["aug"] == LEARNED
    members = summary[learned]
    ranks = members.assign(val=members["best_acc_val"].round(RANK_DECIMALS),
                           final=members["final_acc_val"].round(RANK_DECIMALS))
    ranks = ranks.sort_values(["val", "final", "best_iteration", PARTITION_KEY], ascending=[False, False, False, True],
                              kind="stable", na_position="last")
    picked = members.loc[ranks.drop_duplicates(SPLIT, keep="first").index]
    return pd.concat([summary[~learned], picked]).sort_index()


def best_hand_made(hand_made: pd.DataFrame) -> tuple[str, str]:
    """``(aug, variant)`` of the hand-made augmentation with the highest mean best ``acc/val`` over its
    trials; ties go to the higher mean ``final_acc_val``, then to the name (aug, then variant). Chosen on
    validation: choosing on test would pick the baseline whose test split happened to favour it."""
    means = hand_made.groupby(["aug", "variant"], sort=True).agg(val=("best_acc_val", "mean"),
                                                                 final=("final_acc_val", "mean"))
    means = means.round(RANK_DECIMALS).reset_index()
    ranked = means.sort_values(["val", "final", "aug", "variant"], ascending=[False, False, True, True],
                               kind="stable", na_position="last")
    return str(ranked["aug"].iloc[0]), str(ranked["variant"].iloc[0])


def _error_change(mean: float, best: float) -> float:
    """Relative change of the test error (100 − ``mean``) against the error of ``best`` (accuracies in %)."""
    best_error = 100.0 - best
    return ((100.0 - mean) - best_error) / best_error if best_error > 0 else math.nan


def _split_means(trials: pd.DataFrame, score: str) -> pd.Series:
    """Mean ``score`` (%) per split (``seed``), the replicates of a split averaged first."""
    return trials.dropna(subset=[score]).groupby("seed")[score].mean() * 100.0


def _on_shared_splits(group: pd.DataFrame, best: pd.DataFrame, score: str) -> tuple[float, float]:
    """Mean ``score`` (%) of ``group`` and of ``best`` over the splits both have, the point that
    :func:`paired_by_split`'s interval is around; over all of each one's trials where they share no split."""
    ours, theirs = _split_means(group, score), _split_means(best, score)
    shared = ours.index.intersection(theirs.index)
    if len(shared):
        return float(ours[shared].mean()), float(theirs[shared].mean())
    return mean_std(group[score])[0], mean_std(best[score])[0]


def paired_by_split(group: pd.DataFrame, best: pd.DataFrame, score: str = "test_at_best") -> dict[str, Any]:
    """``group`` against the best hand-made augmentation's trials ``best`` on the splits both have (a split
    is a ``seed``; replicates of one split are averaged first).

    Per split, a win (1) where ``group``'s error is lower, level (½) where equal, a loss (0) where higher —
    and a loss wherever a learned trial of that split had an unhealthy G (or no health reading) at its chosen
    checkpoint, whatever its error: a regulariser's score is no win for a learned augmentation. Returns how
    many splits were paired, won (``ahead_splits``), lost (``behind_splits``; ``unhealthy_splits`` of them
    for their G), the probability of improvement (the mean of the split outcomes, Agarwal et al. 2021) and,
    from the same 2,000 resamples of the splits (with replacement, paired: a split's two scores are drawn
    together), 95 % percentile bootstrap intervals of it and of the relative test-error change (each
    resample's change from its mean errors). With fewer than two splits there is no interval (NaN)."""
    ours_trials = group.dropna(subset=[score])
    ours, theirs = _split_means(group, score), _split_means(best, score)
    sound = ((ours_trials["aug"] != LEARNED) | ours_trials["healthy"].eq(True)).groupby(ours_trials["seed"]).all()
    splits = ours.index.intersection(theirs.index)
    ours_error, theirs_error = 100.0 - ours[splits].to_numpy(), 100.0 - theirs[splits].to_numpy()
    healthy = sound[splits].to_numpy(dtype=bool)
    level = np.isclose(ours_error, theirs_error, rtol=0.0, atol=1e-9)
    outcome = np.where(~healthy, 0.0, np.where(level, 0.5, (ours_error < theirs_error).astype(float)))
    low = high = p_low = p_high = math.nan
    if len(splits) >= 2:
        draws = np.random.default_rng(0).integers(0, len(splits), size=(BOOTSTRAP_RESAMPLES, len(splits)))
        base = theirs_error[draws].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            changes = (ours_error[draws].mean(axis=1) - base) / base
        if np.isfinite(changes).all():
            low, high = (float(q) for q in np.percentile(changes, [2.5, 97.5]))
        p_low, p_high = (float(q) for q in np.percentile(outcome[draws].mean(axis=1), [2.5, 97.5]))
    return {"paired_splits": len(splits), "ahead_splits": int((outcome == 1.0).sum()),
            "behind_splits": int((outcome == 0.0).sum()), "unhealthy_splits": int((~healthy).sum()),
            "probability_of_improvement": float(outcome.mean()) if len(splits) else math.nan,
            "probability_of_improvement_ci_low": p_low, "probability_of_improvement_ci_high": p_high,
            "error_change_ci_low": low, "error_change_ci_high": high}


def comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and training-set size with at least one hand-made and one learned trial: every
    augmentation (each variant on its own row) against the best hand-made one of the group
    (:func:`best_hand_made`, chosen on validation; which: ``best_hand_made`` and ``best_hand_made_variant``,
    among ``hand_made_candidates``). A row's ``trials`` are its results (:func:`one_result_per_split`: one
    learned trial per split) out of its ``members``; over them: acc/test mean ± std (%) and its test error's
    relative change against the best hand-made augmentation (negative: less error) on the splits both have
    (:func:`_on_shared_splits`: a row that covers some splits is not set against the others), how many results
    had a healthy G at their chosen checkpoint and how many collapsed; ``unfinished_trials`` counts the members
    that have not finished (their scores are of a shorter training). Beside the score, three views of how
    much it owes to the checkpoint choice: the mean best ``acc/val`` that chose it (``acc_val_mean``), the
    ``acc/test`` of the last report (``acc_test_last_*``) and its mean over the second half of training
    (``acc_test_late_*``), each with its error change against the same best hand-made augmentation
    (``error_change_last`` / ``error_change_late``). Split by split against it: :func:`paired_by_split`."""
    chosen = summary[summary.apply(is_joint_scored, axis=1)] if not summary.empty else summary
    rows = []
    for (dataset, per_class), block in chosen.groupby(["dataset", "train_per_class"], sort=True):
        hand_made = block[block["aug"].map(is_hand_made)]
        if hand_made.empty or not (block["aug"] == LEARNED).any():
            continue
        best_aug, best_variant = best_hand_made(hand_made)
        best_trials = hand_made[(hand_made["aug"] == best_aug) & (hand_made["variant"] == best_variant)]
        candidates = len(hand_made.groupby(["aug", "variant"]))
        for (aug, variant), group in one_result_per_split(block).groupby(["aug", "variant"], sort=True):
            members = block[(block["aug"] == aug) & (block["variant"] == variant)]
            row: dict[str, Any] = {"dataset": dataset, "train_per_class": int(per_class), "aug": aug,
                                   "variant": variant, "trials": len(group), "members": len(members),
                                   "best_hand_made": best_aug, "best_hand_made_variant": best_variant,
                                   "hand_made_candidates": candidates,
                                   "acc_val_mean": mean_std(group["best_acc_val"])[0]}
            for suffix, score in SCORES.items():
                mean, std = mean_std(group[score])
                row.update({f"acc_test{suffix}_mean": mean, f"acc_test{suffix}_std": std,
                            f"error_change{suffix or '_vs_best_hand_made'}": _error_change(
                                *_on_shared_splits(group, best_trials, score))})
            row.update(paired_by_split(group, best_trials))
            is_learned = aug == LEARNED
            row.update({
                "unfinished_trials": int((~members["finished"].fillna(False).astype(bool)).sum()),
                "healthy_trials": int(group["healthy"].eq(True).sum()) if is_learned else None,
                "collapsed_trials": int(group["collapsed_epoch"].notna().sum()) if is_learned else None,
            })
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["dataset", "train_per_class", "acc_test_mean"], ascending=[True, True, False],
                             kind="stable").reset_index(drop=True)


def comparison_headline(table: pd.DataFrame) -> list[str]:
    """One line per group of :func:`comparison`: the learned variant best on validation against the best
    hand-made augmentation (also chosen on validation), split by split, and whether its G was healthy (a
    collapsed G is named as such, not as a win); a group with trials that have not finished says how many."""
    lines = []
    for (dataset, per_class), block in table.groupby(["dataset", "train_per_class"], sort=True):
        learned = block[block["aug"] == LEARNED].sort_values(["acc_val_mean", "variant"], ascending=[False, True],
                                                             kind="stable", na_position="last")
        best = block[(block["aug"] == block["best_hand_made"].iloc[0])
                     & (block["variant"] == block["best_hand_made_variant"].iloc[0])].iloc[0]
        top = learned.iloc[0]
        name = "learned" + (f" ({top['variant']})" if top["variant"] else "")
        best_name = best["aug"] + (f" ({best['variant']})" if best["variant"] else "")
        trials, healthy, collapsed = (int(top[key]) for key in ("trials", "healthy_trials", "collapsed_trials"))
        members = int(top["members"])
        picked = f" ({trials} of {members} trials: the acc/val-best on each split)" if members > trials else ""
        state = ("healthy G in every trial" if healthy == trials else
                 f"UNHEALTHY G: {trials - healthy} of {trials} trial(s) not healthy at their chosen checkpoint, "
                 f"{collapsed} collapsed — a regulariser, not a learned augmentation")
        lines.append(f"{dataset}, {per_class}/class: {name} "
                     f"{format_mean_std(top['acc_test_mean'], top['acc_test_std'])}{picked}"
                     f" vs best hand-made {best_name} {format_mean_std(best['acc_test_mean'], best['acc_test_std'])}"
                     f" (chosen on acc/val among {int(best['hand_made_candidates'])})"
                     f" → {_verdict(top['error_change_vs_best_hand_made'])} test error{_by_split(top)} ({state}); "
                     f"choosing no checkpoint: {_verdict(top['error_change_last'])} at the last report, "
                     f"{_verdict(top['error_change_late'])} over the second half" + _unfinished(block))
    return lines


def _by_split(row: pd.Series) -> str:
    """`` [95 % CI -14 % to -2 %; ahead on 14 of 24 split(s), behind on 9 (2 with an unhealthy G); probability
    of improvement 0.60 (95 % CI 0.40 to 0.79)]``; without intervals (one split) only the counts and the
    probability."""
    if not row["paired_splits"]:
        return ""
    interval = (f"95 % CI {percent(row['error_change_ci_low'])} to {percent(row['error_change_ci_high'])}; "
                if math.isfinite(row["error_change_ci_low"]) else "")
    unhealthy = f" ({int(row['unhealthy_splits'])} with an unhealthy G)" if row["unhealthy_splits"] else ""
    probability = f"probability of improvement {row['probability_of_improvement']:.2f}"
    if math.isfinite(row["probability_of_improvement_ci_low"]):
        probability += (f" (95 % CI {row['probability_of_improvement_ci_low']:.2f} to "
                        f"{row['probability_of_improvement_ci_high']:.2f})")
    return (f" [{interval}ahead on {int(row['ahead_splits'])} of {int(row['paired_splits'])} split(s), behind on "
            f"{int(row['behind_splits'])}{unhealthy}; {probability}]")


def _verdict(change: float) -> str:
    """``12 % less`` / ``3 % more``; a change that rounds to 0 % is neither less nor more error, and one
    against a hand-made augmentation without error (NaN) has no relative size."""
    if not math.isfinite(change):
        return "an undefined change in"
    if round(abs(change) * 100) == 0:
        return "0 % change in"
    return f"{abs(change) * 100:.0f} % {'less' if change < 0 else 'more'}"


def _unfinished(block: pd.DataFrame) -> str:
    count, total = int(block["unfinished_trials"].sum()), int(block["members"].sum())
    return f"; {count} of {total} trial(s) not finished: a partial result" if count else ""
