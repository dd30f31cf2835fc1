"""Runs that belong together: the stages of one ``raydaug tune`` (a tune_config's follow-up writes
``RUN_DIR_<followup>``) and the run a frozen-G trial took its generator from. The report merges their
trials with the run's own where a comparison needs both: Fig. 4 (joint training against C on frozen G
snapshots) and learned against hand-made augmentation (baselines run as a follow-up stage).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from raydaug.analysis.comparison import is_hand_made
from raydaug.analysis.load import PARTITION_KEY, RunData, config_dicts, load
from raydaug.errors import NotARunError, PartFileWarning, UsageError
from raydaug.experiment import BASELINES_STAGE
from raydaug.logging.parquet import resolve, split_query


def _frozen(config: dict[str, Any]) -> bool:
    return config.get("joint") is False and bool(config.get("g_checkpoint"))


def related_runs(run: RunData) -> dict[str, str]:
    """Runs that belong with this one (local storage) → their role: ``"joint"``, the run a frozen-G
    trial's ``g_checkpoint`` lives in; ``"sibling"``, a run ``<name>_*`` beside it (``raydaug tune`` writes
    a follow-up stage to ``RUN_DIR_<followup>``)."""
    root = Path(run.run_dir).resolve() if Path(run.run_dir).is_dir() else None
    if root is None:
        return {}
    found: dict[str, str] = {}
    for config in config_dicts(run).values():
        if _frozen(config):
            for parent in Path(config["g_checkpoint"]).resolve().parents:
                if (parent / "parquet").is_dir():
                    if parent != root:
                        found[str(parent)] = "joint"
                    break
    for sibling in root.parent.glob(f"{root.name}_*"):
        if (sibling / "parquet" / "trials").is_dir():
            found.setdefault(str(sibling.resolve()), "sibling")
    return found


def combine_runs(run: RunData, others: list[tuple[RunData, str]]) -> tuple[RunData, list[str]]:
    """``run`` plus, from each related run, its joint trials (role ``"joint"``), its frozen-G trials whose
    G comes from ``run`` (``"frozen"``), its hand-made baseline trials (``"baselines"``) or every trial
    with its PBT events (``"pooled"``: the same experiment on more splits or training runs), as one
    RunData; and the runs used."""
    root = Path(run.run_dir).resolve()
    metrics, trials, events, pilots, used = [run.metrics], [run.trials], [run.events], [run.pilots], []
    for other, role in others:
        configs = config_dicts(other)
        if role == "joint":
            keep = [t for t, c in configs.items() if c.get("joint") is True]
        elif role == "baselines":
            keep = [t for t, c in configs.items() if is_hand_made(c.get("aug"))]
        elif role == "pooled":
            keep = list(configs)
        else:
            keep = [t for t, c in configs.items()
                    if _frozen(c) and Path(c["g_checkpoint"]).resolve().is_relative_to(root)]
        rows = other.metrics[other.metrics[PARTITION_KEY].astype(str).isin(keep)]
        if rows.empty:
            continue
        used.append(other.run_dir)
        metrics.append(rows)
        trials.append(other.trials[other.trials["trial_id"].astype(str).isin(keep)])
        pilots.append(other.pilots[other.pilots["trial_id"].astype(str).isin(keep)])
        if role == "pooled":
            events.append(other.events)
    merged = pd.concat([m.assign(**{PARTITION_KEY: m[PARTITION_KEY].astype(str)}) for m in metrics],
                       ignore_index=True)
    merged[PARTITION_KEY] = merged[PARTITION_KEY].astype("category")
    merged_events = pd.concat(events, ignore_index=True) if len(events) > 1 else run.events
    return (RunData(run.run_dir, merged, pd.concat(trials, ignore_index=True), merged_events, run.skipped,
                    pd.concat(pilots, ignore_index=True)), used)


def _sibling_baselines(run_dir: str) -> RunData | None:
    """The follow-up stage ``RUN_DIR_baselines`` of ``run_dir`` (a local path or a URI, S3 too), or None
    where there is no readable one. Only that sibling: ``RUN_DIR_smoke`` or ``RUN_DIR_s1`` are other
    experiments on other splits."""
    base, query = split_query(run_dir)
    sibling = f"{base.rstrip('/')}_{BASELINES_STAGE}{query}"
    filesystem, root = resolve(sibling)
    if filesystem.get_file_info(f"{root}/parquet/trials").type != pafs.FileType.Directory:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartFileWarning)
        try:
            return load(sibling, require_metrics=False)
        except NotARunError:
            return None


def gather(run: RunData, baselines: Sequence[str] = (),
           pool: Sequence[str] = ()) -> tuple[RunData, list[str], list[str]]:
    """``run`` with every trial of each run in ``pool`` (``raydaug analyze --pool``: the same experiment
    on more split seeds or training runs, reported as one), plus hand-made baseline trials (any aug but
    learned): those of each run in ``baselines`` (``raydaug analyze --baselines``, e.g. a
    later study's learned variants against the method study's baselines; each must hold some), else of the
    follow-up stage ``RUN_DIR_baselines`` (``BASELINES_STAGE``) of ``run`` and of each pooled run, where
    there is one. Returns the merged run, the pooled runs and the runs whose baselines were used."""
    ids = set(config_dicts(run))

    def admit(option: str, other: RunData, trial_ids: list[str]) -> RunData:
        # one trial counted twice would weigh its split twice in every mean of the report
        shared = ids.intersection(trial_ids)
        if shared:
            raise UsageError(f"{option} {other.run_dir}: trial {sorted(shared)[0]} is already in the report "
                             f"(the same run twice?)")
        ids.update(trial_ids)
        return other

    pooled_runs = [admit("--pool", other, list(config_dicts(other))) for other in map(load, pool)]
    combined, pooled = combine_runs(run, [(other, "pooled") for other in pooled_runs])
    if baselines:
        sources = [load(run_dir, require_metrics=False) for run_dir in baselines]
    else:
        sources = [s for s in map(_sibling_baselines, [run.run_dir, *pool]) if s is not None]
    sources = [admit("--baselines", other, [t for t, c in config_dicts(other).items()
                                            if is_hand_made(c.get("aug"))]) for other in sources]
    combined, used = combine_runs(combined, [(other, "baselines") for other in sources])
    for run_dir in baselines:
        if run_dir not in used:
            raise UsageError(f"--baselines {run_dir}: the run holds no hand-made baseline trial with metrics "
                             "(any aug but learned)")
    return combined, pooled, used
