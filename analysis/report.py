"""``raydaug analyze RUN_DIR --out DIR``: every table, plot and best checkpoint of a run in one folder,
with ``report.html`` linking them (offline: no scripts, no external resources).

Works on a run that is still going or was interrupted (only whole part files are ever visible) and on
a ``raydaug train --out DIR`` folder (same ``parquet/`` layout, one trial, ``checkpoints/state.pt``).
"""
from __future__ import annotations

import shlex
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from raydaug.analysis import companions, curves, lineage, pilots
from raydaug.analysis.checkpoints import find_checkpoints_in, publish_checkpoint
from raydaug.analysis.comparison import comparison, comparison_headline
from raydaug.analysis.load import METRICS_DIR, PARTITION_KEY, RunData, list_parts, load, print_warnings
from raydaug.analysis.page import Report, Section, render_html
from raydaug.analysis.render import display_comparison, display_table1, display_table3, write_table
from raydaug.analysis.summary import (
    COLLAPSE_EVALS,
    COLLAPSE_LABEL_KEPT,
    COLLAPSE_X_DIV,
    FINAL_REPORTS,
    HEALTHY_LABEL_KEPT,
    HEALTHY_X_DIV,
    HEALTHY_Z_DIV,
    trial_summary,
)
from raydaug.analysis.tables import best_checkpoint_table, table1, table3
from raydaug.errors import NotARunError, PartFileWarning
from raydaug.logging.parquet import resolve

TOP_K = 5
GRID_TRIALS = 3
COMPACT_HINT_PARTS = 200
COMPACT_HINT_ROWS_PER_PART = 2000


# ---------------------------------------------------------------------- the report
def default_out(run_dir: str) -> Path:
    filesystem, root = resolve(run_dir)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return Path(root) / "report"
    return Path.cwd() / f"report_{root.rstrip('/').rsplit('/', 1)[-1]}"


@dataclass
class Inputs:
    """What every section reads: the run (with its pooled and baseline runs merged in), the per-trial summary
    and the run folders whose checkpoints serve it."""

    run: RunData
    summary: pd.DataFrame
    pooled: list[str]
    used: list[str]


def build_report(run: RunData, out_dir: Path, top_k: int = TOP_K, grid_trials: int = GRID_TRIALS,
                 baselines: Sequence[str] = (), pool: Sequence[str] = ()) -> Report:
    """Write every table and plot of ``run`` into ``out_dir``; returns what was made, for the page. The
    trials of each run in ``pool`` join ``run``'s; the hand-made baselines compared with come from the runs
    in ``baselines``, else from ``RUN_DIR_baselines`` (of ``run`` and of each pooled run)."""
    run, pooled, used = companions.gather(run, baselines, pool)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir)
    if pooled:
        report.notes.append("the trials of " + ", ".join(pooled) + " are pooled into this report")
    if used:
        report.notes.append("the hand-made baselines of " + ", ".join(used) + " are part of this report")
    inputs = Inputs(run, trial_summary(run), pooled, used)
    run_section(report, inputs)
    best = best_checkpoints_section(report, inputs, top_k)
    comparison_section(report, inputs)
    pilot_section(report, inputs)
    trial_notes(report, inputs)
    paper_tables_section(report, inputs)
    curves_sections(report, inputs)
    pbt_section(report, inputs, best)
    grids_section(report, inputs, grid_trials)
    return report


def run_section(report: Report, inputs: Inputs) -> None:
    """Counts, the age of the latest report, ``trials.csv``; notes on unreadable and too many part files."""
    run, summary, out_dir = inputs.run, inputs.summary, report.out_dir
    summary.to_csv(out_dir / "trials.csv", index=False)
    metrics = run.metrics
    last_seen = float(metrics["timestamp"].max()) if metrics["timestamp"].notna().any() else float("nan")
    overview = report.section("Run")
    overview.text = (f"{run.run_dir}: {len(summary)} trial(s), {len(metrics)} metric rows, "
                     f"{len(run.trials)} trial start/restore rows, {len(run.events)} PBT event rows; "
                     f"latest report {_age(time.time() - last_seen)} ago.")
    overview.tables.append(("Trials (score: acc/test at the best acc/val)", _rounded(summary),
                            [out_dir / "trials.csv"]))
    if run.skipped:
        report.notes += [f"skipped unreadable part file {path}: {reason}" for path, reason in run.skipped]
    filesystem, root = resolve(run.run_dir)
    parts = len(list_parts(filesystem, f"{root}/{METRICS_DIR}")[0])
    if parts > COMPACT_HINT_PARTS and len(metrics) < COMPACT_HINT_ROWS_PER_PART * parts:
        report.notes.append(f"the metrics are spread over {parts} small part files: `raydaug compact "
                            f"{shlex.quote(run.run_dir)}` makes loading them faster")


