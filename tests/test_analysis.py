"""analysis/: load (dedupe, damaged parts, errors), tables against hand-computed numbers, plots, the report,
PBT lineage and schedule export; end to end on `raydaug train` folders and on a Tune smoke run (with
its replay)."""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import raydaug.analysis as analysis
from raydaug.analysis import curves, lineage, tables
from raydaug.analysis.checkpoints import find_checkpoints
from raydaug.analysis.load import NoMetricsError, NotARunError, PartFileWarning, compact_run
from raydaug.analysis.report import analyze_command, build_report
from raydaug.analysis.schedule import export_schedule, read_schedule, values_at, write_schedule
from raydaug.analysis.summary import trial_summary
from raydaug.checkpoint import save_checkpoint
from raydaug.cli import main
from raydaug.config import CONFIG_VERSION, MUTABLE_HPARAMS, Config
from raydaug.errors import ConfigError
from raydaug.logging import parquet as P
from raydaug.migrations import VERSION_KEY
from tests.helpers import tiny

METRIC_OF_HPARAM = {"alpha": "hp/alpha", "beta": "hp/beta", "gamma": "hp/gamma", "teacher_weight": "hp/teacher_weight",
                    "lr_c": "lr/c", "lr_g": "lr/g", "lr_dc": "lr/dc", "lr_dd": "lr/dd"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000.0


# ---------------------------------------------------------------------- synthetic runs
def config(**values: Any) -> dict[str, Any]:
    return Config.from_dict(values).to_dict()


def write_trial(run_dir: Path, trial_id: str, cfg: dict[str, Any], rows: list[dict[str, Any]],
                start_time: float = T0, first_iteration: int = 1, part_rows: int = 1000, event: str = "start",
                write_config: bool = True, version: int | None = CONFIG_VERSION) -> None:
    """``cfg`` logged as today's runs log it, with its config version (``version=None``: as a run from before
    config versions)."""
    if version is not None:
        cfg = {**cfg, VERSION_KEY: version}
    if write_config:
        trials = P.trials_writer(str(run_dir))
        trials.append({**P.trial_row(trial_id, event, first_iteration - 1, cfg), "timestamp": start_time})
        trials.flush()
    writer = P.metrics_writer(str(run_dir), trial_id, max_rows=part_rows)
    for offset, metrics in enumerate(rows):
        iteration = first_iteration + offset
        row = P.metrics_row({"epoch": iteration, **metrics}, iteration, float(iteration))
        row["timestamp"] = start_time + iteration
        writer.append(row)
    writer.flush()


def curve(best_val: float, test_at_best: float) -> list[dict[str, float]]:
    """Three reports; the best acc/val is the second, and a decoy higher acc/test sits elsewhere."""
    return [{"acc/val": best_val - 0.2, "acc/test": 0.995},
            {"acc/val": best_val, "acc/test": test_at_best},
            {"acc/val": best_val - 0.1, "acc/test": 0.999, "aug/l1": 0.1}]


# Table-1 data with hand-computed results (percent):
#   none,  10/class: 90, 92, 97  → mean 93, sample std sqrt((9 + 1 + 16) / 2) = sqrt(13)
#   light, 10/class: 95, 96      → mean 95.5, std sqrt(0.5)
#   learned (all players): 99    → std undefined
#   none,   5/class: 80, 84      → mean 82, std sqrt(8)  (Fig. 3's second size)
TABLE_TRIALS = {
    "none_s0": ({"aug": "none", "seed": 0}, 0.90), "none_s1": ({"aug": "none", "seed": 1}, 0.92),
    "none_s2": ({"aug": "none", "seed": 2}, 0.97),
    "light_s0": ({"aug": "light", "seed": 0}, 0.95), "light_s1": ({"aug": "light", "seed": 1}, 0.96),
    "learned_s0": ({"aug": "learned", "seed": 0}, 0.99),
    "ablation_b": ({"preset": "table3_b", "seed": 0}, 0.85),
    "small_s0": ({"aug": "none", "train_per_class": 5, "seed": 0}, 0.80),
    "small_s1": ({"aug": "none", "train_per_class": 5, "seed": 1}, 0.84),
}


@pytest.fixture()
def table_run(tmp_path) -> Path:
    run = tmp_path / "tables_run"
    for index, (trial_id, (values, test)) in enumerate(TABLE_TRIALS.items()):
        write_trial(run, trial_id, config(**values), curve(0.5 + index / 100, test))
    return run


# PBT data: A, B, C start with alpha 0.1/0.2/0.3, lr_c 1e-3/2e-3/3e-3.
#   t+100, after iteration 4: A copies C, alpha → 0.36, lr_c → 2.4e-3
#   t+200, after iteration 8: B copies A, alpha → 0.288, lr_c → 2.88e-3
#   t+250, after iteration 8: D copies B (which had just exploited), alpha → 0.3456
PBT_START = {"A": (0.1, 1e-3), "B": (0.2, 2e-3), "C": (0.3, 3e-3), "D": (0.05, 5e-4)}
PBT_EXPLOITS = [
    (T0 + 100, 4, "C", "A", {"alpha": (0.1, 0.36), "lr_c": (1e-3, 2.4e-3)}),
    (T0 + 200, 8, "A", "B", {"alpha": (0.2, 0.288), "lr_c": (2e-3, 2.88e-3)}),
    (T0 + 250, 8, "B", "D", {"alpha": (0.05, 0.3456)}),
]


@pytest.fixture()
def pbt_run(tmp_path) -> Path:
    run = tmp_path / "pbt_run"
    best = {"A": 0.7, "B": 0.9, "C": 0.6, "D": 0.8}
    for trial_id, (alpha, lr_c) in PBT_START.items():
        cfg = config(alpha=alpha, lr_c=lr_c, seed=ord(trial_id))
        rows = [{"acc/val": best[trial_id] * i / 12, "acc/test": 0.5, "hp/alpha": alpha} for i in range(1, 13)]
        write_trial(run, trial_id, cfg, rows)
    events = P.pbt_events_writer(str(run))
    for timestamp, iteration, src, dst, changes in PBT_EXPLOITS:
        for key, (old, new) in changes.items():
            events.append({"timestamp": timestamp, "training_iteration": iteration, "src_trial": src,
                           "dst_trial": dst, "key": key, "old_value": old, "new_value": new})
    events.flush()
    return run


def parts_of(run: Path, trial_id: str) -> list[Path]:
    return sorted((run / "parquet" / "metrics" / f"trial_id={trial_id}").glob("part-*.parquet"))


# ---------------------------------------------------------------------- load
def test_load_returns_sorted_typed_frames(table_run):
    run = analysis.load(str(table_run))
    assert isinstance(run, analysis.RunData)
    assert list(run.metrics.columns) == ["trial_id", *P.METRICS_SCHEMA.names]
    assert len(run.metrics) == 3 * len(TABLE_TRIALS)
    assert list(run.metrics["trial_id"].cat.categories) == sorted(TABLE_TRIALS)
    first = run.metrics[run.metrics["trial_id"] == "none_s0"]
    assert list(first["training_iteration"]) == [1, 2, 3]
    assert first["aug/l1"].isna().tolist() == [True, True, False]  # missing metric → null
    assert run.trials["config"].iloc[0]["dataset"] == "digits"
    assert run.events.empty and run.skipped == []


def test_duplicates_from_restores_keep_the_latest_written_row(tmp_path):
    run = tmp_path / "run"
    cfg = config()
    write_trial(run, "x", cfg, [{"acc/val": i / 10} for i in range(1, 6)], start_time=T0)
    # restored from the checkpoint of iteration 3: reports 4..6 again, later
    write_trial(run, "x", cfg, [{"acc/val": 0.9 + i / 100} for i in range(4, 7)], start_time=T0 + 100,
                first_iteration=4, event="restore")
    write_trial(run, "y", cfg, [{"acc/val": 0.5}])
    data = analysis.load(str(run))
    x = data.metrics[data.metrics["trial_id"] == "x"]
    assert list(x["training_iteration"]) == [1, 2, 3, 4, 5, 6]
    assert x["acc/val"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.94, 0.95, 0.96])
    assert len(data.metrics) == 7
    assert list(data.trials["event"]) == ["start", "start", "restore"]


