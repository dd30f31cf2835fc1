"""Curves as PNG (matplotlib's Agg canvas, no display needed): accuracy vs epoch per trial and per
group, Fig. 3 (accuracy vs training-set size), Fig. 4 (joint training vs C on frozen G snapshots) and
the augmentation's health metrics over time.

Every function returns the paths it wrote (an empty list when the run has nothing to plot).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from raydaug.analysis.load import PARTITION_KEY, RunData, config_dicts
from raydaug.analysis.summary import COLLAPSE_LABEL_KEPT, COLLAPSE_X_DIV, HEALTHY_LABEL_KEPT, HEALTHY_X_DIV, table3_row
from raydaug.analysis.tables import is_table1_trial

MAX_LEGEND = 12


def new_figure(columns: int, rows: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:  # epochs and iterations are whole numbers (a log scale set later replaces this)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure, axes


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def x_epoch(frame: pd.DataFrame) -> pd.Series:
    """The epoch of each row (the training_iteration where an older row has no epoch)."""
    epoch = frame["epoch"].astype("float64")
    return epoch.fillna(frame["training_iteration"].astype("float64"))


def group_label(config: dict[str, Any], variant: str = "") -> str:
    """A readable group name from the keys that define comparable trials (everything but the seed
    and PBT-mutated values), ending in the trial's ``variant`` (:func:`raydaug.analysis.summary.variant_labels`)
    where it has one, so two variants of one augmentation are two groups."""
    if not config:
        return "unknown config"
    label = f"{config.get('dataset')} · {config.get('aug')} · {config.get('train_per_class')}/class"
    if config.get("aug") == "learned":
        row = table3_row(config)
        if not config.get("joint", True):
            label += " · frozen G"
        elif row and row != "l":
            label += f" · Table 3 row {row}"
    tokens = [token for token in variant.split(", ") if token and token not in label]  # players named once
    return " · ".join([label, *tokens]) if tokens else label


def trial_groups(run: RunData, variants: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Group label → its trial ids; ``variants`` (trial id → variant, as in the trial summary) splits the
    variants of one augmentation."""
    variants = variants or {}
    groups: dict[str, list[str]] = {}
    for trial_id, config in config_dicts(run).items():
        groups.setdefault(group_label(config, variants.get(trial_id, "")), []).append(trial_id)
    return groups


MAX_POINTS = 1500  # per line: more is invisible at report resolution and slow to draw
PANEL_POINTS = 40_000  # per panel, shared by its lines (hundreds of trials)


