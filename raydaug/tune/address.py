"""The ``--address`` check of phase 1 (no Ray call): its form, and that something listens there.

A module of its own so that :mod:`raydaug.tune.plan` (which checks it) and :mod:`raydaug.tune.cluster`
(which joins the cluster with a plan) import in one direction only."""
from __future__ import annotations

import re
import socket

from raydaug.errors import UsageError

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
