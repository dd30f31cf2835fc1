"""``raydaug analyze RUN_DIR --out DIR``: every table, plot and best checkpoint of a run in one folder,
with ``report.html`` linking them (offline: no scripts, no external resources).

Works on a run that is still going or was interrupted (only whole part files are ever visible) and on
a ``raydaug train --out DIR`` folder (same ``parquet/`` layout, one trial, ``checkpoints/state.pt``).
"""
from __future__ import annotations

import html
import os
import shlex
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from raydaug.analysis import companions, curves, lineage, tables
from raydaug.analysis.checkpoints import find_checkpoints_in, publish_checkpoint
from raydaug.analysis.load import METRICS_DIR, PARTITION_KEY, RunData, list_parts, load, print_warnings
from raydaug.errors import NotARunError, PartFileWarning
from raydaug.logging.parquet import resolve

TOP_K = 5
GRID_TRIALS = 3
COMPACT_HINT_PARTS = 200
COMPACT_HINT_ROWS_PER_PART = 2000


# ---------------------------------------------------------------------- the report
@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame, list[Path]]] = field(default_factory=list)  # caption, shown, files
    images: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass
class Report:
    out_dir: Path
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def section(self, title: str, text: str = "") -> Section:
        self.sections.append(Section(title, text))
        return self.sections[-1]


