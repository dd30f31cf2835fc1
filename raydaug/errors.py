"""Every error and warning type of raydaug and its analysis package, in one leaf module.

This module imports nothing of the project, so any module may import it without creating a cycle.
The CLI maps these types to exit codes: :data:`EXIT_CODES` (bad input → 2, failed trials → 1).
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or out of range."""


class DataError(RuntimeError):
    """A dataset could not be loaded (missing offline files, unreadable format)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupted or not a raydaug checkpoint."""


class NonFiniteLossError(RuntimeError):
    """A player's loss became NaN or inf."""


class UsageError(Exception):
    """Bad command-line input detected by a command: reported on one line, exit code 2."""


class NotARunError(UsageError):
    """The folder is not a raydaug run (no ``parquet/`` logs)."""


class NoMetricsError(UsageError):
    """The run exists but has no readable metric rows yet."""


class NoGeneratorError(ValueError):
    """The checkpoint holds no generator (a baseline run)."""


class TrialsFailedError(RuntimeError):
    """Some trials ended in ERROR after their retries; the experiment can be continued with --resume."""


class PartFileWarning(UserWarning):
    """A Parquet part file could not be read and was skipped."""


# what the CLI exits with for each expected error (anything else is a bug and shows its traceback)
EXIT_CODES: dict[type[BaseException], int] = {
    ConfigError: 2, DataError: 2, CheckpointError: 2, NonFiniteLossError: 2, UsageError: 2,
    FileNotFoundError: 2, NoGeneratorError: 2, TrialsFailedError: 1,
}
