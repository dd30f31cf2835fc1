"""Processes for the failure-injection tests (``test_reliability.py``, ``test_s3.py``): separate
``raydaug tune`` drivers and ``ray start`` nodes, each in a process group of its own, killed whole.

A separate driver never joins the pytest session's Ray (``RAY_ADDRESS`` is removed from its
environment). Ray gives each worker process a group of its own, so a kill takes the group *and* every
descendant of its members (read from /proc); every group is killed again in a ``finally`` by the tests
so nothing outlives a failed test.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RAY_CLI = str(Path(sys.executable).with_name("ray"))
PROCESS_TIMEOUT_S = 300


def child_env(**extra: str) -> dict[str, str]:
    """A separate driver's environment: never the pytest session's Ray (no RAY_ADDRESS)."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(extra)
    return env


def spawn(argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """Start ``argv`` in a process group of its own (the Ray processes it starts inherit it), in ``cwd``
    (default: the repository)."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=cwd or REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def process_tree(pgid: int) -> dict[int, str]:
    """pid → command line of the live processes of group ``pgid`` and of all their descendants (/proc)."""
    parents: dict[int, int] = {}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        pid = int(stat.parent.name)
        if state != "Z":
            parents[pid] = int(ppid)
            if int(group) == pgid:
                members.add(pid)
    frontier = list(members)
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    commands = {}
    for pid in members:
        try:
            commands[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return commands


def kill_group(process: subprocess.Popen) -> dict[int, str]:
    """SIGKILL ``process``'s group and every descendant of its members, then reap ``process``; returns
    pid → command line of what was killed."""
    killed = process_tree(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    return killed


def finish(process: subprocess.Popen, log: Path, timeout_s: float = PROCESS_TIMEOUT_S) -> tuple[int, str]:
    """Wait for ``process`` (killing its group on timeout); returns (exit code, its output)."""
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        kill_group(process)
        raise AssertionError(f"{process.args} did not finish in {timeout_s} s:\n{log.read_text()[-3000:]}") from error
    return code, log.read_text()


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = PROCESS_TIMEOUT_S,
             process: subprocess.Popen | None = None, log: Path | None = None, every_s: float = 0.25) -> Any:
    """Poll ``condition`` until it is truthy; fail on timeout or when ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise AssertionError(f"waiting for {what}: the process exited with {process.returncode}\n{tail}")
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# Ports for the servers the tests start: above Ray's default worker ports (10002-19999) and below the
# kernel's ephemeral range, which the OS hands to outgoing connections (a port taken from that range could
# be given to some client between our probe and the server's bind).
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORTS_LOW = 20000
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range and never handed out twice
    in this process (two servers of one cluster asked for ports before either bound them)."""
    high = int(_EPHEMERAL_RANGE.read_text().split()[0]) if _EPHEMERAL_RANGE.exists() else 32768
    for _ in range(1000):
        port = secrets.randbelow(high - _PORTS_LOW) + _PORTS_LOW
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free loopback port in [{_PORTS_LOW}, {high})")


class LoopbackCluster:
    """A head (no CPUs: trials run on the workers) and worker nodes of one CPU each, all on this
    machine, started with the venv's ``ray start --block`` in process groups of their own. Every node
    has a temp dir and a working folder of its own (under one short folder: Ray's unix socket paths must
    fit in 107 bytes, so not pytest's tmp_path). Token authentication is on (Ray 2.60's default for a
    head when a token exists), with a token of its own; ``extra_env`` (e.g. storage credentials) reaches
    every node, so every raylet and trial worker, and the driver started with ``self.env``."""

    def __init__(self, **extra_env: str):
        self.base = Path(tempfile.mkdtemp(prefix="rdc-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = child_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), **extra_env)
        self.nodes: dict[str, subprocess.Popen] = {}

    def folder(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(exist_ok=True)
        return path

    def _ports(self) -> list[str]:  # several nodes on one host: every per-node port must differ
        return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]

    def _start(self, name: str, argv: list[str]) -> None:
        log = self.base / f"{name}.log"
        self.nodes[name] = node = spawn(
            [RAY_CLI, "start", "--block", "--disable-usage-stats", *argv, f"--temp-dir={self.folder(name)}",
             *self._ports()], log, self.env, cwd=self.folder(f"cwd-{name}"))
        wait_for(lambda: "Ray runtime started" in log.read_text(), f"node {name}", timeout_s=120,
                 process=node, log=log)

    def start(self, workers: int) -> LoopbackCluster:
        self._start("head", ["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                             f"--dashboard-port={free_port()}"])
        for index in range(workers):  # one at a time: nodes starting together race for socket names
            self._start(f"worker{index}", [f"--address={self.address}", "--num-cpus=1",
                                           f'--resources={{"worker{index}": 1}}'])
        return self

    def runs_a_trial(self, name: str) -> bool:
        """Whether a trial's actor process (``ray::ImplicitFunc``) lives on node ``name``."""
        return any("ImplicitFunc" in command for command in process_tree(self.nodes[name].pid).values())

    def kill(self, name: str) -> list[str]:
        """SIGKILL a node (its raylet and every worker process on it); returns what was running there."""
        return list(kill_group(self.nodes[name]).values())

    def kill_worker_midway(self, name: str, driver: subprocess.Popen, log: Path,
                           durable: Callable[[], dict[str, int]],
                           epochs: int) -> tuple[list[str], float, dict[str, int]]:
        """SIGKILL worker ``name`` while a trial runs there, then let the driver finish. Asserts that a
        trial ran on the node, that the trials had not finished (``durable()``: trial → iterations in
        storage) and that the driver exits 0; returns what ran on the node, the kill's time and ``durable()``
        at the kill."""
        running = self.kill(name)
        killed_at = time.time()
        before = durable()
        code, output = finish(driver, log)
        assert any("ImplicitFunc" in command for command in running), f"no trial ran on the killed node: {running}"
        assert max(before.values()) < epochs, f"the node was killed after the trials finished: {before}"
        assert code == 0, output[-3000:]
        return running, killed_at, before

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            kill_group(node)
        shutil.rmtree(self.base, ignore_errors=True)