def best_checkpoints_section(report: Report, inputs: Inputs, top_k: int) -> pd.DataFrame:
    """The top trials by best acc/val with their checkpoints, linked or copied under checkpoints/; returns
    the table (the PBT section draws the best trial's lineage)."""
    run, out_dir = inputs.run, report.out_dir
    best = best_checkpoint_table(inputs.summary, top_k)
    ids = [str(t) for t in best["trial_id"]]
    found = find_checkpoints_in([run.run_dir, *inputs.pooled, *inputs.used],
                                {t: int(i) for t, i in zip(ids, best["best_iteration"])})
    links = []
    for trial_id in ids:
        if trial_id in found:
            link = publish_checkpoint(run.run_dir, found[trial_id][0],
                                      out_dir / "checkpoints" / trial_id / "state.pt")
            links.append(str(link.relative_to(out_dir)))
        else:
            links.append("")
    best = best.assign(checkpoint=[found[t][0] if t in found else "" for t in ids],
                       checkpoint_iteration=[found[t][1] if t in found else None for t in ids],
                       report_copy=links)
    section = report.section("Best checkpoints", f"Top {top_k} trials by best acc/val. checkpoint: the one saved "
                                                 "at the best iteration when Tune kept it, else the trial's latest "
                                                 "(checkpoint_iteration; empty when unknown); linked or copied "
                                                 "under checkpoints/.")
    section.tables.append(("Top trials", _rounded(best), write_table(best, _rounded(best), out_dir,
                                                                      "best_checkpoints")))
    if not best.empty:
        top = best.iloc[0]
        report.summary.append(f"best trial {top['trial_id']}: acc/val {top['best_acc_val']:.4f} at iteration "
                              f"{int(top['best_iteration'])} → acc/test {top['test_at_best']:.4f}")
    return best


COMPARISON_TEXT = (
    "Same split and budget: acc/test (%) at each trial's best acc/val, mean ± sample std over the results (split "
    "seeds and replicates; a PBT population's members on one split are one result, the member with the best "
    "acc/val at its chosen checkpoint — ties: the higher mean acc/val over its last {final} reports, then the "
    "later checkpoint, then the smaller trial id), and the relative change of test error against the best "
    "hand-made augmentation of the group, chosen on validation (the highest mean best acc/val) among every "
    "hand-made one the run holds (negative: less error). Split by split against it (seeds, replicates "
    "averaged): on how many splits each is ahead and behind, the probability of improvement (the share of "
    "splits it wins, a level split counting half; Agarwal et al. 2021) and 95 % paired bootstrap intervals of "
    "it and of the change over those splits. A learned result whose G was not healthy at its chosen checkpoint "
    "counts as a loss on its split. Two scores that choose no checkpoint stand beside it: the last report's "
    "acc/test and its mean over the second half of training, against the same hand-made augmentation. A "
    "learned G counts as healthy when, at the chosen checkpoint, at least {kept:.0%} of G(x) keep their label "
    "under the EMA teacher (aug/label_kept), G(x) varies with x (aug/x_div ≥ {x_div}) and with z (aug/z_div ≥ "
    "{z_div}); it collapsed where label_kept fell below {c_kept} or x_div below {c_x_div} at {evals} "
    "evaluations in a row.")


def comparison_section(report: Report, inputs: Inputs) -> None:
    """Learned against hand-made augmentation, right after the run overview, its headline first on the page."""
    versus = comparison(inputs.summary)
    if versus.empty:
        return
    section = report.section("Learned vs hand-made augmentation", COMPARISON_TEXT.format(
        final=FINAL_REPORTS, kept=HEALTHY_LABEL_KEPT, x_div=HEALTHY_X_DIV, z_div=HEALTHY_Z_DIV,
        c_kept=COLLAPSE_LABEL_KEPT, c_x_div=COLLAPSE_X_DIV, evals=COLLAPSE_EVALS))
    shown = display_comparison(versus)
    section.tables.append(("Learned vs hand-made", shown, write_table(versus, shown, report.out_dir,
                                                                      "learned_vs_hand_made")))
    report.summary[:0] = comparison_headline(versus)
    report.sections.insert(1, report.sections.pop())


