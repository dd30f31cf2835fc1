"""One row per trial (:func:`trial_summary`): the configuration keys that group it, its learned-augmentation
``variant``, its scores (:mod:`raydaug.analysis.scores`) and the health of its G at the chosen checkpoint."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from raydaug.analysis.comparison import LEARNED, hand_made_keys
from raydaug.analysis.load import PARTITION_KEY, RunData, best_rows, config_dicts
from raydaug.analysis.scores import missing
from raydaug.config import MUTABLE_HPARAMS
from raydaug.migrations import REMOVED_INERT
from raydaug.presets import TABLE3_ROWS

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
FINAL_REPORTS = 3  # final_acc_val: the mean acc/val of this many last reports (how PBT ranks a member at the end)
# config keys that never tell two learned augmentations apart (split, bookkeeping, PBT-mutated values)
NOT_A_VARIANT = {"seed", "replicate", "data_dir", "download", "device", "preset", "g_checkpoint", "dataset",
                 "train_per_class", "val_per_class", "eval_every", "checkpoint_every", "compile", "amp",
                 *ABLATION_FLAGS}  # the players a trial trains are named by their Table 3 row instead
# a value written with more significant digits than this was drawn from a search space, not typed in a grid
TYPED_DIGITS = 6


def table3_row(config: dict[str, Any]) -> str | None:
    """The Table 3 row letter whose players ``config`` trains (joint training only), or None."""
    if not config or not config.get("joint", True):
        return None
    if config.get("aug") == "none":
        return "a"
    if config.get("aug") != LEARNED:
        return None
    for letter, (_, flags) in TABLE3_ROWS.items():
        if flags["aug"] == LEARNED and all(config.get(key) == flags[key] for key in ABLATION_FLAGS):
            return letter
    return None


def variant_labels(configs: dict[str, dict[str, Any]], mutated: set[str] = frozenset()) -> dict[str, str]:
    """trial_id → a name for its variant: for a learned augmentation, the config keys in which the run's
    learned trials differ (``base_aug=trivial, teacher_weight=1``), ignoring seeds, splits, the keys a PBT
    scheduler ``mutated`` and the keys a search space sampled (:func:`sampled_keys`: a population's members
    start from sampled values of those, before any exploit is logged); for a hand-made one (any ``aug`` but
    learned), the keys of :func:`hand_made_keys` in which the trials of that augmentation differ (``lr_c=0.002``); ""
    when every trial of its kind is configured alike. Trials are compared within their dataset and
    training-set size (the comparison's groups): a budget that differs only between datasets names no
    variant."""
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for trial_id, config in configs.items():
        if config.get("aug") is not None:
            key = (config.get("dataset"), config.get("train_per_class"), config.get("aug"))
            groups.setdefault(key, {})[trial_id] = config
    labels = {trial_id: "" for trial_id in configs}
    for (_, _, aug), trials in groups.items():
        learned = aug == LEARNED
        if learned:
            candidates = {key for c in trials.values() for key in c} - NOT_A_VARIANT - sampled_keys(trials)
        else:
            candidates = set(hand_made_keys(aug))
        keys = sorted(candidates - set(mutated))
        differing = [key for key in keys if len({_hashable(_value(c, key)) for c in trials.values()}) > 1]
        players = {t: _players(c) if learned else "" for t, c in trials.items()}
        name_players = len(set(players.values())) > 1
        for trial_id, config in trials.items():
            tokens = [players[trial_id]] if name_players and players[trial_id] else []
            tokens += [f"{key}={_short(_value(config, key))}" for key in differing]
            labels[trial_id] = ", ".join(tokens)
    return labels


def sampled_keys(configs: dict[str, dict[str, Any]]) -> set[str]:
    """The keys of MUTABLE_HPARAMS that a search space drew at random for ``configs`` (the trials of one
    group): a float in every trial, a different one in each, each written with more than
    :data:`TYPED_DIGITS` significant digits (``tune.loguniform`` gives 0.10343314266900382, a grid the 0.1
    someone typed). That holds for a population of two from its first report, before any exploit (a
    two-member PBT population with quantile_fraction 0.25 never exploits at all), where no pbt_events say
    which keys PBT mutates; a one-seed sweep of typed values stays a set of variants."""
    if len(configs) < 2:
        return set()
    found = set()
    for key in MUTABLE_HPARAMS:
        values = [c.get(key) for c in configs.values()]
        if all(isinstance(v, float) and _drawn(v) for v in values) and len(set(values)) == len(values):
            found.add(key)
    return found


def _drawn(value: float) -> bool:
    return math.isfinite(value) and float(f"{value:.{TYPED_DIGITS}g}") != value


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
    return config[key] if key in config else REMOVED_INERT.get(key)


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
    ``best_epoch``), the mean acc/val of its last :data:`FINAL_REPORTS` reports (``final_acc_val``), its last
    row and size, whether it ``finished`` (reached its ``epochs``: the schedulers stop no trial early, so one
    that did not is still running, failed or was interrupted), and G's health at the best row."""
    configs = config_dicts(run)
    variants = variant_labels(configs, mutated=set(run.events["key"]))
    metrics = run.metrics
    grouped = metrics.groupby(PARTITION_KEY, sort=True, observed=True)
    sizes = grouped.size()
    last = grouped.tail(1).set_index(PARTITION_KEY)
    late = second_half_test(metrics)
    final = final_validation(metrics)
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
                       last_acc_test=last.at[trial_id, "acc/test"], late_acc_test=late.get(trial_id, math.nan),
                       final_acc_val=final.get(trial_id, math.nan))
        row["finished"] = bool(not missing(row.get("last_epoch")) and config.get("epochs") is not None
                               and row["last_epoch"] >= config["epochs"])
        if trial_id in best.index:
            row.update(best_acc_val=best.at[trial_id, metric], test_at_best=best.at[trial_id, "acc/test"],
                       best_iteration=best.at[trial_id, "training_iteration"], best_epoch=best.at[trial_id, "epoch"])
        rows.append(row)
    columns = [PARTITION_KEY, "dataset", "aug", "variant", "train_per_class", "seed", "replicate", "joint",
               "g_checkpoint", "table3_row", "rows", "last_iteration", "last_epoch", "finished", "last_acc_test",
               "late_acc_test", "best_acc_val", "final_acc_val", "test_at_best", "best_iteration", "best_epoch"]
    summary = pd.DataFrame(rows, columns=columns)
    best_iterations = {t: int(i) for t, i in zip(summary[PARTITION_KEY], summary["best_iteration"]) if not missing(i)}
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


def final_validation(metrics: pd.DataFrame) -> pd.Series:
    """Per trial, the mean ``acc/val`` of its last :data:`FINAL_REPORTS` reports: where a PBT population
    ranks a member at its end, and the tie-break of two equal best-``acc/val`` picks."""
    scored = metrics.dropna(subset=["acc/val"])
    if scored.empty:
        return pd.Series(dtype=float)
    final = scored.groupby(PARTITION_KEY, observed=True).tail(FINAL_REPORTS)
    return final.groupby(PARTITION_KEY, observed=True)["acc/val"].mean().rename(index=str)
