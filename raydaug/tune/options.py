"""The options of one ``raydaug tune`` stage, typed and frozen: what the command line gave (None: the
tune_config's value). The CLI, ``schedule replay``, the follow-up stage and the tests all build them
here, through the constructor; :mod:`raydaug.tune.plan` turns them and an Experiment into a TunePlan."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TuneOptions:
    config: str = ""                         # tune_config path or packaged name ("" when the Experiment is given)
    sets: tuple[str, ...] = ()               # --set KEY=VALUE, as given (a follow-up and a resume repeat them)
    grids: tuple[str, ...] = ()              # --grid KEY=V1,V2, likewise
    smoke: bool = False
    no_followup: bool = False
    name: str | None = None
    storage: str | None = None
    address: str | None = None
    num_samples: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_failures: int | None = None
    resume: bool = False
    pilot_store: str | None = None          # --pilot-store: where the pilot's arm records are read and added

    def __post_init__(self) -> None:
        # a list given by a caller would make the options unhashable and mutable behind the frozen front
        object.__setattr__(self, "sets", _strings(self.sets, "sets"))
        object.__setattr__(self, "grids", _strings(self.grids, "grids"))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TuneOptions:
        """The options of ``raydaug tune``'s parsed command line (every attribute is set by its parser)."""
        return cls(config=args.config, sets=tuple(args.set), grids=tuple(args.grid), smoke=args.smoke,
                   no_followup=args.no_followup, name=args.name, storage=args.storage, address=args.address,
                   num_samples=args.num_samples, cpus_per_trial=args.cpus_per_trial,
                   gpus_per_trial=args.gpus_per_trial, max_failures=args.max_failures, resume=args.resume,
                   pilot_store=args.pilot_store)


def _strings(values: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(values, str):  # ("a=1") instead of ("a=1",): iterating it would give one character a pair
        raise TypeError(f"TuneOptions.{name} takes a sequence of KEY=VALUE strings, not one string")
    return tuple(values)