def pilot_section(report: Report, inputs: Inputs) -> None:
    """What ``base_aug=auto``'s pilot chose per learned trial, against the full-budget hand-made arms."""
    table = pilots.pilot_table(inputs.run, inputs.summary)
    if table.empty:
        return
    section = report.section("base_aug=auto — the pilot's choice", pilots.pilot_text(table))
    shown = _rounded(table)
    section.tables.append(("The pilot per learned trial", shown, write_table(table, shown, report.out_dir,
                                                                             "pilots")))


def trial_notes(report: Report, inputs: Inputs) -> None:
    """A note per collapsed G, and one counting the trials that have not finished."""
    summary = inputs.summary
    collapsed = summary[summary["collapsed_epoch"].notna()]
    for row in collapsed.itertuples(index=False):
        after = ("healthy again at its chosen checkpoint" if row.healthy else
                 "unhealthy at its chosen checkpoint: its score is not a learned augmentation's")
        report.notes.append(f"trial {row.trial_id}: G collapsed at epoch {row.collapsed_epoch:g} (aug/label_kept < "
                            f"{COLLAPSE_LABEL_KEPT} or aug/x_div < {COLLAPSE_X_DIV}); {after}")
    unfinished = summary[~summary["finished"]]
    if not unfinished.empty:
        report.notes.append(f"{len(unfinished)} of {len(summary)} trial(s) have not reached their epochs (still "
                            "running, failed or interrupted; `raydaug tune … --resume` continues an interrupted "
                            "run): their scores are of a shorter training")


def paper_tables_section(report: Report, inputs: Inputs) -> None:
    """Table 1 (always, saying when no trial qualifies) and Table 3 (when the run holds an ablation row)."""
    out_dir = report.out_dir
    t1 = table1(inputs.summary)
    section = report.section("Table 1 — dataset × augmentation",
                             "acc/test (%) at each trial's best acc/val, mean ± sample std over trials "
                             "(seeds, replicates; a PBT population once per split, by its acc/val-best member); "
                             "learned = joint training with all players (Table 3 row l).")
    if t1.empty:
        section.text += " No trial qualifies yet."
    else:
        shown = display_table1(t1)
        section.tables.append(("Table 1", shown, write_table(t1, shown, out_dir, "table1")))
    t3 = table3(inputs.summary)
    if not t3.empty:
        section = report.section("Table 3 — ablation", "Rows identified by the use_* flags (Table 3 of the paper; "
                                                       "paper numbers are CIFAR-10 with 4000 images).")
        shown = display_table3(t3)
        section.tables.append(("Table 3", shown, write_table(t3, shown, out_dir, "table3")))


def curves_sections(report: Report, inputs: Inputs) -> None:
    """Accuracy per trial and per group, Fig. 3, Fig. 4 and the augmentation's health over time."""
    run, summary, out_dir = inputs.run, inputs.summary, report.out_dir
    section = report.section("Accuracy curves")
    section.images += curves.accuracy_per_trial(run, out_dir)
    variants = dict(zip(summary[PARTITION_KEY], summary["variant"]))
    section.images += curves.accuracy_per_group(run, out_dir, variants)
    fig3 = curves.fig3_samples(summary, out_dir)
    if fig3:
        report.section("Fig. 3 — accuracy vs number of training images").images.append(fig3[0])
        report.sections[-1].files.append(fig3[1])
    fig4 = _fig4(run, summary, out_dir, report)
    if fig4:
        section = report.section("Fig. 4 — joint training vs C on frozen G snapshots",
                                 "The curriculum effect: joint training against classifiers trained on fixed "
                                 "generator snapshots.")
        section.images.append(fig4[0])
        section.files.append(fig4[1])
    health = curves.plot_augmentation_health(run, out_dir)
    if health:
        report.section("Augmentation health", "A collapsing G shows as rising aug/l1 with falling acc/aug; "
                                              "aug/z_div near 0 means the noise is ignored.").images += health


