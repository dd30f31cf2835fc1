"""``raydaug export``: the best classifier a run trained, as a file that loads with torch alone.

Which one: among every trial of the run and of its hand-made baselines stage (``RUN_DIR_baselines``), learned
and hand-made alike, the one with the best validation score (``acc/val`` at its best evaluation, as its
checkpoint records it); ties go to the trial id that sorts first. So the tool never hands back a model worse on
validation than a hand-made augmentation it also trained. ``--trial ID`` exports that trial instead.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from raydaug.analysis.checkpoints import find_checkpoints, publish_checkpoint
from raydaug.analysis.load import config_dicts, load
from raydaug.checkpoint import load_checkpoint
from raydaug.errors import CheckpointError, UsageError
from raydaug.experiment import BASELINES_STAGE
from raydaug.export import export_payload
from raydaug.logging.parquet import resolve


@dataclass(frozen=True)
class Candidate:
    run_dir: str
    trial_id: str
    config: dict[str, Any]
    payload: dict[str, Any]

    @property
    def best(self) -> dict[str, float]:
        return self.payload["best"]

    def describe(self) -> str:
        seed = self.config.get("seed")
        best = self.best
        return (f"trial {self.trial_id} (aug={self.config.get('aug')}, seed {seed}) of {self.run_dir}: "
                f"acc/val {best['acc/val']:.4f}, acc/test {best['acc/test']:.4f} at epoch {best['epoch']}")


def stage_runs(run_dir: str) -> list[str]:
    """The run and, where it exists, its hand-made baselines stage."""
    baselines = f"{run_dir.rstrip('/')}_{BASELINES_STAGE}"
    filesystem, root = resolve(baselines)
    found = filesystem.get_file_info(f"{root}/parquet").type == pafs.FileType.Directory
    return [run_dir, baselines] if found else [run_dir]


def _read_payload(run_dir: str, path: str) -> dict[str, Any]:
    filesystem, _ = resolve(run_dir)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return load_checkpoint(path)
    with tempfile.TemporaryDirectory() as folder:
        return load_checkpoint(publish_checkpoint(run_dir, path, Path(folder) / "state.pt"))


def candidates(run_dir: str, trial: str | None = None) -> list[Candidate]:
    """Every trial (or only ``trial``) of the run and its baselines stage that has a checkpoint."""
    found: list[Candidate] = []
    for stage in stage_runs(run_dir):
        configs = config_dicts(load(stage))
        wanted = {t: -1 for t in configs if trial is None or t == trial}
        for trial_id, (path, _iteration) in sorted(find_checkpoints(stage, wanted).items()):
            found.append(Candidate(stage, trial_id, configs[trial_id], _read_payload(stage, path)))
    if trial is not None and not found:
        raise UsageError(f"--trial {trial}: no checkpoint of that trial in {' or '.join(stage_runs(run_dir))}")
    if not found:
        raise CheckpointError(f"{run_dir} has no checkpoint to export (was it run with checkpoints?)")
    return found


def choose(found: list[Candidate]) -> Candidate:
    exportable = [c for c in found if c.payload.get("best_classifier") is not None]
    if not exportable:
        raise CheckpointError("no checkpoint of this run holds a best classifier (made before raydaug kept one): "
                              "train again to export it")
    return min(exportable, key=lambda c: (-c.best["acc/val"], c.trial_id))


def export_command(run_dir: str, trial: str | None, out: str, log=print) -> dict[str, Any]:
    found = candidates(run_dir, trial)
    chosen = choose(found)
    arms = sorted({str(c.config.get("aug")) for c in found})
    path, meta = export_payload(chosen.payload, out, run_dir=chosen.run_dir, trial_id=chosen.trial_id)
    reason = ("as asked (--trial)" if trial else
              f"the validation-best of {len(found)} trial(s), arms {', '.join(arms)}")
    log(f"exported {chosen.describe()} — {reason}")
    log(f"wrote {path}: {meta['channels']}×{meta['image_size']}×{meta['image_size']} images in [0, 1] → logits "
        f"over {len(meta['class_names'])} classes ({', '.join(meta['class_names'][:10])}"
        f"{', …' if len(meta['class_names']) > 10 else ''}); load it with torch.export.load(FILE).module()")
    return meta
