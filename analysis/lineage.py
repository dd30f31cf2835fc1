"""PBT/PB2 history from ``trials`` (each trial's starting config) and ``pbt_events`` (one row per key
mutated by an exploit/explore): exploits, the hyperparameters in force for any trial at any time, each
trial's schedule, the exploit lineage (who copied whom, when) and the best trial's full schedule.

Semantics (those of Ray's ``PopulationBasedTrainingReplay``): an exploit recorded at
``training_iteration = k`` means the target continued from the source's checkpoint of iteration ``k``
with the new values, so the new values govern the training of iterations ``k + 1, k + 2, ...``. After
an exploit, the target's values are the source's values at that moment with the mutated keys replaced
by ``new_value``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from raydaug.analysis.curves import new_figure, save
from raydaug.analysis.load import RunData, config_dicts
from raydaug.config import MUTABLE_HPARAMS


@dataclass(frozen=True)
class Exploit:
    """One exploit/explore: ``dst`` took ``src``'s checkpoint of ``iteration`` and changed ``changes``."""

    timestamp: float
    iteration: int
    src: str
    dst: str
    changes: dict[str, tuple[float, float]] = field(default_factory=dict)  # key → (old, new)


def exploits(run: RunData) -> list[Exploit]:
    """The events grouped into exploits, in time order. An exploit's rows are written together by the
    scheduler: consecutive rows with the same (dst, src, iteration) and no repeated key."""
    events = run.events
    found: list[Exploit] = []
    current: Exploit | None = None
    for row in events.sort_values("timestamp", kind="stable").itertuples(index=False):
        ident = (str(row.dst_trial), str(row.src_trial), int(row.training_iteration))
        if current is None or (current.dst, current.src, current.iteration) != ident or row.key in current.changes:
            current = Exploit(float(row.timestamp), ident[2], ident[1], ident[0], {})
            found.append(current)
        current.changes[str(row.key)] = (float(row.old_value), float(row.new_value))
    return found


class History:
    """Answers "which hyperparameters did trial T have at time t" for a run."""

    def __init__(self, run: RunData):
        self.configs = config_dicts(run)
        self.exploits = exploits(run)
        self.by_dst: dict[str, list[Exploit]] = {}
        self._after: dict[tuple[str, float], dict[str, float]] = {}
        for exploit in self.exploits:
            self.by_dst.setdefault(exploit.dst, []).append(exploit)

    def initial(self, trial_id: str) -> dict[str, Any]:
        return dict(self.configs.get(trial_id, {}))

    def last_exploit(self, trial_id: str, before: float) -> Exploit | None:
        earlier = [e for e in self.by_dst.get(trial_id, []) if e.timestamp < before]
        return earlier[-1] if earlier else None

    def hparams_at(self, trial_id: str, time: float = math.inf) -> dict[str, float]:
        """The MUTABLE_HPARAMS of ``trial_id`` just before ``time`` (default: now)."""
        exploit = self.last_exploit(trial_id, time)
        if exploit is None:
            initial = self.initial(trial_id)
            return {key: initial[key] for key in MUTABLE_HPARAMS if key in initial}
        key = (exploit.dst, exploit.timestamp)
        if key not in self._after:  # the values right after each exploit, computed once
            values = self.hparams_at(exploit.src, exploit.timestamp)
            values.update({name: new for name, (_, new) in exploit.changes.items()})
            self._after[key] = values
        return dict(self._after[key])

    def timeline(self, trial_id: str) -> list[tuple[int, dict[str, float]]]:
        """The trial's own schedule: [(0, initial values), (k, values after its exploit at k), ...]."""
        steps = [(0, self.hparams_at(trial_id, -math.inf))]
        for exploit in self.by_dst.get(trial_id, []):
            steps.append((exploit.iteration, self.hparams_at(trial_id, math.nextafter(exploit.timestamp, math.inf))))
        return steps

    def lineage(self, trial_id: str, before: float = math.inf) -> tuple[str, list[tuple[int, dict[str, float]]]]:
        """The replayable schedule that produced ``trial_id``'s weights: follow the exploits back to
        the root trial whose initial config started it all. Returns (root trial, [(iteration,
        values)...]) with the root's initial values at iteration 0."""
        exploit = self.last_exploit(trial_id, before)
        if exploit is None:
            return trial_id, [(0, self.hparams_at(trial_id, -math.inf))]
        root, steps = self.lineage(exploit.src, exploit.timestamp)
        # a change of the source at iteration ≥ k came after the checkpoint the target copied
        steps = [step for step in steps if step[0] < exploit.iteration or step[0] == 0]
        values = self.hparams_at(exploit.src, exploit.timestamp)  # what the source had when copied
        values.update({key: new for key, (_, new) in exploit.changes.items()})
        if exploit.iteration == 0:
            steps = [(0, values)]
        elif values != steps[-1][1]:
            steps.append((exploit.iteration, values))
        return root, steps


def lineage_table(run: RunData) -> pd.DataFrame:
    """One row per exploit: iteration, time, source, target and ``key: old → new`` for each change."""
    rows = [{"training_iteration": e.iteration, "timestamp": e.timestamp, "src_trial": e.src, "dst_trial": e.dst,
             "changes": "; ".join(f"{k}: {old:.4g} → {new:.4g}" for k, (old, new) in sorted(e.changes.items()))}
            for e in exploits(run)]
    return pd.DataFrame(rows, columns=["training_iteration", "timestamp", "src_trial", "dst_trial", "changes"])


