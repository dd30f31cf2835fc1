"""Keep of a run's checkpoint only what the tests of old runs read: its config and its generator G.

A whole checkpoint of even the tiniest run is 8 MB (C, DC and DD at their fixed widths, their Adam moments, the
EMA teacher); its config and G are under 100 kB. Run it with the commit that wrote the checkpoint first on
PYTHONPATH, so that commit's own ``raydaug.checkpoint`` reads and rewrites the file (see README.md)::

    PYTHONPATH=/tmp/old_<rev> python tests/data/old_runs/trim_checkpoint.py SOURCE TARGET
"""
from __future__ import annotations

import sys

from raydaug.checkpoint import load_checkpoint, save_checkpoint


def main(source: str, target: str) -> None:
    payload = load_checkpoint(source)
    save_checkpoint(target, {"config": payload["config"], "nets": {"g": payload["nets"]["g"]},
                             "epoch": payload["epoch"], "step": payload["step"]})


if __name__ == "__main__":
    main(*sys.argv[1:])
