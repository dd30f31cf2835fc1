"""Runs that belong together: the stages of one ``raydaug tune`` (a tune_config's follow-up writes
``RUN_DIR_<followup>``) and the run a frozen-G trial took its generator from. The report merges their
trials with the run's own where a comparison needs both: Fig. 4 (joint training against C on frozen G
snapshots) and learned against hand-made augmentation (baselines run as a follow-up stage).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from analysis.load import PARTITION_KEY, RunData, config_dicts, load
from raydaug.config import BASE_AUGS
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
    G comes from ``run`` (``"frozen"``) or its hand-made baseline trials (``"baselines"``), as one RunData;
    and the runs used."""
    root = Path(run.run_dir).resolve()
    metrics, trials, used = [run.metrics], [run.trials], []
    for other, role in others:
        configs = config_dicts(other)
        if role == "joint":
            keep = [t for t, c in configs.items() if c.get("joint") is True]
        elif role == "baselines":
            keep = [t for t, c in configs.items() if c.get("aug") in BASE_AUGS]
        else:
            keep = [t for t, c in configs.items()
                    if _frozen(c) and Path(c["g_checkpoint"]).resolve().is_relative_to(root)]
        rows = other.metrics[other.metrics[PARTITION_KEY].astype(str).isin(keep)]
        if rows.empty:
            continue
        used.append(other.run_dir)
        metrics.append(rows)
        trials.append(other.trials[other.trials["trial_id"].astype(str).isin(keep)])
    merged = pd.concat([m.assign(**{PARTITION_KEY: m[PARTITION_KEY].astype(str)}) for m in metrics],
                       ignore_index=True)
    merged[PARTITION_KEY] = merged[PARTITION_KEY].astype("category")
    return RunData(run.run_dir, merged, pd.concat(trials, ignore_index=True), run.events, run.skipped), used


def with_baselines(run: RunData, baselines: str | None = None) -> tuple[RunData, list[str]]:
    """``run`` plus the hand-made baseline trials (aug none/light/strong/trivial) of its follow-up stage
    ``RUN_DIR_baselines`` (``BASELINES_STAGE``: the main job's and the method study's), and the runs used.
    Only that sibling: ``RUN_DIR_smoke`` or ``RUN_DIR_s1`` are other experiments on other splits. A sibling
    that is not a readable run is skipped. With ``baselines`` (``raydaug analyze --baselines``), that run's
    baseline trials instead, e.g. a later study's learned variants against the method study's baselines; it
    must be a run holding some."""
    if baselines is not None:
        combined, used = combine_runs(run, [(load(baselines, require_metrics=False), "baselines")])
        if not used:
            raise UsageError(f"--baselines {baselines}: the run holds no hand-made baseline trial with metrics "
                             f"(aug={'/'.join(BASE_AUGS)})")
        return combined, used
    base, query = split_query(run.run_dir)
    sibling = f"{base.rstrip('/')}_{BASELINES_STAGE}{query}"  # a local path or a URI (S3 too)
    filesystem, root = resolve(sibling)
    if filesystem.get_file_info(f"{root}/parquet/trials").type != pafs.FileType.Directory:
        return combine_runs(run, [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartFileWarning)
        try:
            return combine_runs(run, [(load(sibling, require_metrics=False), "baselines")])
        except NotARunError:
            return combine_runs(run, [])
