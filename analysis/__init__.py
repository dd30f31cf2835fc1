"""Analysis of raydaug runs: reads only ``RUN_DIR`` (Parquet logs and checkpoints).

``analysis.load(run_dir)`` returns a :class:`RunData` (``metrics``, ``trials``, ``events`` as pandas
DataFrames). The submodules build on it: ``tables`` (Table 1 / Table 3), ``curves`` (accuracy, Fig. 3,
Fig. 4, augmentation health), ``lineage`` (PBT schedules and exploits), ``grids`` (Fig. 5 sample
grids), ``schedule`` (export / replay) and ``report`` (``raydaug analyze``).

Note: ``analysis.load`` is the function; import the module's other names with
``from analysis.load import ...``.
"""
from analysis.load import (NoMetricsError, NotARunError, PartFileWarning, RunData, best_rows, config_dicts,
                           load, trial_configs)

__all__ = ["load", "RunData", "NotARunError", "NoMetricsError", "PartFileWarning", "best_rows",
           "config_dicts", "trial_configs"]