def default_out(run_dir: str) -> Path:
    filesystem, root = resolve(run_dir)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return Path(root) / "report"
    return Path.cwd() / f"report_{root.rstrip('/').rsplit('/', 1)[-1]}"


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
    summary = tables.trial_summary(run)
    summary.to_csv(out_dir / "trials.csv", index=False)
    metrics = run.metrics
    last_seen = float(metrics["timestamp"].max()) if metrics["timestamp"].notna().any() else float("nan")
    age = time.time() - last_seen
    overview = report.section("Run")
    overview.text = (f"{run.run_dir}: {len(summary)} trial(s), {len(metrics)} metric rows, "
                     f"{len(run.trials)} trial start/restore rows, {len(run.events)} PBT event rows; "
                     f"latest report {_age(age)} ago.")
    overview.tables.append(("Trials (score: acc/test at the best acc/val)", _rounded(summary),
                            [out_dir / "trials.csv"]))
    if run.skipped:
        report.notes += [f"skipped unreadable part file {path}: {reason}" for path, reason in run.skipped]
    filesystem, root = resolve(run.run_dir)
    parts = len(list_parts(filesystem, f"{root}/{METRICS_DIR}")[0])
    if parts > COMPACT_HINT_PARTS and len(metrics) < COMPACT_HINT_ROWS_PER_PART * parts:
        report.notes.append(f"the metrics are spread over {parts} small part files: `raydaug compact "
                            f"{shlex.quote(run.run_dir)}` makes loading them faster")

    # best checkpoints
    best = tables.best_checkpoint_table(summary, top_k)
    ids = [str(t) for t in best["trial_id"]]
    found = find_checkpoints_in([run.run_dir, *pooled, *used],
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
    section.tables.append(("Top trials", _rounded(best),
                           tables.write_table(best, _rounded(best), out_dir, "best_checkpoints")))
    if not best.empty:
        top = best.iloc[0]
        report.summary.append(f"best trial {top['trial_id']}: acc/val {top['best_acc_val']:.4f} at iteration "
                              f"{int(top['best_iteration'])} → acc/test {top['test_at_best']:.4f}")

    # learned against hand-made augmentation, first thing on the page
    versus = tables.comparison(summary)
    if not versus.empty:
        section = report.section(
            "Learned vs hand-made augmentation",
            "Same split and budget: acc/test (%) at each trial's best acc/val, mean ± sample std over trials "
            "(split seeds and replicates), and the relative change of test error against the best hand-made "
            "augmentation of the group (negative: less error), compared split by split with it: on how many "
            "splits (seeds, replicates averaged) each is ahead and behind, and a 95 % paired bootstrap interval of "
            "the change over those splits. Two scores that choose no checkpoint stand "
            "beside it: the last report's acc/test and its mean over the second half of training, each compared "
            "with the hand-made augmentation that is best by the same measure. A learned G counts as healthy "
            f"when, at the chosen checkpoint, at least {tables.HEALTHY_LABEL_KEPT:.0%} of G(x) keep their label "
            "under the EMA teacher "
            f"(aug/label_kept), G(x) varies with x (aug/x_div ≥ {tables.HEALTHY_X_DIV}) and with z "
            f"(aug/z_div ≥ {tables.HEALTHY_Z_DIV}); it collapsed where label_kept fell below "
            f"{tables.COLLAPSE_LABEL_KEPT} or x_div below {tables.COLLAPSE_X_DIV} at {tables.COLLAPSE_EVALS} "
            "evaluations in a row.")
        shown = tables.display_comparison(versus)
        section.tables.append(("Learned vs hand-made", shown,
                               tables.write_table(versus, shown, out_dir, "learned_vs_hand_made")))
        report.summary[:0] = tables.comparison_headline(versus)
        report.sections.insert(1, report.sections.pop())  # right after the run overview
    collapsed = summary[summary["collapsed_epoch"].notna()] if "collapsed_epoch" in summary else summary.iloc[0:0]
    for row in collapsed.itertuples(index=False):
        after = ("healthy again at its chosen checkpoint" if row.healthy else
                 "unhealthy at its chosen checkpoint: its score is not a learned augmentation's")
        report.notes.append(f"trial {row.trial_id}: G collapsed at epoch {row.collapsed_epoch:g} (aug/label_kept < "
                            f"{tables.COLLAPSE_LABEL_KEPT} or aug/x_div < {tables.COLLAPSE_X_DIV}); {after}")

    unfinished = summary[~summary["finished"]]
    if not unfinished.empty:
        report.notes.append(f"{len(unfinished)} of {len(summary)} trial(s) have not reached their epochs (still "
                            "running, failed or interrupted; `raydaug tune … --resume` continues an interrupted "
                            "run): their scores are of a shorter training")

    # paper tables
    t1 = tables.table1(summary)
    section = report.section("Table 1 — dataset × augmentation",
                             "acc/test (%) at each trial's best acc/val, mean ± sample std over trials "
                             "(seeds, replicates); learned = joint training with all players (Table 3 row l).")
    if t1.empty:
        section.text += " No trial qualifies yet."
    else:
        shown = tables.display_table1(t1)
        section.tables.append(("Table 1", shown, tables.write_table(t1, shown, out_dir, "table1")))
    t3 = tables.table3(summary)
    if not t3.empty:
        section = report.section("Table 3 — ablation", "Rows identified by the use_* flags (Table 3 of the paper; "
                                                       "paper numbers are CIFAR-10 with 4000 images).")
        shown = tables.display_table3(t3)
        section.tables.append(("Table 3", shown, tables.write_table(t3, shown, out_dir, "table3")))

    # curves
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
    health = curves.augmentation_health(run, out_dir)
    if health:
        report.section("Augmentation health", "A collapsing G shows as rising aug/l1 with falling acc/aug; "
                                              "aug/z_div near 0 means the noise is ignored.").images += health

    # PBT
    history = lineage.History(run)
    if history.exploits:
        section = report.section("PBT schedules and lineage",
                                 f"{len(history.exploits)} exploit(s). A change at iteration k governs iterations "
                                 "k+1 onwards.")
        section.images += lineage.plot_schedules(run, out_dir)
        best_id = str(best["trial_id"].iloc[0]) if not best.empty else None
        section.images += lineage.plot_lineage(run, best_id, out_dir)
        table = lineage.lineage_table(run)
        shown = table.assign(timestamp=pd.to_datetime(table["timestamp"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"))
        section.tables.append(("Exploits (who copied whom, when; times in UTC)", shown,
                               tables.write_table(table, shown, out_dir, "pbt_lineage")))
        if best_id is not None:
            root, steps = history.lineage(best_id)
            frame = lineage.schedule_frame(steps)
            end = int(metrics.loc[metrics["trial_id"] == best_id, "training_iteration"].max())
            section.images += lineage.plot_best_schedule(steps, best_id, root, end, out_dir)
            section.tables.append((f"Best trial {best_id}: full schedule (root {root})", frame,
                                   tables.write_table(frame, frame, out_dir, "best_schedule")))

    # sample grids
    section = report.section("Sample grids (Fig. 5)", "Each row: an input x, then G(x, z) for several z, from the "
                                                       "trial's checkpoint.")
    _grids(run, summary, section, report, grid_trials, pooled)
    return report


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
    paths = curves.fig4_joint_vs_frozen(combined, tables.trial_summary(combined), out_dir)
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

    learned = tables.best_checkpoint_table(summary[summary["aug"] == "learned"], len(summary))
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


# ---------------------------------------------------------------------- HTML
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#a33}nav a{margin-right:1em}"""


def _link(path: Path, out_dir: Path) -> str:
    relative = os.path.relpath(path, out_dir)
    return f'<a href="{html.escape(relative)}">{html.escape(relative)}</a>'


def render_html(report: Report) -> str:
    out = report.out_dir
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>raydaug report</title>",
             f"<style>{_STYLE}</style></head><body><h1>raydaug report</h1>"]
    parts.append("<nav>" + "".join(f'<a href="#s{i}">{html.escape(s.title)}</a>'
                                   for i, s in enumerate(report.sections)) + "</nav>")
    for line in report.summary:
        parts.append(f"<p><b>{html.escape(line)}</b></p>")
    for note in report.notes:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for index, section in enumerate(report.sections):
        parts.append(f'<h2 id="s{index}">{html.escape(section.title)}</h2>')
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for caption, frame, files in section.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(frame.to_html(index=False, na_rep="—", escape=True, border=0))
            if files:
                parts.append("<p>" + " · ".join(_link(f, out) for f in files) + "</p>")
        for image in section.images:
            parts.append(f'<p><img src="{html.escape(os.path.relpath(image, out))}" '
                         f'alt="{html.escape(image.stem)}"><br>{_link(image, out)}</p>')
        if section.files:
            parts.append("<p>" + " · ".join(_link(f, out) for f in section.files) + "</p>")
    parts.append(f"<p><small>generated {time.strftime('%Y-%m-%d %H:%M:%S')}</small></p></body></html>")
    return "\n".join(parts)


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

