"""A real S3 endpoint for the tests: moto's standalone server (``moto_server``, an HTTP server speaking the
S3 protocol) on loopback, in a process of its own, started and stopped by the test session.

Every process reaches it as a user's processes reach a bucket: credentials in the environment
(:data:`S3_ENV`, exported before Ray starts, so the raylets and every trial worker inherit them) and the
endpoint in the storage URI's query (``s3://bucket/prefix?endpoint_override=127.0.0.1:PORT&scheme=http``,
read by ``pyarrow.fs.FileSystem.from_uri`` in the driver, in Ray Tune's storage and in every trial).
With ``auth=True`` the server checks every request's credentials against its (empty) IAM: any key is
then unknown, the answer real S3 gives a wrong key.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pyarrow.fs as pafs

from tests.processes import child_env, free_port, kill_group, spawn, wait_for

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
# test-only credentials of the loopback endpoint; no instance metadata lookups (no network here)
S3_ENV = {"AWS_ACCESS_KEY_ID": "raydaug-test", "AWS_SECRET_ACCESS_KEY": "raydaug-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def export_credentials() -> None:
    """Put :data:`S3_ENV` into this process's environment (before Ray starts: its raylet and workers
    inherit the environment they were started with)."""
    os.environ.update(S3_ENV)


class MotoS3:
    """``moto_server -H 127.0.0.1 -p PORT``; ``uri(path)`` names a prefix on it the way a user writes it."""

    def __init__(self, auth: bool = False):
        self.port = free_port()
        self.auth = auth
        self.folder = Path(tempfile.mkdtemp(prefix="raydaug-moto-"))
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def uri(self, path: str, **options: str) -> str:
        query = "&".join(f"{key}={value}" for key, value in
                         {"endpoint_override": self.endpoint, "scheme": "http", **options}.items())
        return f"s3://{path.strip('/')}?{query}"

    def start(self) -> MotoS3:
        extra = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if self.auth else {}
        log = self.folder / "moto.log"
        self.process = spawn([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)], log,
                             child_env(**S3_ENV, **extra), cwd=self.folder)
        wait_for(self._answers, f"moto_server on {self.endpoint}", timeout_s=60, process=self.process, log=log)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/moto-api/", timeout=2):
                return True
        except OSError:
            return False

    def filesystem(self) -> pafs.FileSystem:
        return pafs.FileSystem.from_uri(self.uri("x"))[0]

    def create_bucket(self, bucket: str) -> None:
        filesystem, _ = pafs.FileSystem.from_uri(self.uri(bucket, allow_bucket_creation="true"))
        filesystem.create_dir(bucket)

    def files(self, prefix: str) -> dict[str, int]:
        """relative path → size of every object under ``prefix`` (``bucket/path``)."""
        infos = self.filesystem().get_file_info(pafs.FileSelector(prefix.strip("/"), recursive=True,
                                                                  allow_not_found=True))
        root = prefix.strip("/") + "/"
        return {info.path[len(root):]: info.size for info in infos if info.type == pafs.FileType.File}

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)