def test_uri_and_local_path_give_the_same_frames(table_run):
    local = analysis.load(str(table_run))
    remote = analysis.load(f"file://{table_run}")
    pd.testing.assert_frame_equal(local.metrics, remote.metrics)


def _damage(run: Path) -> dict[str, str]:
    """Truncate one part, add a non-Parquet part, a foreign Parquet file, a stray text file."""
    truncated = parts_of(run, "none_s1")[0]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage = run / "parquet" / "metrics" / "trial_id=light_s0" / "part-9.parquet"
    garbage.write_text("this is not parquet")
    foreign = run / "parquet" / "metrics" / "trial_id=none_s0" / "part-foreign.parquet"
    pq.write_table(pa.table({"foo": [1, 2]}), foreign)
    mistyped = run / "parquet" / "metrics" / "trial_id=none_s2" / "part-typed.parquet"
    pq.write_table(pa.table({"training_iteration": [9], "acc/val": ["high"]}), mistyped)
    stray = run / "parquet" / "metrics" / "notes.txt"
    stray.write_text("hello")
    hidden = run / "parquet" / "metrics" / "trial_id=none_s0" / ".part-x.parquet.tmp"
    hidden.write_bytes(b"in progress")
    return {"truncated": str(truncated), "garbage": str(garbage), "foreign": str(foreign),
            "mistyped": str(mistyped), "stray": str(stray)}


def test_damaged_parts_are_reported_by_path_and_the_rest_loads(table_run):
    damaged = _damage(table_run)
    with pytest.warns(PartFileWarning) as caught:
        run = analysis.load(str(table_run))
    messages = " ".join(str(w.message) for w in caught)
    for path in damaged.values():
        assert path in messages
    assert {path for path, _ in run.skipped} == set(damaged.values())
    assert "none_s1" not in set(run.metrics["trial_id"])  # its only part was truncated
    assert set(run.metrics["trial_id"]) == set(TABLE_TRIALS) - {"none_s1"}
    assert len(run.metrics) == 3 * (len(TABLE_TRIALS) - 1)


def test_cli_reports_damaged_parts_and_still_writes_the_report(table_run, tmp_path, capsys):
    damaged = _damage(table_run)
    out = tmp_path / "report"
    assert main(["analyze", str(table_run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"raydaug: warning: skipped {damaged['truncated']}" in err
    assert "Traceback" not in err
    assert (out / "report.html").exists()
    assert damaged["truncated"] in (out / "report.html").read_text()


def test_a_part_merged_away_during_the_read_is_not_reported(table_run, monkeypatch):
    from raydaug.logging import reader as module  # the reader analysis.load reads through

    real = module.list_parts
    calls = []

    def racing(filesystem, folder):
        parts, others = real(filesystem, folder)
        calls.append(folder)
        if len(calls) == 1:  # the first listing still shows a part that compaction then removed
            parts = parts + [f"{folder}/trial_id=none_s0/part-00000000000000000001-gone.parquet"]
        return parts, others

    monkeypatch.setattr(module, "list_parts", racing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartFileWarning)
        run = analysis.load(str(table_run))
    assert len(run.metrics) == 3 * len(TABLE_TRIALS) and run.skipped == []
    assert calls[0] == calls[1]  # listed again


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such run folder"),
    ("empty", "is not a raydaug run"),
    ("file", "is a file"),
    ("no_metrics", "has no metrics yet"),
    ("all_corrupt", "has no metrics yet"),
    ("storage", "contains run(s) inner"),
])
@pytest.mark.parametrize("command", ["analyze", "export", "compact"])
def test_bad_run_folders_give_one_line_errors(tmp_path, capsys, setup, message, command):
    target = tmp_path / "target"
    if setup == "empty":
        target.mkdir()
    elif setup == "file":
        target.write_text("x")
    elif setup == "no_metrics":
        trials = P.trials_writer(str(target))
        trials.append(P.trial_row("t", "start", 0, config()))
        trials.flush()
    elif setup == "all_corrupt":
        folder = target / "parquet" / "metrics" / "trial_id=t"
        folder.mkdir(parents=True)
        (folder / "part-1.parquet").write_bytes(b"PAR1 truncated")
    elif setup == "storage":
        write_trial(target / "inner", "t", config(), [{"acc/val": 0.5}])
    argv = {"analyze": ["analyze", str(target)], "export": ["schedule", "export", str(target)],
            "compact": ["compact", str(target)]}[command]
    if command == "compact" and setup in ("no_metrics", "all_corrupt"):
        return  # compacting a run without metrics is fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartFileWarning)
        code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if not line.startswith("raydaug: warning:")]
    assert len(lines) == 1 and lines[0].startswith("raydaug: error: ") and message in lines[0]


