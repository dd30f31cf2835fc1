"""Shared fixtures. ``ray_session`` starts one local Ray for the whole pytest session (2 CPUs, no
dashboard) and shuts it down at the end; tests that need Ray take it as an argument. The credentials of
the tests' loopback S3 endpoint (tests/s3.py) are exported before it starts, as a user exports theirs
before starting Ray, so that its raylet and trial workers have them."""
from __future__ import annotations

import logging
import os

import pytest
import torch

from tests.s3 import export_credentials

# One torch thread per test process: on 2 shared cores, two OpenMP threads made steps 3-15x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    # quiet, and keep the workers' torch to one thread unless a trial says otherwise
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    export_credentials()
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True)
        started = True
    yield ray
    if started:
        ray.shutdown()
