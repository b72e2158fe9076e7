"""Never lie, never hang (README, "Semantics and limits" and "Faults"): ``--skip-errors``, stalls
and unmounting mid-read, ``--timeout``, the security pass, and eviction while several mounts share
a cache.

Everything runs against the real local S3 server over HTTP and real FUSE mounts; faults are
injected by :class:`s3logfs.devtools.localserver.CountingMiddleware`.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server

from helpers import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET,
    FAKE_TOKEN,
    Mount,
    break_object,
    daemon_pid,
    gets_of,
    is_mounted,
    mount_stats,
    numbered_lines,
    reference,
    refused_in_one_line,
    run,
    s3logfs_command,
    three_objects,
    wait_for,
)

TIMEOUT = 3.0
"""The ``--timeout`` of the stall tests: short, so that they wait little."""
MARGIN = 20.0
"""What a bounded wait allows on top of ``TIMEOUT``: a slow, shared machine, never a speed claim."""


@pytest.mark.parametrize("kind", ["missing", "corrupt", "5xx"])
def test_skip_errors_leaves_out_an_object_that_cannot_be_read(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server, faults: list[Fault], kind: str
) -> None:
    expected = three_objects(s3, bucket)
    if kind == "corrupt":  # corrupt before mounting: the listing must see the object's new ETag
        break_object(kind, s3, bucket, "logs/b.log", faults)
    mount = mount_one("--skip-errors", "--poll-interval", "0", prefix="logs/")
    if kind != "corrupt":
        break_object(kind, s3, bucket, "logs/b.log", faults)
    data = (mount.path / "stream").read_bytes()
    assert data == expected["logs/a.log"] + expected["logs/c.log"]
    assert os.stat(mount.path / "stream").st_size == len(data)  # stat and reads agree
    assert mount_stats(mount)["skips"] == 1
    skipped = [line for line in mount.log().splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "logs/b.log" in skipped[0], mount.log()
    gets = len(gets_of(server, "logs/b.log"))
    assert (mount.path / "stream").read_bytes() == data  # skipped for good: not fetched again
    assert len(gets_of(server, "logs/b.log")) == gets
    assert mount_stats(mount)["skips"] == 1


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_without_skip_errors_the_stream_gives_eio_at_that_object(
    s3: Any, bucket: str, mount_one: Any, faults: list[Fault], kind: str
) -> None:
    expected = three_objects(s3, bucket)
    if kind == "corrupt":
        break_object(kind, s3, bucket, "logs/b.log", faults)
    mount = mount_one("--poll-interval", "0", prefix="logs/")
    if kind != "corrupt":
        break_object(kind, s3, bucket, "logs/b.log", faults)
    with open(mount.path / "stream", "rb", buffering=0) as stream:
        first = stream.read(1 << 20)  # a short read, up to the object that fails
        with pytest.raises(OSError) as raised:
            stream.read(1 << 20)
    assert first == expected["logs/a.log"]
    assert raised.value.errno == errno.EIO
    assert "logs/b.log" in mount.log()
    assert mount_stats(mount)["skips"] == 0


def test_skip_errors_on_a_new_object_never_grows_the_stream_by_it(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="logs/1.log", Body=numbered_lines("one", 20))
    mount = mount_one("--skip-errors", "--poll-interval", "1", prefix="logs/")
    stream = mount.path / "stream"
    assert stream.read_bytes() == numbered_lines("one", 20)
    corrupt = gzip.compress(numbered_lines("two", 300))
    s3.put_object(Bucket=bucket, Key="logs/2.log.gz", Body=corrupt[:-30])  # the end cut off
    wait_for(lambda: mount_stats(mount)["skips"] == 1, timeout=30)
    assert os.stat(stream).st_size == len(numbered_lines("one", 20))  # the poller found it, and added no byte
    s3.put_object(Bucket=bucket, Key="logs/3.log", Body=numbered_lines("three", 20))
    wait_for(lambda: os.stat(stream).st_size > len(numbered_lines("one", 20)), timeout=30)
    data = stream.read_bytes()
    assert data == numbered_lines("one", 20) + numbered_lines("three", 20)
    assert os.stat(stream).st_size == len(data)
    assert "logs/2.log.gz" in mount.log()


@pytest.fixture
def stalled(server: LocalS3Server, faults: list[Fault]) -> Iterator[Fault]:
    """Every GET of ``logs/b.log`` is accepted and never answered (until the test ends)."""
    fault = Fault(count=1000, status=None, stall=600, key_contains="logs/b.log")
    try:
        yield fault
    finally:
        faults.clear()
        server.middleware.release_stalls()


def _in_flight(server: LocalS3Server) -> bool:
    return server.counters.in_flight > 0


@pytest.mark.slow  # waits out --timeout twice
def test_a_stalled_server_fails_the_read_within_the_timeout(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server, faults: list[Fault], stalled: Fault
) -> None:
    expected = three_objects(s3, bucket)
    mount = mount_one("--timeout", str(TIMEOUT), "--poll-interval", "0", prefix="logs/")
    faults.append(stalled)
    for path, before in ((mount.path / "stream", expected["logs/a.log"]), (mount.path / "b.log", b"")):
        started = time.monotonic()
        result = run(["cat", str(path)], check=False, timeout=TIMEOUT + MARGIN)
        assert time.monotonic() - started < TIMEOUT + MARGIN
        assert result.returncode != 0
        assert b"Input/output error" in result.stderr, result.stderr
        assert result.stdout == before
    assert stalled.seen >= 1  # the GETs really were held
    assert f"within --timeout {TIMEOUT:g} s for s3://{bucket}/logs/b.log" in mount.log()


def _reader(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["cat", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow  # waits out --timeout, four times
@pytest.mark.parametrize("command", ["s3logfs umount -z", "fusermount -u -z", "s3logfs umount", "fusermount -u"])
def test_unmounting_while_a_read_waits_on_a_stalled_server(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server, faults: list[Fault], stalled: Fault,
    command: str,
) -> None:
    """A lazy unmount completes at once; a plain one says busy at once, and completes once the
    read has failed (within the timeout). Either way the daemon exits and no process is left."""
    three_objects(s3, bucket)
    mount = mount_one("--timeout", str(TIMEOUT), "--poll-interval", "0", prefix="logs/")
    pid = mount.pid
    assert pid is not None
    faults.append(stalled)
    argv = command.split()
    argv = s3logfs_command(*argv[1:], str(mount.path)) if argv[0] == "s3logfs" else [*argv, str(mount.path)]
    reader = _reader(mount.path / "stream")
    try:
        wait_for(lambda: stalled.seen >= 1 and _in_flight(server), timeout=MARGIN)
        first = run(argv, check=False, timeout=MARGIN)
        lazy = "-z" in argv
        assert (first.returncode == 0) == lazy, first.stderr
        if not lazy:
            assert b"busy" in first.stderr.lower(), first.stderr
        _, stderr = reader.communicate(timeout=TIMEOUT + MARGIN)
        assert reader.returncode != 0
        assert b"Input/output error" in stderr or b"Transport endpoint" in stderr, stderr
        if not lazy:
            run(argv, timeout=MARGIN)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or daemon_pid(mount.path) is None, timeout=MARGIN)
        assert not is_mounted(mount.path)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_no_credential_reaches_the_log_at_debug_level(
    s3: Any, bucket: str, mount_one: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket, Key="logs/a.log.gz", Body=gzip.compress(numbered_lines("a", 100)))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", FAKE_TOKEN)
    mount = mount_one("--log-level", "DEBUG", "--poll-interval", "1", prefix="logs/")
    assert (mount.path / "a.log").read_bytes() == numbered_lines("a", 100)
    assert (mount.path / "stream").read_bytes() == numbered_lines("a", 100)
    s3.put_object(Bucket=bucket, Key="logs/b.log", Body=numbered_lines("b", 10))
    wait_for(lambda: b"b line" in (mount.path / "stream").read_bytes(), timeout=30)
    log = mount.log()
    # botocore's own debug lines are there: the headers, the canonical request, the signature
    assert "botocore" in log and "X-Amz-Security-Token" in log and "Signature" in log, log[:2000]
    assert "[REDACTED]" in log
    for secret in (FAKE_ACCESS_KEY, FAKE_SECRET, FAKE_TOKEN, FAKE_TOKEN[:24], FAKE_SECRET[:24]):
        assert secret not in log
    signatures = [line for line in log.splitlines() if "Signature=" in line and "Signature=[REDACTED]" not in line]
    assert signatures == []


def _xattr_call(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run(list(args), check=False)


def test_xattrs_live_only_in_the_user_namespace(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="logs/a.log", Body=numbered_lines("a", 10))
    mount = mount_one("--writable-bookmarks", prefix="logs/")
    paths = [mount.path, mount.path / "stream", mount.path / "a.log"]
    assert _xattr_call("setfattr", "-n", "user.s3logfs.bookmark.ok", "-v", "0", str(paths[1])).returncode == 0
    for path in paths:
        for name in ("trusted.s3logfs.bookmark.x", "security.s3logfs.bookmark.x", "trusted.x", "security.selinux",
                     "system.posix_acl_access", "s3logfs.bookmark.x"):
            assert _xattr_call("setfattr", "-n", name, "-v", "1", str(path)).returncode != 0, (path, name)
            assert _xattr_call("getfattr", "-n", name, str(path)).returncode != 0, (path, name)
        listed = _xattr_call("getfattr", "-d", "-m", "-", "--absolute-names", str(path)).stdout.decode()
        names = [line.split("=")[0] for line in listed.splitlines() if "=" in line]
        assert names and all(name.startswith("user.") for name in names), listed
    stored = mount.config_file.read_text()
    assert "ok" in stored and "trusted" not in stored and "security" not in stored


def test_bad_bookmark_values_through_setfattr_are_refused(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="logs/a.log", Body=numbered_lines("a", 10))
    mount = mount_one("--writable-bookmarks", prefix="logs/")
    stream = str(mount.path / "stream")
    for name, value in (("user.s3logfs.bookmark.ok", "-5"), ("user.s3logfs.bookmark.ok", "nonsense"),
                        ("user.s3logfs.bookmark.ok", "99999999999"), ("user.s3logfs.bookmark.bad name", "0")):
        result = _xattr_call("setfattr", "-n", name, "-v", value, stream)
        assert result.returncode != 0, (name, value)
        assert b"Invalid argument" in result.stderr, result.stderr
    assert "ok" not in (mount.config_file.read_text() if mount.config_file.exists() else "")


@pytest.mark.parametrize("problem", ["another user", "writable by others"])
def test_the_cache_refuses_a_directory_that_is_not_private(
    server: LocalS3Server, bucket: str, s3: Any, tmp_path: Path, problem: str
) -> None:
    s3.put_object(Bucket=bucket, Key="a.log", Body=b"a\n")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    if problem == "another user":
        os.chown(cache, 65534, 65534)
    else:
        os.chmod(cache, 0o777)
    before = os.stat(cache)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    endpoint = ["--endpoint-url", server.endpoint_url]
    for command in (["mount", bucket, str(mountpoint), *endpoint], ["cache", "clear"], ["cache", "lookup", bucket, *endpoint]):
        result = run(s3logfs_command(*command, "--cache-dir", str(cache)), check=False)
        line = refused_in_one_line(result)
        assert f"cache directory {cache}" in line and problem in line, line
    assert not is_mounted(mountpoint)
    after = os.stat(cache)
    assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode)  # refused, not "fixed"
    assert list(cache.iterdir()) == []


CACHE_LIMIT = 1 << 20


def _cache_bytes(root: Path) -> int:
    """The content the cache holds (what ``--cache-max-size`` limits): no records, no temp files.

    Measured under the lock that writers take to publish and evict: a walk of the directory
    takes long enough to see an entry that went and the one that replaced it, together.
    """
    if not (root / ".lock").exists():
        return 0
    fd = os.open(root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        total = 0
        for path in root.glob("??/*"):
            if not path.name.startswith(".") and not path.name.endswith(".meta"):
                total += path.stat().st_size
        return total
    finally:
        os.close(fd)


def test_the_cache_limit_holds_while_two_mounts_read_more_than_it_holds(
    s3: Any, bucket: str, mount_factory: Any, server: LocalS3Server, tmp_path: Path
) -> None:
    rng = random.Random(7)
    keys = [f"logs/{number:02d}.log.gz" for number in range(12)]
    for key in keys:  # each about 320 KB decoded: three fit in the cache, twelve are read
        text = b"".join(f"{key} {rng.randbytes(16).hex()} {line}\n".encode() for line in range(6000))
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(text))
    expected = {key: reference(s3, bucket, key) for key in keys}
    whole = b"".join(expected[key] for key in keys)
    assert len(whole) > 3 * CACHE_LIMIT
    cache = tmp_path / "shared-cache"
    options = ("--cache-max-size", "1M", "--prefetch", "2", "--poll-interval", "0")
    mounts = [mount_factory(bucket, "logs/", *options, cache_dir=cache) for _ in range(2)]
    peak, stop, failures = [0], threading.Event(), []

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _cache_bytes(cache))
            time.sleep(0.005)

    def read(mount: Mount, seed: int) -> None:
        try:
            for _ in range(2):
                if (mount.path / "stream").read_bytes() != whole:
                    failures.append(f"stream of {mount.path}")
                for key in random.Random(seed).sample(keys, len(keys)):
                    if (mount.path / Path(key).name[:-3]).read_bytes() != expected[key]:
                        failures.append(key)
        except OSError as error:
            failures.append(repr(error))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    readers = [threading.Thread(target=read, args=(mount, seed)) for seed, mount in enumerate(mounts * 2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=300)
    stop.set()
    sampler.join()
    assert not any(reader.is_alive() for reader in readers)
    assert failures == []
    assert 0 < peak[0] <= CACHE_LIMIT, peak[0]
    gets = sum(1 for request in server.counters.of_kind("get") if request.key in expected and request.range is None)
    assert gets > len(keys)  # evicted entries were fetched again
