"""Phase 2 of ``raydaug tune``: the Ray cluster. The ``--address`` probe (before Ray is called),
starting or joining Ray, and the check that a trial's resource bundle fits on one node."""
from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import ray

from raydaug.errors import UsageError

if TYPE_CHECKING:  # plan.py imports this module for check_address
    from raydaug.tune.plan import TunePlan

_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")
ADDRESS_PROBE_TIMEOUT_S = 3.0  # ray.init retries an address where nothing listens for minutes


def check_address(address: str | None) -> None:
    """A malformed ``--address``, or a HOST:PORT where nothing accepts a connection, is refused at once
    (``ray.init`` would keep retrying it for minutes). ``auto`` is left to ``ray.init``."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not _ADDRESS.match(address) or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} must be 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_PROBE_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise UsageError(f"--address {address}: no Ray cluster answers at {host}:{port} ({reason}); "
                          f"start the head with `ray start --head --port {port}` or fix the address") from None


def connect(plan: TunePlan) -> bool:
    """Join ``--address`` or start a local Ray; returns True when this call started Ray."""
    if ray.is_initialized():
        return False
    if plan.address:
        try:
            ray.init(address=plan.address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as error:  # ConnectionError, RuntimeError, ValueError depending on the failure
            raise UsageError(f"--address {plan.address}: cannot connect to a Ray cluster ({error})") from None
        return True
    # the workers' own log lines (a line per checkpoint and restore) would bury the progress table;
    # a trial's failure still reaches the driver with its traceback
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    return True


def alive_nodes() -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def check_cluster(plan: TunePlan, nodes: Sequence[Mapping[str, float]],
                  log: Callable[[str], None] = print) -> TunePlan:
    """A trial's bundle must fit on one node. A --smoke run of a GPU experiment falls back to CPU
    when the cluster has no GPU (unless --gpus-per-trial was given)."""
    total_gpus = sum(float(node.get("GPU", 0)) for node in nodes)
    if plan.gpus_per_trial > 0 and total_gpus == 0 and plan.smoke and not plan.gpus_from_cli:
        log(f"note: the cluster has no GPU; this --smoke run uses CPU instead of {plan.gpus_per_trial} GPU/trial")
        plan = replace(plan, gpus_per_trial=0.0)
    if plan.gpus_per_trial > 0 and not any(float(node.get("GPU", 0)) >= plan.gpus_per_trial for node in nodes):
        raise UsageError(f"each trial asks for {plan.gpus_per_trial} GPU but the cluster has {total_gpus:g} "
                          f"GPU(s){' in all' if len(nodes) > 1 else ''}; use --gpus-per-trial 0 to run on CPU")
    if not any(float(node.get("CPU", 0)) >= plan.cpus_per_trial for node in nodes):
        best = max((float(node.get("CPU", 0)) for node in nodes), default=0.0)
        raise UsageError(f"each trial asks for {plan.cpus_per_trial:g} CPUs but the largest node has {best:g}")
    return plan
