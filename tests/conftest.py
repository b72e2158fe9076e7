"""Fixtures and hooks: a real S3 server over HTTP, real FUSE mounts that always come down, the markers.

The server is moto behind :class:`s3logfs.devtools.localserver.CountingMiddleware`, in this
process, so a test can count the GETs and bytes the mount daemon caused. Mounts are made
with the real ``s3logfs mount`` command (background mode, as a user runs it) and are
unmounted with ``fusermount -u -z`` in teardown, whatever the test's outcome.

Every test under ``tests/fuse`` carries the marker ``fuse``, and only those may mount:
``pytest -m "not fuse"`` runs on a machine without FUSE.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server

from helpers import (
    CAT_LOGS,
    CREDENTIALS,
    REGION,
    Mount,
    is_mounted,
    put_all,
    run,
    s3logfs_command,
    stream_reference,
    unmount_quietly,
)

FUSE_TESTS = Path(__file__).resolve().parent / "fuse"
MOUNTING_FIXTURES = {"mount_factory", "mount_one"}
_bucket_numbers = itertools.count()
_logger_numbers = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``fuse`` on every test under tests/fuse; a test elsewhere that asks for a mount is an error."""
    for item in items:
        if FUSE_TESTS in item.path.parents:
            item.add_marker(pytest.mark.fuse)
        elif MOUNTING_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid} mounts: it belongs under tests/fuse")


# the environment, the server, a bucket ----------------------------------------------------------


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


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    """An empty directory to mount on (or to be refused on)."""
    path = tmp_path / "mnt"
    path.mkdir()
    return path


# mounts ---------------------------------------------------------------------------------------


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


# s3tail's workflow: ``s3logfs cat`` and ``LogStream`` -------------------------------------------


@pytest.fixture
def logs(s3: Any, bucket: str) -> bytes:
    """:data:`helpers.CAT_LOGS` under ``logs/`` in the test bucket; returns the stream they make."""
    put_all(s3, bucket, CAT_LOGS)
    return stream_reference(s3, bucket, sorted(CAT_LOGS))


@pytest.fixture
def cat(server: LocalS3Server, bucket: str, tmp_path: Path) -> Any:
    """Run ``s3logfs cat`` on the test bucket, as a user would (a private HOME, so one config file)."""

    def run_cat(*extra: str, prefix: str = "logs/", check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
        return run(s3logfs_command("cat", f"{bucket}/{prefix}", "--endpoint-url", server.endpoint_url,
                                   "--cache-dir", str(tmp_path / "cache"), *extra), check=check, **kwargs)

    return run_cat


# the logging handlers ---------------------------------------------------------------------------


@pytest.fixture
def endpoint(server: LocalS3Server) -> dict[str, Any]:
    """The keyword arguments that point a handler at the local server."""
    return {"endpoint_url": server.endpoint_url, "region_name": REGION}


@pytest.fixture
def attach() -> Iterator[Callable[[logging.Handler], logging.Logger]]:
    """Put a handler on a fresh logger; remove and close it after the test."""
    made: list[tuple[logging.Logger, logging.Handler]] = []

    def make(handler: logging.Handler) -> logging.Logger:
        logger = logging.getLogger(f"test.handlers.{next(_logger_numbers)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)
        handler.close(timeout=5)  # type: ignore[call-arg]


@pytest.fixture
def delivery_stream(server: LocalS3Server, bucket: str, endpoint: dict[str, Any]) -> str:
    """A Firehose delivery stream writing to ``bucket`` under ``fh/``."""
    import boto3

    name = f"stream-{next(_logger_numbers)}"
    boto3.client("firehose", **endpoint).create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                            "BucketARN": f"arn:aws:s3:::{bucket}", "Prefix": "fh/"},
    )
    return name


@pytest.fixture
def logs_client(endpoint: dict[str, Any]) -> Any:
    """A boto3 CloudWatch Logs client on the local server."""
    import boto3

    return boto3.client("logs", **endpoint)