def test_analysis_errors_are_usage_errors_with_exit_code_2():
    from raydaug.errors import EXIT_CODES, UsageError

    assert issubclass(NotARunError, UsageError) and issubclass(NoMetricsError, UsageError)
    assert EXIT_CODES[UsageError] == 2


# ---------------------------------------------------------------------- compaction
def test_compact_merges_parts_and_changes_nothing_else(tmp_path):
    run = tmp_path / "run"
    write_trial(run, "a", config(), [{"acc/val": i / 10} for i in range(1, 8)], part_rows=3)
    write_trial(run, "a", config(), [{"acc/val": 0.99}], start_time=T0 + 50, first_iteration=7, event="restore")
    write_trial(run, "b", config(), [{"acc/val": 0.5}, {"acc/val": 0.6}], part_rows=1)
    bad = run / "parquet" / "metrics" / "trial_id=a" / "part-bad.parquet"
    bad.write_bytes(b"garbage")
    with pytest.warns(PartFileWarning):
        before = analysis.load(str(run))
    assert len(parts_of(run, "a")) == 5 and len(parts_of(run, "b")) == 2
    with pytest.warns(PartFileWarning, match="part-bad.parquet"):
        merged = compact_run(str(run))
    assert merged == {"parquet/trials": 3, "parquet/metrics/trial_id=a": 4, "parquet/metrics/trial_id=b": 2}
    assert parts_of(run, "a")[-1] == bad or bad in parts_of(run, "a")
    assert len(parts_of(run, "a")) == 2 and len(parts_of(run, "b")) == 1
    assert len(list((run / "parquet" / "trials").glob("*.parquet"))) == 1
    with pytest.warns(PartFileWarning):
        after = analysis.load(str(run))
    pd.testing.assert_frame_equal(before.metrics, after.metrics)
    pd.testing.assert_frame_equal(before.trials.drop(columns="config"), after.trials.drop(columns="config"))
    assert after.metrics.loc[after.metrics["training_iteration"] == 7, "acc/val"].tolist() == [0.99]
    bad.unlink()
    assert main(["compact", str(run)]) == 0
    assert compact_run(str(run)) == {}  # nothing left to merge


# ---------------------------------------------------------------------- tables
def test_best_rows_pick_the_best_val_iteration_and_the_earliest_on_ties(tmp_path):
    run = tmp_path / "run"
    write_trial(run, "t", config(), [{"acc/val": 0.8, "acc/test": 0.7}, {"acc/val": 0.8, "acc/test": 0.9},
                                     {"acc/val": 0.1, "acc/test": 1.0}])
    best = analysis.best_rows(analysis.load(str(run)))
    assert best["training_iteration"].tolist() == [1] and best["acc/test"].tolist() == [0.7]


def test_table1_matches_hand_computed_mean_and_std(table_run):
    summary = trial_summary(analysis.load(str(table_run)))
    by_id = summary.set_index("trial_id")
    assert by_id.at["none_s0", "test_at_best"] == 0.90 and by_id.at["none_s0", "best_iteration"] == 2
    assert by_id.at["ablation_b", "table3_row"] == "b" and by_id.at["learned_s0", "table3_row"] == "l"
    t1 = tables.table1(summary).set_index(["train_per_class", "aug"])
    assert len(t1) == 4  # ablation row b is not part of Table 1
    assert t1.at[(10, "none"), "trials"] == 3
    assert t1.at[(10, "none"), "acc_test_mean"] == pytest.approx(93.0)
    assert t1.at[(10, "none"), "acc_test_std"] == pytest.approx(math.sqrt(13.0))
    assert t1.at[(10, "light"), "acc_test_mean"] == pytest.approx(95.5)
    assert t1.at[(10, "light"), "acc_test_std"] == pytest.approx(math.sqrt(0.5))
    assert t1.at[(10, "learned"), "acc_test_mean"] == pytest.approx(99.0)
    assert math.isnan(t1.at[(10, "learned"), "acc_test_std"])
    assert t1.at[(5, "none"), "acc_test_std"] == pytest.approx(math.sqrt(8.0))
    # the digits reference numbers sit beside runs of the reference protocol (10 images per class)
    assert t1.at[(10, "none"), "paper"] == 95.47 and t1.at[(10, "light"), "paper"] == 97.59
    assert math.isnan(t1.at[(5, "none"), "paper"])


def test_table3_rows_and_paper_numbers(table_run):
    summary = trial_summary(analysis.load(str(table_run)))
    t3 = tables.table3(summary)
    rows = t3[t3["train_per_class"] == 10].set_index("row")
    assert list(rows.index) == ["a", "b", "l"]
    assert rows.at["a", "acc_test_mean"] == pytest.approx(93.0)
    assert rows.at["b", "acc_test_mean"] == pytest.approx(85.0) and rows.at["b", "players"] == "C + T"
    assert rows["paper"].isna().all()  # the paper's numbers are CIFAR-10 at 400 per class
    cifar = summary.assign(dataset="cifar10", train_per_class=400)
    assert tables.table3(cifar).set_index("row").at["b", "paper"] == 64.75
    assert tables.table1(cifar).set_index("aug").at["none", "paper"] == 66.73
    no_ablation = summary[summary["trial_id"] != "ablation_b"]
    assert tables.table3(no_ablation).empty


