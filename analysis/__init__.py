"""Analysis of raydaug runs: reads only run folders (``RUN_DIR``'s Parquet logs and checkpoints, and those
of the runs that belong with it: a follow-up stage ``RUN_DIR_baselines``, the run a frozen G came from).

``analysis.load(run_dir)`` returns a :class:`RunData` (``metrics``, ``trials``, ``events`` as pandas
DataFrames). The submodules build on it: ``summary`` (one row per trial: scores, variant, G's health),
``comparison`` (learned against hand-made augmentation, with its statistics), ``tables`` (Table 1, Table 3,
best checkpoints), ``reference`` (the paper's numbers), ``render`` (Markdown, CSV, tables for reading),
``curves`` (accuracy, Fig. 3, Fig. 4, augmentation health), ``lineage`` (PBT schedules and exploits),
``grids`` (Fig. 5 sample grids), ``schedule`` (export; the file a replay runs), ``companions`` (the related
runs), ``page`` (the report's sections as HTML) and ``report`` (``raydaug analyze``).

Note: ``analysis.load`` is the function; import the module's other names with
``from raydaug.analysis.load import ...``.
"""
from raydaug.analysis.load import (
                           NoMetricsError,
                           NotARunError,
                           PartFileWarning,
                           RunData,
                           best_rows,
                           config_dicts,
                           load,
                           trial_configs,
)

__all__ = ["load", "RunData", "NotARunError", "NoMetricsError", "PartFileWarning", "best_rows",
           "config_dicts", "trial_configs"]