def pbt_section(report: Report, inputs: Inputs, best: pd.DataFrame) -> None:
    """PBT schedules, the lineage of exploits and the best trial's full schedule (only with exploits)."""
    run, out_dir = inputs.run, report.out_dir
    history = lineage.History(run)
    if not history.exploits:
        return
    section = report.section("PBT schedules and lineage",
                             f"{len(history.exploits)} exploit(s). A change at iteration k governs iterations "
                             "k+1 onwards.")
    section.images += lineage.plot_schedules(run, out_dir)
    best_id = str(best["trial_id"].iloc[0]) if not best.empty else None
    section.images += lineage.plot_lineage(run, best_id, out_dir)
    table = lineage.lineage_table(run)
    shown = table.assign(timestamp=pd.to_datetime(table["timestamp"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"))
    section.tables.append(("Exploits (who copied whom, when; times in UTC)", shown,
                           write_table(table, shown, out_dir, "pbt_lineage")))
    if best_id is not None:
        root, steps = history.lineage(best_id)
        frame = lineage.schedule_frame(steps)
        metrics = run.metrics
        end = int(metrics.loc[metrics["trial_id"] == best_id, "training_iteration"].max())
        section.images += lineage.plot_best_schedule(steps, best_id, root, end, out_dir)
        section.tables.append((f"Best trial {best_id}: full schedule (root {root})", frame,
                               write_table(frame, frame, out_dir, "best_schedule")))


def grids_section(report: Report, inputs: Inputs, grid_trials: int) -> None:
    section = report.section("Sample grids (Fig. 5)", "Each row: an input x, then G(x, z) for several z, from the "
                                                       "trial's checkpoint.")
    _grids(inputs.run, inputs.summary, section, report, grid_trials, inputs.pooled)


def _fig4(run: RunData, summary: pd.DataFrame, out_dir: Path, report: Report) -> list[Path]:
    """Fig. 4 over this run and the run holding its other half (stage 1 / stage 2 of a follow-up)."""
    others = []
    for path, role in companions.related_runs(run).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PartFileWarning)
                others.append((load(path, require_metrics=False), "frozen" if role == "sibling" else role))
        except NotARunError as error:
            report.notes.append(f"Fig. 4: {error}")
    if not others:
        return curves.fig4_joint_vs_frozen(run, summary, out_dir)
    combined, used = companions.combine_runs(run, others)
    if not used:
        return curves.fig4_joint_vs_frozen(run, summary, out_dir)
    paths = curves.fig4_joint_vs_frozen(combined, trial_summary(combined), out_dir)
    if paths:
        report.notes.append("Fig. 4 also uses " + ", ".join(used))
    return paths


def _grids(run: RunData, summary: pd.DataFrame, section: Section, report: Report, grid_trials: int,
           pooled: list[str]) -> None:
    """Grids of the ``grid_trials`` learned trials with the best acc/val whose checkpoint is found (in the
    run or a pooled one): chosen among the learned trials alone, since a study's hand-made baselines often
    rank first overall."""
    from raydaug.analysis.grids import sample_grid_png
    from raydaug.errors import CheckpointError, ConfigError, DataError, NoGeneratorError

    learned = best_checkpoint_table(summary[summary["aug"] == "learned"], len(summary))
    made = 0
    for trial_id, iteration in zip(learned["trial_id"].astype(str), learned["best_iteration"]):
        if made >= grid_trials:
            break
        found = find_checkpoints_in([run.run_dir, *pooled], {trial_id: int(iteration)})
        if trial_id not in found:
            continue
        local = publish_checkpoint(run.run_dir, found[trial_id][0],
                                   report.out_dir / "checkpoints" / trial_id / "state.pt")
        try:
            png = sample_grid_png(local, report.out_dir / f"samples_{trial_id}.png", f"trial {trial_id}")
        except (NoGeneratorError, CheckpointError, ConfigError, DataError, FileNotFoundError) as error:
            report.notes.append(f"no sample grid for trial {trial_id}: {str(error).splitlines()[0]}")
            continue
        section.images.append(png)
        made += 1
    if not made:
        section.text += " No checkpoint of a learned-augmentation trial was found."


def _age(seconds: float) -> str:
    if seconds != seconds:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.round(4)


def write_report(run_dir: str, out: str | None = None, baselines: Sequence[str] = (),
                 pool: Sequence[str] = ()) -> tuple[Path, Report]:
    out_dir = Path(out) if out else default_out(run_dir)
    run = load(run_dir)
    report = build_report(run, out_dir, baselines=baselines, pool=pool)
    page = out_dir / "report.html"
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(render_html(report), encoding="utf-8")
    tmp.replace(page)
    return page, report


def analyze_command(run_dir: str, out: str | None, baselines: Sequence[str] = (),
                    pool: Sequence[str] = ()) -> None:
    """``raydaug analyze``: write the report and print a short summary."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PartFileWarning)
        page, report = write_report(run_dir, out, baselines, pool)
    print_warnings(caught)
    print(report.sections[0].text)
    for line in report.summary:
        print(line)
    for note in report.notes:
        if not note.startswith("skipped unreadable"):
            print(f"note: {note}")
    print(f"report: {page}")

