"""raydaug: population-based training of learned data augmentation (Mounsaveng et al., 2019) with Ray Tune.

``raydaug.fit(...)`` trains one run from Python (see :mod:`raydaug.api`); ``raydaug.tune.sweep(...)`` a Tune
experiment. The command line is ``raydaug`` (``python -m raydaug``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["fit"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import raydaug` (and so the CLI's start) stays free of torch
    if name == "fit":
        from .api import fit

        return fit
    raise AttributeError(f"module 'raydaug' has no attribute {name!r}")
