"""Shared fixtures: a real S3 server over HTTP, and real FUSE mounts that always come down.

The server is moto behind :class:`s3logfs.devtools.localserver.CountingMiddleware`, in this
process, so a test can count the GETs and bytes the mount daemon caused. Mounts are made
with the real ``s3logfs mount`` command (background mode, as a user runs it) and are
unmounted with ``fusermount -u -z`` in teardown, whatever the test's outcome.
"""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_bucket_numbers = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """AWS test credentials, and a private HOME: no test reads or writes the user's config or cache."""
    saved = dict(os.environ)
    os.environ.update(CREDENTIALS)
    home = tmp_path_factory.mktemp("home")
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def server() -> Iterator[LocalS3Server]:
    local = LocalS3Server().start()
    yield local
    local.stop()


@pytest.fixture
def faults(server: LocalS3Server) -> Iterator[list[Fault]]:
    """The server's fault list, emptied after the test so that no fault leaks into the next one."""
    server.middleware.faults.clear()
    yield server.middleware.faults
    server.middleware.faults.clear()


@pytest.fixture
def s3(server: LocalS3Server) -> Any:
    """A plain boto3 client: the independent reference."""
    return server.client()


@pytest.fixture
def bucket(s3: Any, server: LocalS3Server) -> str:
    name = f"test-bucket-{next(_bucket_numbers)}-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    server.middleware.reset()
    return name


def reference(s3: Any, bucket: str, key: str) -> bytes:
    """What a reader must see for ``key``: boto3 get_object plus gzip.decompress."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body


def is_mounted(path: Path) -> bool:
    with open("/proc/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def daemon_pid(mountpoint: Path) -> int | None:
    """The pid of the s3logfs daemon serving ``mountpoint``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"s3logfs" in b" ".join(argv) and str(mountpoint).encode() in argv:
            return int(entry.name)
    return None


def run(command: list[str], check: bool = True, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return result


def s3logfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "s3logfs", *args]


@dataclass
class Mount:
    path: Path
    cache_dir: Path
    log_file: Path
    bucket: str
    config_file: Path

    @property
    def pid(self) -> int | None:
        return daemon_pid(self.path)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def unmount_quietly(path: Path) -> None:
    pid = daemon_pid(path)
    subprocess.run(["fusermount", "-u", "-z", str(path)], capture_output=True, check=False)
    if pid is not None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and daemon_pid(path) is not None:
            time.sleep(0.05)
        if daemon_pid(path) is not None:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def mount_factory(tmp_path: Path, server: LocalS3Server) -> Iterator[Callable[..., Mount]]:
    """Mount ``bucket/prefix`` with the real CLI; every mount comes down in teardown."""
    made: list[Path] = []
    counter = itertools.count()

    def make(bucket: str, prefix: str = "", *extra: str, cache_dir: Path | None = None,
             mountpoint: Path | None = None) -> Mount:
        number = next(counter)
        path = mountpoint or tmp_path / f"mnt{number}"
        path.mkdir(exist_ok=True)
        cache = cache_dir or tmp_path / f"cache{number}"
        log_file = tmp_path / f"mount{number}.log"
        made.append(path)
        run(s3logfs_command(
            "mount", f"{bucket}/{prefix}", str(path), "--endpoint-url", server.endpoint_url,
            "--cache-dir", str(cache), "--log-file", str(log_file), "--log-level", "INFO",
            "--config-file", str(tmp_path / "s3logfsrc"), *extra,
        ))
        assert is_mounted(path)
        return Mount(path, cache, log_file, bucket, tmp_path / "s3logfsrc")

    yield make
    for path in made:
        unmount_quietly(path)
    for path in made:
        assert not is_mounted(path), f"{path} is still mounted after teardown"


@pytest.fixture
def mount_one(bucket: str, mount_factory: Callable[..., Mount]) -> Callable[..., Mount]:
    def make(*extra: str, prefix: str = "") -> Mount:
        return mount_factory(bucket, prefix, *extra)

    return make


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it is truthy; return its value or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