def schedule_frame(steps: list[tuple[int, dict[str, float]]]) -> pd.DataFrame:
    """[(iteration, values)] → a DataFrame with one row per change point."""
    return pd.DataFrame([{"training_iteration": it, **values} for it, values in steps])


# ---------------------------------------------------------------------- plots
def _keys(history: History) -> list[str]:
    present = set()
    for config in history.configs.values():
        present.update(k for k in MUTABLE_HPARAMS if k in config)
    mutated = {key for exploit in history.exploits for key in exploit.changes}
    return [k for k in MUTABLE_HPARAMS if k in mutated] or [k for k in MUTABLE_HPARAMS if k in present]


def _step_xy(steps: list[tuple[int, dict[str, float]]], key: str, end: int) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for index, (iteration, values) in enumerate(steps):
        if key not in values:
            continue
        stop = steps[index + 1][0] if index + 1 < len(steps) else max(end, iteration)
        xs += [iteration, stop]
        ys += [values[key], values[key]]
    return xs, ys


def _last_iterations(run: RunData) -> dict[str, int]:
    grouped = run.metrics.groupby("trial_id", observed=True)["training_iteration"].max()
    return {str(k): int(v) for k, v in grouped.items()}


def plot_schedules(run: RunData, out_dir: Path) -> list[Path]:
    """Each mutated hyperparameter over training iterations, one step line per trial (dots: exploits)."""
    history = History(run)
    if not history.exploits:
        return []
    keys = _keys(history)
    ends = _last_iterations(run)
    figure, axes = new_figure(min(len(keys), 4), rows=math.ceil(len(keys) / 4), width=4.2)
    flat = list(axes.flat)
    trials = sorted(history.configs)
    timelines = {trial_id: history.timeline(trial_id) for trial_id in trials}
    for key, axis in zip(keys, flat):
        for trial_id in trials:
            steps = timelines[trial_id]
            xs, ys = _step_xy(steps, key, ends.get(trial_id, 0))
            if not xs:
                continue
            line, = axis.plot(xs, ys, lw=1, alpha=0.8, label=trial_id)
            marks = [(it, v[key]) for it, v in steps[1:] if key in v]
            if marks:
                axis.plot(*zip(*marks), "o", ms=3, color=line.get_color())
        axis.set(title=key, xlabel="training_iteration", yscale="log" if key.startswith("lr_") else "linear")
        axis.grid(alpha=0.3)
        if len(trials) <= 12 and axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6)
    for axis in flat[len(keys):]:
        axis.set_visible(False)
    return [save(figure, out_dir / "pbt_schedules.png")]


def plot_lineage(run: RunData, best_trial: str | None, out_dir: Path) -> list[Path]:
    """Trials as horizontal lines over their iterations; an arrow from source to target at each exploit."""
    history = History(run)
    if not history.exploits:
        return []
    trials = sorted(set(history.configs) | {e.src for e in history.exploits} | {e.dst for e in history.exploits})
    row = {trial_id: index for index, trial_id in enumerate(trials)}
    ends = _last_iterations(run)
    starts = run.metrics.groupby("trial_id", observed=True)["training_iteration"].min()
    figure, axes = new_figure(1, width=9.0, height=min(40.0, max(3.0, 0.35 * len(trials) + 1.5)))
    axis = axes[0][0]
    for trial_id in trials:
        start = int(starts.get(trial_id, 0)) if trial_id in starts.index else 0
        axis.plot([start, ends.get(trial_id, start)], [row[trial_id]] * 2,
                  color="tab:red" if trial_id == best_trial else "0.6", lw=3 if trial_id == best_trial else 1.5)
    for exploit in history.exploits:
        axis.annotate("", xy=(exploit.iteration, row[exploit.dst]), xytext=(exploit.iteration, row[exploit.src]),
                      arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1})
    axis.set_yticks(range(len(trials)), trials, fontsize=7)
    axis.set(title="PBT lineage: arrow = target copies source's checkpoint (then explores)",
             xlabel="training_iteration")
    axis.grid(alpha=0.3, axis="x")
    return [save(figure, out_dir / "pbt_lineage.png")]


def plot_best_schedule(steps: list[tuple[int, dict[str, float]]], trial_id: str, root: str, end: int,
                       out_dir: Path) -> list[Path]:
    keys = [k for k in MUTABLE_HPARAMS if any(k in values for _, values in steps)]
    if not keys:
        return []
    figure, axes = new_figure(min(len(keys), 4), rows=math.ceil(len(keys) / 4), width=4.2)
    flat = list(axes.flat)
    for key, axis in zip(keys, flat):
        xs, ys = _step_xy(steps, key, end)
        axis.plot(xs, ys, lw=1.5, color="tab:red")
        axis.set(title=key, xlabel="training_iteration", yscale="log" if key.startswith("lr_") else "linear")
        axis.grid(alpha=0.3)
    for axis in flat[len(keys):]:
        axis.set_visible(False)
    figure.suptitle(f"best trial {trial_id}: full schedule (from root trial {root})")
    return [save(figure, out_dir / "best_schedule.png")]