def thin(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row (and the last) so a line has at most about ``max_points`` points."""
    if len(frame) <= max_points:
        return frame
    step = -(-len(frame) // max_points)
    keep = np.zeros(len(frame), dtype=bool)
    keep[::step] = True
    keep[-1] = True
    return frame[keep]


def _line_points(lines: int) -> int:
    return max(100, min(MAX_POINTS, PANEL_POINTS // max(1, lines)))


def _per_trial(run: RunData) -> dict[str, pd.DataFrame]:
    return {str(trial_id): frame for trial_id, frame in run.metrics.groupby(PARTITION_KEY, sort=True, observed=True)}


def _legend(axis: Any, count: int = 1) -> None:
    if 0 < count <= MAX_LEGEND and axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)


def accuracy_per_trial(run: RunData, out_dir: Path) -> list[Path]:
    """acc/val and acc/test vs epoch, one line per trial."""
    trials = _per_trial(run)
    figure, axes = new_figure(2)
    for column, axis in zip(("acc/val", "acc/test"), axes[0]):
        for trial_id, frame in trials.items():
            frame = thin(frame.dropna(subset=[column]), _line_points(len(trials)))
            if not frame.empty:
                axis.plot(x_epoch(frame), frame[column] * 100.0, lw=1, alpha=0.8, label=trial_id)
        axis.set(title=f"{column} per trial", xlabel="epoch", ylabel="accuracy %")
        axis.grid(alpha=0.3)
        _legend(axis, len(trials))
    return [save(figure, out_dir / "accuracy_per_trial.png")]


def group_curve(run: RunData, trial_ids: list[str], column: str) -> pd.DataFrame:
    """Mean and std (ddof = 1) of ``column`` (in %) across ``trial_ids`` at each epoch."""
    rows = run.metrics[run.metrics[PARTITION_KEY].isin(trial_ids)].dropna(subset=[column])
    if rows.empty:
        return pd.DataFrame(columns=["epoch", "mean", "std", "trials"])
    values = pd.DataFrame({"epoch": x_epoch(rows).to_numpy(), "value": rows[column].to_numpy() * 100.0})
    stats = values.groupby("epoch")["value"].agg(["mean", "std", "count"]).reset_index()
    return stats.rename(columns={"count": "trials"})


def accuracy_per_group(run: RunData, out_dir: Path, variants: dict[str, str] | None = None) -> list[Path]:
    """acc/val and acc/test vs epoch: mean over each group's trials (:func:`trial_groups`) with a ± std band."""
    groups = trial_groups(run, variants)
    figure, axes = new_figure(2)
    for column, axis in zip(("acc/val", "acc/test"), axes[0]):
        for label, ids in groups.items():
            stats = thin(group_curve(run, ids, column))
            if stats.empty:
                continue
            line, = axis.plot(stats["epoch"], stats["mean"], lw=1.5, label=f"{label} (n={len(ids)})")
            std = stats["std"].fillna(0.0)
            axis.fill_between(stats["epoch"], stats["mean"] - std, stats["mean"] + std, color=line.get_color(),
                              alpha=0.2)
        axis.set(title=f"{column}: mean ± std per group", xlabel="epoch", ylabel="accuracy %")
        axis.grid(alpha=0.3)
        _legend(axis, len(groups))
    return [save(figure, out_dir / "accuracy_per_group.png")]


def fig3_samples(summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Fig. 3: acc/test (at best acc/val) vs number of training images (train_per_class × 10), one line
    per augmentation and variant (the summary's ``variant``: two learning rates of one hand-made augmentation
    are two lines), one panel per dataset. Only when some dataset was run at several sizes."""
    chosen = summary[summary.apply(is_table1_trial, axis=1)] if not summary.empty else summary
    datasets = [d for d, block in chosen.groupby("dataset") if block["train_per_class"].nunique() > 1]
    if not datasets:
        return []
    figure, axes = new_figure(len(datasets))
    rows = []
    for dataset, axis in zip(datasets, axes[0]):
        block = chosen[chosen["dataset"] == dataset]
        lines = block.groupby(["aug", "variant"], sort=True)
        for (aug, variant), line in lines:
            stats = line.groupby("train_per_class")["test_at_best"].agg(["mean", "std", "count"]).reset_index()
            samples = stats["train_per_class"].astype(int) * 10
            axis.errorbar(samples, stats["mean"] * 100.0, yerr=stats["std"].fillna(0.0) * 100.0, marker="o",
                          capsize=3, label=f"{aug} ({variant})" if variant else aug)
            for s, m, sd, n in zip(samples, stats["mean"], stats["std"], stats["count"]):
                rows.append({"dataset": dataset, "aug": aug, "variant": variant, "train_samples": int(s),
                             "trials": int(n), "acc_test_mean": m * 100.0, "acc_test_std": sd * 100.0})
        axis.set(title=f"Fig. 3 — {dataset}", xlabel="training images", ylabel="test accuracy %", xscale="log")
        ticks = sorted(int(n) * 10 for n in block["train_per_class"].unique())
        axis.set_xticks(ticks, [str(tick) for tick in ticks])  # the sizes run, not the log scale's decades
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        _legend(axis, lines.ngroups)
    pd.DataFrame(rows).to_csv(out_dir / "fig3_samples.csv", index=False)
    return [save(figure, out_dir / "fig3_samples.png"), out_dir / "fig3_samples.csv"]


def snapshot_epoch(g_checkpoint: str, run_dir: str) -> float:
    """The epoch at which a frozen-G snapshot was taken: from a Tune checkpoint folder's ``trial.json``
    when there is one (cheap), else from the checkpoint itself; NaN if unreadable."""
    from raydaug.checkpoint import load_checkpoint
    from raydaug.errors import CheckpointError
    from raydaug.state import checkpoint_file

    candidates = [Path(g_checkpoint)]
    if not candidates[0].is_absolute():
        candidates.append(Path(run_dir) / g_checkpoint)
    for path in candidates:
        if not path.exists():
            continue
        meta = (path if path.is_dir() else path.parent) / "trial.json"
        try:
            if meta.is_file():
                return float(json.loads(meta.read_text())["epoch"])
            return float(load_checkpoint(checkpoint_file(str(path)))["epoch"])
        except (CheckpointError, OSError, KeyError, ValueError, RuntimeError):
            return math.nan
    return math.nan


def fig4_joint_vs_frozen(run: RunData, summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Fig. 4: C trained jointly with G vs C trained on frozen G snapshots (``joint=false`` trials with
    ``g_checkpoint``). Left: acc/test vs epoch (mean per snapshot); right: best acc/test vs the
    snapshot's epoch, with joint training as a reference line. Also writes fig4_joint_vs_frozen.csv."""
    frozen = summary[(summary["joint"] == False) & summary["g_checkpoint"].notna()]  # noqa: E712
    if frozen.empty:
        return []
    rows = []
    figure, axes = new_figure(2)
    curves, points = axes[0]
    for dataset, block in frozen.groupby("dataset"):
        joint = summary[(summary["dataset"] == dataset) & (summary["joint"] == True)  # noqa: E712
                        & (summary["aug"] == "learned")]
        if not joint.empty:
            stats = thin(group_curve(run, list(joint[PARTITION_KEY]), "acc/test"))
            curves.plot(stats["epoch"], stats["mean"], lw=2, color="black", label=f"{dataset}: joint")
            joint_mean = float(joint["test_at_best"].mean()) * 100.0
            points.axhline(joint_mean, color="black", ls="--", label=f"{dataset}: joint")
            rows.append({"dataset": dataset, "training": "joint", "g_checkpoint": "", "snapshot_epoch": math.nan,
                         "trials": len(joint), "acc_test_mean": joint_mean,
                         "acc_test_std": float(joint["test_at_best"].std(ddof=1)) * 100.0})
        xs, ys, es = [], [], []
        for g_checkpoint, group in block.groupby("g_checkpoint", sort=True):
            epoch = snapshot_epoch(g_checkpoint, run.run_dir)
            label = f"G @ epoch {epoch:g}" if not math.isnan(epoch) else f"G {Path(g_checkpoint).name}"
            stats = thin(group_curve(run, list(group[PARTITION_KEY]), "acc/test"))
            curves.plot(stats["epoch"], stats["mean"], lw=1, label=f"{dataset}: {label}")
            mean = float(group["test_at_best"].mean()) * 100.0
            std = float(group["test_at_best"].std(ddof=1)) * 100.0
            rows.append({"dataset": dataset, "training": "frozen G", "g_checkpoint": g_checkpoint,
                         "snapshot_epoch": epoch, "trials": len(group), "acc_test_mean": mean, "acc_test_std": std})
            xs.append(epoch)
            ys.append(mean)
            es.append(0.0 if math.isnan(std) else std)
        if any(not math.isnan(x) for x in xs):
            order = np.argsort(xs)
            points.errorbar(np.asarray(xs)[order], np.asarray(ys)[order], yerr=np.asarray(es)[order], marker="o",
                            capsize=3, label=f"{dataset}: C on frozen G")
    curves.set(title="Fig. 4 — acc/test during training", xlabel="epoch of C", ylabel="test accuracy %")
    points.set(title="Fig. 4 — best acc/test vs G snapshot", xlabel="epoch of the frozen G snapshot",
               ylabel="test accuracy % (at best acc/val)")
    for axis in (curves, points):
        axis.grid(alpha=0.3)
        _legend(axis)
    pd.DataFrame(rows).to_csv(out_dir / "fig4_joint_vs_frozen.csv", index=False)
    return [save(figure, out_dir / "fig4_joint_vs_frozen.png"), out_dir / "fig4_joint_vs_frozen.csv"]


def plot_augmentation_health(run: RunData, out_dir: Path) -> list[Path]:
    """The metrics of :func:`raydaug.steps.augmentation_health` (aug/label_kept, aug/x_div, aug/l1,
    aug/affine_dev, aug/z_div) and acc/aug vs epoch per trial: does G(x) keep its label and depend on x
    (collapse shows as both falling), does the STN drift, does the noise still matter? The health thresholds
    of :mod:`raydaug.analysis.summary` are drawn as dashed lines."""
    from raydaug.steps import AUGMENTATION_HEALTH  # the core's definition (torch: only when a plot is made)

    titles = {**AUGMENTATION_HEALTH, "acc/aug": "C accuracy on G(x)"}
    present = [m for m in titles if m in run.metrics and run.metrics[m].notna().any()]
    if not present:
        return []
    trials = _per_trial(run)
    figure, axes = new_figure(len(present), width=4.2)
    thresholds = {"aug/label_kept": (HEALTHY_LABEL_KEPT, COLLAPSE_LABEL_KEPT),
                  "aug/x_div": (HEALTHY_X_DIV, COLLAPSE_X_DIV)}
    for metric, axis in zip(present, axes[0]):
        for trial_id, frame in trials.items():
            frame = thin(frame.dropna(subset=[metric]), _line_points(len(trials)))
            if not frame.empty:
                axis.plot(x_epoch(frame), frame[metric], lw=1, alpha=0.8, label=trial_id)
        for level, colour in zip(thresholds.get(metric, ()), ("green", "red")):
            axis.axhline(level, color=colour, ls="--", lw=0.8)
        axis.set(title=f"{metric}: {titles[metric]}", xlabel="epoch")
        axis.grid(alpha=0.3)
        _legend(axis, len(trials))
    return [save(figure, out_dir / "augmentation_health.png")]
