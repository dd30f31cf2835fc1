"""The ``raydaug`` console script: train | tune | analyze | schedule | export | predict | compact.

Every command exits 0 on success and non-zero with a one-line ``raydaug: error: ...`` on bad input.
Heavy modules (Ray, analysis) are imported only by the subcommand that needs them.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raydaug.checkpoint import unwritable_folder
from raydaug.config import MUTABLE_HPARAMS, Config
from raydaug.errors import EXIT_CODES, UsageError
from raydaug.overrides import parse_overrides


def load_tune_config_base(path: str | None) -> dict[str, Any]:
    """The base config of a tune_config (``experiment().base``; a path or a tune_configs name), or {}."""
    if not path:
        return {}
    from raydaug.experiment import load_experiment

    return dict(load_experiment(path).base)


def check_out_dir(out: str) -> None:
    """``--out`` must be a folder this user may create or write into; checked without creating anything
    (a run refused later for bad input leaves no folder behind)."""
    problem = unwritable_folder(Path(out).expanduser().absolute())
    if problem:
        raise UsageError(f"--out {out}: {problem}")


def _cmd_train(args: argparse.Namespace) -> int:
    from raydaug.logging.tensorboard import viewer_command
    from raydaug.train import run_training

    check_out_dir(args.out)
    values = load_tune_config_base(args.config)
    values.update(parse_overrides(args.set))
    config = Config.from_dict(values)
    run_training(config, args.out, resume=args.resume)
    print(f"TensorBoard (scalars and G's samples): {viewer_command(str(Path(args.out) / 'tensorboard'))}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from raydaug.tune.options import TuneOptions
    from raydaug.tune.runner import run_tune

    run_tune(TuneOptions.from_args(args))
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from raydaug.analysis.report import analyze_command

    analyze_command(args.run_dir, args.out, args.baselines, args.pool)
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    if args.schedule_command == "export":
        from raydaug.analysis.schedule import export_command

        export_command(args.run_dir, args.trial, args.out)
        return 0
    # replay: the schedule comes from analysis (a file, or exported from a run), the run from raydaug.tune
    from raydaug.analysis.schedule import schedule_to_replay
    from raydaug.tune.replay import run_replay

    schedule, beside_source = schedule_to_replay(args.source, args.trial)
    overrides = parse_overrides(args.set)
    scheduled = sorted(set(overrides) & set(MUTABLE_HPARAMS))
    if scheduled:
        raise UsageError(f"--set {', '.join(scheduled)}: the schedule governs {', '.join(MUTABLE_HPARAMS)}; "
                         "replay sets only the other keys (e.g. --set seed=1 for another split)")
    if "preset" in overrides:
        raise UsageError("--set preset: the schedule's initial config is complete; set the keys themselves")
    schedule = {**schedule, "initial_config": {**schedule["initial_config"], **overrides}}
    # the default name says what was changed, in characters a folder name may hold
    suffix = re.sub(r"[^A-Za-z0-9._=-]+", "-", "".join(f"_{key}{value}" for key, value in sorted(overrides.items())))
    run_dir = run_replay(schedule, args.storage or beside_source,
                         args.name or f"replay_{schedule['trial_id']}{suffix}", cpus_per_trial=args.cpus_per_trial)
    print(f"replayed trial {schedule['trial_id']} ({len(schedule['changes'])} change(s)) → {run_dir}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from raydaug.analysis.export import export_command

    export_command(args.run_dir, args.trial, args.out)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from raydaug.export import image_files, load_exported, predict_files, write_predictions

    model, meta = load_exported(args.model)
    rows = predict_files(model, meta, image_files(args.paths))
    write_predictions(rows, args.out)
    if args.out:
        print(f"predictions for {len(rows)} image(s) → {args.out}", file=sys.stderr)
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    from raydaug.analysis.load import compact_command

    compact_command(args.run_dir)
    return 0


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable), e.g. --set aug=light --set epochs=50")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raydaug", description="Population training of learned data augmentation (Mounsaveng et al. 2019).")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="one run of the joint training, no Ray")
    train.add_argument("--config", help="a tune_configs/*.py module whose experiment().base is the start")
    _add_set(train)
    train.add_argument("--out", required=True, help="output folder (checkpoints, parquet, tensorboard, result.json)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/state.pt")
    train.set_defaults(func=_cmd_train)

    tune = sub.add_parser("tune", help="a Ray Tune experiment (PBT/PB2/grid) from a tune_configs module")
    tune.add_argument("config", help="tune_configs/NAME.py (or NAME)")
    _add_set(tune)
    tune.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                      help="grid-search a config key over these values, replacing its search space "
                           "(repeatable; the follow-up stage too), e.g. --grid seed=3,4,5")
    tune.add_argument("--smoke", action="store_true", help="shrink the experiment to a seconds-long run")
    tune.add_argument("--no-followup", action="store_true",
                      help="run the first stage only, not the tune_config's follow-up stage (e.g. a variant "
                           "compared with another run's baselines: raydaug analyze RUN --baselines OTHER)")
    tune.add_argument("--name", help="experiment name (default: the tune_config's)")
    tune.add_argument("--pilot-store", metavar="RUN_DIR",
                      help="base_aug=auto: read the pilot's arms from this run's hand-made trials (and add the "
                           "arms trained here) instead of training them again, e.g. RUN_baselines of an earlier "
                           "command (default: this command's RUN_DIR)")
    tune.add_argument("--storage", help="results root: a local path or a pyarrow URI such as s3://bucket/x")
    tune.add_argument("--address", help="connect to a running Ray cluster: 'auto' or HOST:PORT")
    tune.add_argument("--num-samples", type=int, help="population size / samples per grid point")
    tune.add_argument("--cpus-per-trial", type=float, help="CPUs reserved for each trial")
    tune.add_argument("--gpus-per-trial", type=float, help="GPU share of each trial, e.g. 0.25")
    tune.add_argument("--max-failures", type=int, help="retries of a failed trial from its last checkpoint")
    tune.add_argument("--resume", action="store_true", help="continue the interrupted experiment NAME in STORAGE")
    tune.set_defaults(func=_cmd_tune)

    analyze = sub.add_parser("analyze", help="report.html, tables and plots from a run's logs")
    analyze.add_argument("run_dir", help="<storage>/<name> (or a `raydaug train --out` folder)")
    analyze.add_argument("--out", help="report folder (default RUN_DIR/report; ./report_NAME for a storage URI)")
    analyze.add_argument("--baselines", action="append", default=[], metavar="RUN",
                         help="compare with the hand-made baseline trials of this run (same splits and "
                              "budgets) instead of RUN_DIR_baselines (repeatable)")
    analyze.add_argument("--pool", action="append", default=[], metavar="RUN",
                         help="report this run's trials with RUN_DIR's as one experiment, e.g. the same "
                              "command on more split seeds (repeatable; with its RUN_baselines unless "
                              "--baselines is given)")
    analyze.set_defaults(func=_cmd_analyze)

    schedule = sub.add_parser("schedule", help="export or replay a trial's PBT hyperparameter schedule")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", required=True)
    export = schedule_sub.add_parser("export", help="write a trial's schedule (default: the best) to a file")
    export.add_argument("run_dir")
    export.add_argument("--trial", help="trial id (default: best by acc/val)")
    export.add_argument("--out", help="output file, .json or .parquet (default RUN_DIR/schedule_<trial>.json)")
    export.set_defaults(func=_cmd_schedule)
    replay = schedule_sub.add_parser("replay", help="retrain one trial following an exported schedule")
    replay.add_argument("source", help="RUN_DIR or an exported schedule file")
    replay.add_argument("--trial", help="trial id when SOURCE is a RUN_DIR (default: best by acc/val)")
    replay.add_argument("--storage", help="where the replay run goes (default: beside the source run)")
    replay.add_argument("--name", help="name of the replay run (default replay_<trial>[_<key><value>...])")
    replay.add_argument("--cpus-per-trial", type=float,
                        help="CPUs (and torch threads) of the replayed trial (default: the largest node's)")
    _add_set(replay)
    replay.set_defaults(func=_cmd_schedule)

    export = sub.add_parser("export", help="the best classifier of a run as a file that loads with torch alone")
    export.add_argument("run_dir", help="<storage>/<name> or a `raydaug train --out` folder")
    export.add_argument("--trial", help="trial id (default: the validation-best of the run and its baselines stage)")
    export.add_argument("--out", required=True, help="the model file to write (torch.export, e.g. model.pt2)")
    export.set_defaults(func=_cmd_export)

    predict = sub.add_parser("predict", help="classify image files and folders with an exported model")
    predict.add_argument("model", help="a file written by `raydaug export`")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders (walked recursively)")
    predict.add_argument("--out", help="CSV file to write (path,label,probability); default: standard output")
    predict.set_defaults(func=_cmd_predict)

    compact = sub.add_parser("compact", help="merge a run's small Parquet parts into larger ones")
    compact.add_argument("run_dir")
    compact.set_defaults(func=_cmd_compact)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except tuple(EXIT_CODES) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"raydaug: error: {message}", file=sys.stderr)
        return next(code for kind, code in EXIT_CODES.items() if isinstance(error, kind))
    except KeyboardInterrupt:
        print("raydaug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