def test_table_files_and_markdown(table_run, tmp_path):
    out = tmp_path / "report"
    assert main(["analyze", str(table_run), "--out", str(out)]) == 0
    csv = pd.read_csv(out / "table1.csv")
    none = csv[(csv["aug"] == "none") & (csv["train_per_class"] == 10)].iloc[0]
    assert none["acc_test_mean"] == pytest.approx(93.0) and none["acc_test_std"] == pytest.approx(math.sqrt(13))
    markdown = (out / "table1.md").read_text()
    assert "| digits | 10 | baseline (no augmentation) | 3 | 93.00 ± 3.61 | 95.47 |" in markdown
    assert "| learned (ours) | 1 | 99.00 | — |" in markdown
    assert "C + T" in (out / "table3.md").read_text()
    best = pd.read_csv(out / "best_checkpoints.csv")
    assert best["trial_id"].iloc[0] == "small_s1"  # highest best acc/val (0.5 + 8/100)


def test_report_links_exist_and_plots_are_pngs(table_run, tmp_path, capsys):
    out = tmp_path / "report"
    analyze_command(str(table_run), str(out))
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed and "9 trial(s)" in printed
    page = (out / "report.html").read_text()
    targets = re.findall(r'(?:href|src)="([^"#]+)"', page)
    assert targets and all((out / target).exists() for target in targets)
    assert not re.search(r'(?:href|src)="(?:https?:)?//', page)  # offline
    for name in ("accuracy_per_trial.png", "accuracy_per_group.png", "fig3_samples.png", "augmentation_health.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC and name in page
    fig3 = pd.read_csv(out / "fig3_samples.csv").set_index(["aug", "train_samples"])
    assert fig3.at[("none", 50), "acc_test_mean"] == pytest.approx(82.0)
    assert fig3.at[("none", 100), "acc_test_mean"] == pytest.approx(93.0)


def test_group_curve_is_the_mean_over_trials(table_run):
    run = analysis.load(str(table_run))
    stats = curves.group_curve(run, ["light_s0", "light_s1"], "acc/test").set_index("epoch")
    assert stats.at[2.0, "mean"] == pytest.approx(95.5) and stats.at[2.0, "trials"] == 2


def test_fig4_joint_vs_frozen_snapshots(tmp_path):
    run = tmp_path / "run"
    snapshots = {}
    for epoch in (200, 500):
        path = tmp_path / f"g_{epoch}" / "state.pt"
        save_checkpoint(path, {"epoch": epoch, "config": config(), "nets": {}})
        snapshots[epoch] = str(path)
    write_trial(run, "joint", config(aug="learned"), curve(0.9, 0.93))
    write_trial(run, "f200_a", config(joint=False, g_checkpoint=snapshots[200]), curve(0.8, 0.80))
    write_trial(run, "f200_b", config(joint=False, g_checkpoint=snapshots[200], seed=1), curve(0.8, 0.84))
    write_trial(run, "f500", config(joint=False, g_checkpoint=snapshots[500]), curve(0.8, 0.88))
    out = tmp_path / "report"
    analyze_command(str(run), str(out))
    assert (out / "fig4_joint_vs_frozen.png").read_bytes()[:8] == PNG_MAGIC
    fig4 = pd.read_csv(out / "fig4_joint_vs_frozen.csv")
    frozen = fig4[fig4["training"] == "frozen G"].set_index("snapshot_epoch")
    assert frozen.at[200.0, "acc_test_mean"] == pytest.approx(82.0) and frozen.at[200.0, "trials"] == 2
    assert frozen.at[500.0, "acc_test_mean"] == pytest.approx(88.0)
    assert fig4.loc[fig4["training"] == "joint", "acc_test_mean"].item() == pytest.approx(93.0)
    assert "Fig. 4" in (out / "report.html").read_text()


def test_fig4_across_the_two_stages_of_a_followup_experiment(tmp_path):
    """Stage 1 (joint, RUN_DIR) keeps Tune checkpoint folders; stage 2 (RUN_DIR_separate) trains C on them."""
    stage1, stage2, unrelated = tmp_path / "fig4", tmp_path / "fig4_separate", tmp_path / "fig4_other"
    write_trial(stage1, "j0", config(aug="learned"), curve(0.9, 0.90))
    write_trial(stage1, "j1", config(aug="learned", seed=1), curve(0.9, 0.94))
    write_trial(unrelated, "u", config(aug="learned"), curve(0.9, 0.10))  # a sibling run, not stage 2
    folders = {}
    for epoch in (2, 4):
        folder = stage1 / "train_trial_j0_0_2025" / f"checkpoint_{epoch:06d}"
        folder.mkdir(parents=True)
        (folder / "trial.json").write_text(json.dumps({"epoch": epoch, "training_iteration": epoch}))
        folders[epoch] = str(folder)
    write_trial(stage2, "s2", config(joint=False, g_checkpoint=folders[2]), curve(0.8, 0.70))
    write_trial(stage2, "s4", config(joint=False, g_checkpoint=folders[4]), curve(0.8, 0.76))
    for run in (stage1, stage2):
        out = tmp_path / f"report_{run.name}"
        analyze_command(str(run), str(out))
        fig4 = pd.read_csv(out / "fig4_joint_vs_frozen.csv")
        joint = fig4[fig4["training"] == "joint"]
        assert joint["acc_test_mean"].item() == pytest.approx(92.0) and joint["trials"].item() == 2
        frozen = fig4[fig4["training"] == "frozen G"].set_index("snapshot_epoch")
        assert frozen["acc_test_mean"].to_dict() == pytest.approx({2.0: 70.0, 4.0: 76.0})


# ---------------------------------------------------------------------- PBT lineage and schedules
def _hp(alpha: float, lr_c: float, base: dict[str, Any]) -> dict[str, float]:
    return {**{k: base[k] for k in MUTABLE_HPARAMS}, "alpha": alpha, "lr_c": lr_c}


def test_exploits_and_per_trial_hparams(pbt_run):
    run = analysis.load(str(pbt_run))
    found = lineage.exploits(run)
    assert [(e.iteration, e.src, e.dst) for e in found] == [(4, "C", "A"), (8, "A", "B"), (8, "B", "D")]
    assert found[0].changes == {"alpha": (0.1, 0.36), "lr_c": (1e-3, 2.4e-3)}
    history = lineage.History(run)
    assert history.hparams_at("D")["alpha"] == 0.3456
    assert history.hparams_at("D")["lr_c"] == 2.88e-3  # not mutated: B's value when D copied it
    assert history.hparams_at("B", T0 + 150)["alpha"] == 0.2
    timeline = history.timeline("A")
    assert [(it, v["alpha"], v["lr_c"]) for it, v in timeline] == [(0, 0.1, 1e-3), (4, 0.36, 2.4e-3)]
    table = lineage.lineage_table(run)
    assert table["changes"].iloc[0] == "alpha: 0.1 → 0.36; lr_c: 0.001 → 0.0024"


def test_schedule_export_follows_the_lineage_to_the_root(pbt_run):
    run = analysis.load(str(pbt_run))
    schedule = export_schedule(run)  # best trial by acc/val: B
    c_config = config(alpha=0.3, lr_c=3e-3, seed=ord("C"))
    assert schedule["trial_id"] == "B" and schedule["metric"] == "acc/val"
    assert schedule["initial_config"] == c_config
    assert schedule["changes"] == [
        {"training_iteration": 4, "config": _hp(0.36, 2.4e-3, c_config)},
        {"training_iteration": 8, "config": _hp(0.288, 2.88e-3, c_config)},
    ]
    assert values_at(schedule, 4)["alpha"] == 0.3 and values_at(schedule, 5)["alpha"] == 0.36
    assert values_at(schedule, 9)["lr_c"] == 2.88e-3
    # D copied B right after B's own exploit at 8: B's change at 8 is superseded by D's
    d = export_schedule(run, "D")
    assert [c["training_iteration"] for c in d["changes"]] == [4, 8]
    assert d["changes"][1]["config"] == _hp(0.3456, 2.88e-3, c_config)
    untouched = export_schedule(run, "C")
    assert untouched["changes"] == [] and untouched["initial_config"] == c_config
    with pytest.raises(analysis.NotARunError.__mro__[1], match="no trial 'nope'"):
        export_schedule(run, "nope")


def test_schedule_files_round_trip(pbt_run, tmp_path):
    schedule = export_schedule(analysis.load(str(pbt_run)))
    for name in ("s.json", "s.parquet"):
        path = str(tmp_path / name)
        write_schedule(schedule, path)
        assert read_schedule(path) == schedule
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.column("training_iteration").to_pylist() == [0, 4, 8]
    assert table.column("alpha").to_pylist() == [0.3, 0.36, 0.288]
    (tmp_path / "bad.json").write_text('{"trial_id": "x"}')
    with pytest.raises(Exception, match="not a raydaug schedule"):
        read_schedule(str(tmp_path / "bad.json"))


def test_a_run_logged_before_a_key_existed_reads_with_its_legacy_value(tmp_path):
    """teacher_weight, base_aug and eval_ema came later, with new defaults (1, trivial, true): a run whose
    logged config lacks them trained without the teacher's term on raw images and measured C itself, and
    analysis and replay must say so."""
    from raydaug.analysis.load import config_dicts

    old = config(aug="learned")
    del old["teacher_weight"], old["base_aug"], old["eval_ema"]
    write_trial(tmp_path / "old", "o", old, curve(0.9, 0.9), version=None)
    run = analysis.load(str(tmp_path / "old"))
    logged = config_dicts(run)["o"]
    assert (logged["teacher_weight"], logged["base_aug"], logged["eval_ema"]) == (0.0, "none", False)
    schedule = export_schedule(run, "o")
    assert schedule["initial_config"]["teacher_weight"] == 0.0
    del schedule["initial_config"]["teacher_weight"]  # a schedule file written by that older version
    path = tmp_path / "old_schedule.json"
    path.write_text(json.dumps(schedule))
    assert read_schedule(str(path))["initial_config"]["teacher_weight"] == 0.0


def test_schedule_cli_export(pbt_run, capsys):
    assert main(["schedule", "export", str(pbt_run), "--trial", "A"]) == 0
    written = json.loads((pbt_run / "schedule_A.json").read_text())
    assert [c["training_iteration"] for c in written["changes"]] == [4]
    assert "schedule of trial A" in capsys.readouterr().out
    assert main(["schedule", "export", str(pbt_run), "--out", str(pbt_run / "x.csv")]) == 2


def test_schedule_replay_hands_the_schedule_to_run_replay(pbt_run, tmp_path, monkeypatch, capsys):
    """`raydaug schedule replay` takes the schedule from analysis and runs it through raydaug.tune.replay
    (faked here: no Ray); analysis itself never imports raydaug.tune."""
    import sys
    import types

    calls, cpus = [], []

    def run_replay(schedule, storage, name, cpus_per_trial=None):
        calls.append((schedule, storage, name))
        cpus.append(cpus_per_trial)
        return f"{storage}/{name}"

    fake = types.ModuleType("raydaug.tune.replay")
    fake.run_replay = run_replay
    monkeypatch.setitem(sys.modules, "raydaug.tune.replay", fake)
    path = tmp_path / "sched.json"
    write_schedule(export_schedule(analysis.load(str(pbt_run)), "A"), str(path))
    assert main(["schedule", "replay", str(path)]) == 0
    assert calls[-1][0]["trial_id"] == "A" and calls[-1][1:] == (str(tmp_path), "replay_A") and cpus[-1] is None
    # its CPUs (and torch threads) as asked, e.g. one per replay when several share a machine
    assert main(["schedule", "replay", str(path), "--cpus-per-trial", "1"]) == 0 and cpus[-1] == 1.0
    assert main(["schedule", "replay", str(pbt_run), "--storage", str(tmp_path / "s"), "--name", "again"]) == 0
    assert calls[-1][0]["trial_id"] == "B" and calls[-1][1:] == (str(tmp_path / "s"), "again")
    assert f"replayed trial B (2 change(s)) → {tmp_path / 's'}/again" in capsys.readouterr().out
    # on another split: --set changes the replayed config's other keys, never a scheduled one
    assert main(["schedule", "replay", str(path), "--set", "seed=2"]) == 0
    assert calls[-1][0]["initial_config"]["seed"] == "2" and calls[-1][2] == "replay_A_seed2"
    assert calls[-1][0]["changes"] == export_schedule(analysis.load(str(pbt_run)), "A")["changes"]
    assert main(["schedule", "replay", str(path), "--set", "alpha=0.5"]) == 2
    assert "the schedule governs" in capsys.readouterr().err
    assert main(["schedule", "replay", str(path), "--set", "preset=paper_mnist"]) == 2
    assert "--set preset" in capsys.readouterr().err
    # a value with a slash still makes a folder name
    assert main(["schedule", "replay", str(path), "--set", "data_dir=/d/x"]) == 0
    assert calls[-1][2] == "replay_A_data_dir-d-x"
    # `schedule export` writes into the run by default: the replay of that file goes beside the run
    assert main(["schedule", "export", str(pbt_run), "--trial", "A"]) == 0
    assert main(["schedule", "replay", str(pbt_run / "schedule_A.json")]) == 0
    assert calls[-1][1] == str(pbt_run.parent)


def test_schedule_replay_refuses_a_cpu_share_of_zero_before_ray_starts(pbt_run, tmp_path, capsys):
    """The real replay: its plan checks the share as `raydaug tune` does (0 was once read as 'unset')."""
    path = tmp_path / "sched.json"
    write_schedule(export_schedule(analysis.load(str(pbt_run)), "A"), str(path))
    assert main(["schedule", "replay", str(path), "--cpus-per-trial", "0", "--storage", str(tmp_path / "r")]) == 2
    assert "--cpus-per-trial must be > 0, got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("change, fragment", [
    ({"changes": [{"training_iteration": 4, "config": {"alpha": 0.2}},
                  {"training_iteration": 4, "config": {"alpha": 0.3}}]}, "strictly increasing"),
    ({"changes": [{"training_iteration": 4, "config": {"alpha": 0.2}},
                  {"training_iteration": 2, "config": {"alpha": 0.3}}]}, "strictly increasing"),
    ({"changes": [{"training_iteration": 0, "config": {"alpha": 0.2}}]}, "iterations ≥ 1"),
    ({"changes": [{"training_iteration": 2.5, "config": {"alpha": 0.2}}]}, "training_iteration: int"),
    ({"changes": [{"training_iteration": 2, "config": {"epochs": 9}}]}, "['epochs'], which are not mutable"),
    ({"changes": [{"training_iteration": 2, "config": {"lr_c": -1.0}}]}, "change at iteration 2 is invalid"),
    ({"initial_config": {"lr_c": -1.0}}, "initial_config is not a valid config"),
    ({"trial_id": None, "initial_config": None}, "initial_config must be a config dict"),
])
def test_one_schedule_rule_for_export_files_and_replay(tmp_path, capsys, change, fragment):
    """A schedule file and a replay are checked by the same function (raydaug.schedule.check_schedule):
    two changes at one iteration are refused by both, on one line, before anything runs."""
    from raydaug.schedule import check_schedule

    schedule = {"trial_id": "x", "metric": "acc/val", "initial_config": config(), "changes": [], **change}
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        check_schedule(schedule, "s.json")
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schedule))
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        read_schedule(str(path))
    assert main(["schedule", "replay", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raydaug: error:") and fragment in err and "\n" not in err
    assert not (tmp_path / "replay_x").exists()


def test_schedule_changes_govern_the_iterations_after_them():
    from raydaug.schedule import changes_through

    changes = [(2, {"alpha": 0.2}), (5, {"alpha": 0.5, "lr_c": 1e-3})]
    assert changes_through(changes, 1) == {}
    assert changes_through(changes, 2) == {"alpha": 0.2}
    assert changes_through(changes, 4) == {"alpha": 0.2}
    assert changes_through(changes, 5) == {"alpha": 0.5, "lr_c": 1e-3}
    schedule = {"initial_config": config(alpha=0.1), "changes": [{"training_iteration": k, "config": v}
                                                                  for k, v in changes]}
    assert [values_at(schedule, i)["alpha"] for i in range(1, 8)] == [0.1, 0.1, 0.2, 0.2, 0.2, 0.5, 0.5]


def test_pbt_report_sections(pbt_run, tmp_path):
    out = tmp_path / "report"
    analyze_command(str(pbt_run), str(out))
    for name in ("pbt_schedules.png", "pbt_lineage.png", "best_schedule.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    exploits = pd.read_csv(out / "pbt_lineage.csv")
    assert list(zip(exploits["src_trial"], exploits["dst_trial"])) == [("C", "A"), ("A", "B"), ("B", "D")]
    best = pd.read_csv(out / "best_schedule.csv")
    assert best["training_iteration"].tolist() == [0, 4, 8]
    assert best["alpha"].tolist() == [0.3, 0.36, 0.288]


# ---------------------------------------------------------------------- checkpoints
def test_find_checkpoints_prefers_the_best_iteration(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for iteration, index in ((4, 1), (6, 2)):
        folder = run / "train_trial_abc_00001_1_alpha=0.1_2025-01-01" / f"checkpoint_{index:06d}"
        folder.mkdir(parents=True)
        (folder / "state.pt").write_bytes(b"x")
        (folder / "trial.json").write_text(json.dumps({"training_iteration": iteration}))
    other = run / "train_trial_abc_00011_2_2025-01-01" / "checkpoint_000000"
    other.mkdir(parents=True)
    (other / "state.pt").write_bytes(b"y")
    found = find_checkpoints(str(run), {"abc_00001": 4, "abc_00011": 9, "abc_00002": 1})
    assert found["abc_00001"] == (str(run / "train_trial_abc_00001_1_alpha=0.1_2025-01-01" / "checkpoint_000001"
                                      / "state.pt"), 4)
    assert found["abc_00011"] == (str(other / "state.pt"), None)
    assert "abc_00002" not in found
    assert find_checkpoints(str(run), {"abc_00001": 5})["abc_00001"][1] == 6  # not kept: the latest


# ---------------------------------------------------------------------- end to end: `raydaug train`
@pytest.fixture(scope="module")
def one_thread():
    """Two torch threads on a busy 2-core machine run ~10x slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def train_run(tmp_path_factory, one_thread) -> Path:
    """A `raydaug train` folder interrupted after epoch 3 (checkpoint at 2) and resumed: iteration 3 is
    reported twice."""
    out = tmp_path_factory.mktemp("train") / "digits_run"
    cfg = tiny(epochs=4, checkpoint_every=2)
    quiet = lambda *_: None  # noqa: E731
    from raydaug.train import run_training

    run_training(cfg, out, log=quiet, stop_after_epochs=3)
    run_training(cfg, out, resume=True, log=quiet)
    return out


def test_train_run_parquet_reads_back_everywhere_without_restore_duplicates(train_run):
    metrics_dir = train_run / "parquet" / "metrics"
    raw = pq.ParquetDataset(metrics_dir, partitioning="hive").read()
    assert sorted(raw.column("training_iteration").to_pylist()) == [1, 2, 3, 3, 4]
    assert set(raw.schema.names) == {"trial_id", *P.METRICS_SCHEMA.names}
    frame = pd.read_parquet(metrics_dir)
    assert frame["acc/val"].notna().all() and frame["aug/z_div"].notna().all()
    import duckdb

    count = duckdb.sql(f"""SELECT count(*), count(DISTINCT training_iteration), max("acc/val")
                           FROM read_parquet('{metrics_dir}/*/*.parquet', hive_partitioning = true)""").fetchall()[0]
    assert count[:2] == (5, 4) and count[2] == pytest.approx(frame["acc/val"].max())
    run = analysis.load(str(train_run))
    assert run.metrics["training_iteration"].tolist() == [1, 2, 3, 4]
    repeated = raw.to_pandas()
    repeated = repeated[repeated["training_iteration"] == 3]
    assert run.metrics.loc[2, "timestamp"] == repeated["timestamp"].max()
    assert list(run.trials["event"]) == ["start", "restore"]


def test_analyze_a_train_folder_end_to_end(train_run, one_thread, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", str(train_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 trial(s), 4 metric rows" in printed and "best trial digits_run" in printed
    link = out / "checkpoints" / "digits_run" / "state.pt"
    assert link.exists() and link.resolve() == (train_run / "checkpoints" / "state.pt").resolve()
    grid = out / "samples_digits_run.png"
    assert grid.read_bytes()[:8] == PNG_MAGIC
    page = (out / "report.html").read_text()
    assert "samples_digits_run.png" in page and "augmentation_health.png" in page


def test_a_checkpoint_logged_with_a_key_removed_since_still_renders_its_grid(train_run, tmp_path):
    """A run from before c_views and warp_bound were removed logged them at the values at which they did
    nothing: its G's sample grid renders; a G that trained a warp is refused by name, not rebuilt without it."""
    from raydaug.analysis.grids import render_samples
    from raydaug.checkpoint import load_checkpoint

    payload = load_checkpoint(train_run / "checkpoints" / "state.pt")
    path = tmp_path / "old" / "state.pt"
    # logged as a version-0 run would have (no config_version), while the removed keys existed
    logged = {key: value for key, value in payload["config"].items() if key != "config_version"}
    payload["config"] = {**logged, "c_views": 1, "warp_bound": 0.0}
    save_checkpoint(path, payload)
    grid, labels = render_samples(path, count=4, num_z=2)
    assert grid.shape[0] in (1, 3) and labels == ["0", "1", "2", "3"]  # digits' class names, classes interleaved
    payload["config"]["warp_bound"] = 0.1
    save_checkpoint(path, payload)
    with pytest.raises(ConfigError, match=r"warp_bound=0\.1 \(removed in config version 2"):
        render_samples(path)


def test_sample_grids_come_from_the_learned_trials_when_a_baseline_ranks_first(train_run, one_thread, tmp_path):
    """In a study the hand-made baselines often have the best acc/val: the grids must still show the best
    learned trials' G, not be left out because no learned trial made the top checkpoints."""
    run = tmp_path / "study"
    shutil.copytree(train_run, run)
    trials = P.trials_writer(str(run))
    trials.append(P.trial_row("hand", "start", 0, tiny(aug="none").to_dict()))
    trials.flush()
    writer = P.metrics_writer(str(run), "hand")
    writer.append(P.metrics_row({"epoch": 1, "acc/val": 1.0, "acc/test": 1.0}, 1, 1.0))
    writer.flush()
    out = tmp_path / "report"
    build_report(analysis.load(str(run)), out, top_k=1)
    assert pd.read_csv(out / "best_checkpoints.csv")["trial_id"].tolist() == ["hand"]
    assert (out / "samples_digits_run.png").read_bytes()[:8] == PNG_MAGIC


def test_best_checkpoints_of_merged_baselines_come_from_their_own_run(train_run, one_thread, tmp_path):
    """A follow-up stage's baseline trials keep their checkpoints in RUN_DIR_baselines: the best-checkpoint
    table must find them there, not leave them blank because the report's own run lacks them."""
    run = tmp_path / "study"
    shutil.copytree(train_run, run)
    stage = tmp_path / "study_baselines"
    trials = P.trials_writer(str(stage))
    trials.append(P.trial_row("hand_00000", "start", 0, tiny(aug="light").to_dict()))
    trials.flush()
    writer = P.metrics_writer(str(stage), "hand_00000")
    for iteration in (1, 2):
        writer.append(P.metrics_row({"epoch": iteration, "acc/val": 0.9 + iteration / 100, "acc/test": 0.9},
                                    iteration, float(iteration)))
    writer.flush()
    for iteration in (1, 2):
        folder = stage / "train_trial_hand_00000_0_2026-01-01" / f"checkpoint_{iteration - 1:06d}"
        folder.mkdir(parents=True)
        (folder / "state.pt").write_bytes(b"x")
        (folder / "trial.json").write_text(json.dumps({"training_iteration": iteration}))
    out = tmp_path / "report"
    build_report(analysis.load(str(run)), out, top_k=2)
    best = pd.read_csv(out / "best_checkpoints.csv").set_index("trial_id")
    assert list(best.index) == ["hand_00000", "digits_run"]
    assert best.at["hand_00000", "checkpoint"] == str(folder / "state.pt")
    assert best.at["hand_00000", "checkpoint_iteration"] == 2
    assert (out / "checkpoints" / "hand_00000" / "state.pt").exists()


def test_analysis_of_a_run_still_being_written(train_run, tmp_path):
    """A writer's temp file (a part being written) is invisible; new parts show on the next load."""
    copy = tmp_path / "live"
    shutil.copytree(train_run / "parquet", copy / "parquet")
    folder = copy / "parquet" / "metrics" / "trial_id=digits_run"
    (folder / ".part-00000000000000000099-abcd.parquet.tmp").write_bytes(b"PAR1 partial")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartFileWarning)
        before = analysis.load(str(copy))
    writer = P.metrics_writer(str(copy), "digits_run")
    writer.append(P.metrics_row({"acc/val": 1.0, "epoch": 5}, 5, 9.0))
    writer.flush()
    after = analysis.load(str(copy))
    assert len(after.metrics) == len(before.metrics) + 1


# ---------------------------------------------------------------------- end to end: Tune
@pytest.fixture(scope="module")
def smoke_pbt(tmp_path_factory, request) -> tuple[Path, str]:
    """(RUN_DIR, what the driver printed) of `raydaug tune smoke --smoke` (through run_tune).

    The two trials get 1.5 of the session's 2 CPUs, so they run one at a time and alternate (PBT pauses
    each at every report while the other waits): the weak one (lr_c 1e-5) exploits the other one at a
    perturbation for certain. With 1 CPU each this test failed once in a combined run: the second
    trial's worker started late, the first trial had finished its 4 iterations before the second
    reported once, and PBT compares only unfinished trials, so nothing was exploited (seen in about
    half of 12 back-to-back smoke runs on the loaded 2-core machine)."""
    pytest.importorskip("ray")
    from raydaug.tune import runner

    request.getfixturevalue("ray_session")  # one Ray for the whole session (tests/conftest.py)
    storage = tmp_path_factory.mktemp("tune")
    from raydaug.tune.options import TuneOptions

    options = TuneOptions(config="smoke", smoke=True, name="pbt", storage=str(storage), cpus_per_trial=1.5)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # Ray's own lines and ours (log=print)
        runner.run_tune(options)
    return storage / "pbt", printed.getvalue()


def raw_metrics(run_dir: Path) -> pd.DataFrame:
    """Every metrics row written, restored rows included (``analysis.load`` keeps the last of each)."""
    return pd.read_parquet(run_dir / "parquet" / "metrics")


@pytest.mark.slow
def test_smoke_pbt_events_name_source_target_and_values(smoke_pbt):
    """Every exploit names two trials of the run; the exploited trial's first row written after it (at
    the iteration after the donor's checkpoint) reports the new values of every mutated key."""
    run_dir, _ = smoke_pbt
    run = analysis.load(str(run_dir))
    found = lineage.exploits(run)
    assert found, "the smoke config's weak trial always exploits the other one (trials one at a time)"
    trial_ids = set(run.trials["trial_id"])
    raw = raw_metrics(run_dir)
    checked = 0
    for exploit in found:
        assert exploit.src != exploit.dst and {exploit.src, exploit.dst} <= trial_ids
        assert exploit.changes and set(exploit.changes) <= set(MUTABLE_HPARAMS)
        after = raw[(raw["trial_id"] == exploit.dst) & (raw["timestamp"] > exploit.timestamp)]
        if after.empty:
            continue  # the trial ended right after this exploit
        first = after.sort_values("timestamp").iloc[0]
        assert first["training_iteration"] == exploit.iteration + 1
        for key, (_, new) in exploit.changes.items():
            assert first[METRIC_OF_HPARAM[key]] == pytest.approx(new), key
        checked += 1
    assert checked > 0


@pytest.mark.slow
def test_tune_prints_where_tensorboard_finds_the_run_and_not_rays_staging_folder(smoke_pbt):
    """Ray Tune writes each trial's reported metrics as TensorBoard scalars into the trial's folder of
    RUN_DIR; our summary names RUN_DIR. Ray's own "To visualize your results with TensorBoard" line
    names its staging folder under /tmp/ray/session_*: it must not be printed."""
    run_dir, printed = smoke_pbt
    assert any(run_dir.glob("train_trial_*/events.out.tfevents.*"))
    assert f"tensorboard --logdir {run_dir}" in printed
    assert "To visualize your results with TensorBoard" not in printed and "driver_artifacts" not in printed
    assert f"results in {run_dir}" in printed


@pytest.mark.slow
def test_replay_reproduces_the_exported_schedule(smoke_pbt, tmp_path):
    from raydaug.tune.replay import run_replay

    run_dir, _ = smoke_pbt
    run = analysis.load(str(run_dir))
    schedule = export_schedule(run, lineage.exploits(run)[-1].dst)  # a trial with at least one exploit
    assert schedule["changes"]
    replay_dir = run_replay(schedule, str(tmp_path), "replay")
    replay = analysis.load(replay_dir)
    assert replay.metrics["trial_id"].nunique() == 1
    original = run.metrics.loc[run.metrics["trial_id"] == schedule["trial_id"], "training_iteration"]
    changes = [c["training_iteration"] for c in schedule["changes"]]
    assert replay.metrics["training_iteration"].tolist() == list(range(1, original.max() + 1)), \
        f"replay of changes at {changes} stopped early"
    for _, row in replay.metrics.iterrows():
        expected = values_at(schedule, int(row["training_iteration"]))
        for key, column in METRIC_OF_HPARAM.items():
            assert row[column] == pytest.approx(expected[key]), (key, int(row["training_iteration"]))


def test_paths_and_uris_join_with_the_query_kept_at_the_end():
    """RUN_DIR = storage/name for a local path and for a URI whose query configures its filesystem
    (pyarrow reads the query at the end of the URI: joining after it would lose it)."""
    from raydaug.logging.parquet import join, parent, resolve

    uri = "s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join(uri, "exp") == "s3://bucket/runs/exp?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join(uri + "/", "exp", "schedule_x.json").startswith("s3://bucket/runs/exp/schedule_x.json?")
    assert parent(join(uri, "exp")) == uri and parent("s3://bucket") == "s3://bucket"
    assert join("/a/b/", "c") == "/a/b/c" and parent("/a/b/c") == "/a/b" and parent("c") == "." and parent("/a") == "/"
    assert resolve(join("file:///tmp/x", "y"))[1] == "/tmp/x/y"
