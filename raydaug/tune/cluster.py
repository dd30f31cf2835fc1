"""Phase 2 of ``raydaug tune``: the Ray cluster. Starting or joining Ray (the ``--address`` probe before
it is :mod:`raydaug.tune.address`), and the check that a trial's resource bundle fits on one node."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import ray
from ray.exceptions import AuthenticationError

from raydaug.errors import UsageError
from raydaug.tune.plan import TunePlan


def connect(plan: TunePlan) -> bool:
    """Join ``--address`` or start a local Ray; returns True when this call started Ray."""
    if ray.is_initialized():
        return False
    if plan.address:
        join_cluster(plan.address)
        return True
    # the workers' own log lines (a line per checkpoint and restore) would bury the progress table;
    # a trial's failure still reaches the driver with its traceback
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    return True


def join_cluster(address: str) -> None:
    """``ray.init(address)``, failing on one line. A cluster with token authentication refuses a driver
    without its token: Ray's core then prints a line per retry for about 20 s (C++ logging, straight to
    file descriptor 2) and gives up naming the node's own IP, which the user never typed. Those lines are
    held back while Ray connects and shown only when it succeeds; a refusal says it is the token."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            failure = None
        except Exception as error:  # ConnectionError, RuntimeError, ValueError depending on the failure
            failure = error
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        printed = capture.read().decode(errors="replace")
    if failure is None:
        sys.stderr.write(printed)  # Ray's own warnings of a connection that worked stay visible
        return
    if isinstance(failure, AuthenticationError) or "InvalidAuthToken" in printed + str(failure):
        raise UsageError(f"--address {address}: the cluster uses token authentication and refused this driver's "
                         "token (missing or wrong): run the driver with the token the cluster was started with, "
                         "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> (or RAY_AUTH_TOKEN_PATH=<file>)") from None
    raise UsageError(f"--address {address}: cannot connect to a Ray cluster ({failure})") from None


def alive_nodes() -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def check_cluster(plan: TunePlan, nodes: Sequence[Mapping[str, float]],
                  log: Callable[[str], None] = print) -> TunePlan:
    """A trial's bundle must fit on one node. A --smoke run of a GPU experiment falls back to CPU
    when the cluster has no GPU (unless --gpus-per-trial was given)."""
    total_gpus = sum(float(node.get("GPU", 0)) for node in nodes)
    if plan.gpus_per_trial > 0 and total_gpus == 0 and plan.smoke and plan.options.gpus_per_trial is None:
        log(f"note: the cluster has no GPU; this --smoke run uses CPU instead of {plan.gpus_per_trial} GPU/trial")
        plan = replace(plan, gpus_per_trial=0.0)
    if plan.gpus_per_trial > 0 and not any(float(node.get("GPU", 0)) >= plan.gpus_per_trial for node in nodes):
        raise UsageError(f"each trial asks for {plan.gpus_per_trial} GPU but the cluster has {total_gpus:g} "
                          f"GPU(s){' in all' if len(nodes) > 1 else ''}; use --gpus-per-trial 0 to run on CPU")
    if not any(float(node.get("CPU", 0)) >= plan.cpus_per_trial for node in nodes):
        best = max((float(node.get("CPU", 0)) for node in nodes), default=0.0)
        raise UsageError(f"each trial asks for {plan.cpus_per_trial:g} CPUs but the largest node has {best:g}")
    return plan
