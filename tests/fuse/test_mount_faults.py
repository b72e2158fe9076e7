"""Faults on a real mount (README, "Faults: what you see and what is logged"): transient S3 failures
are retried and never show, permanent ones give a clean error for that file only, and a killed
daemon leaves a usable cache.

Faults are injected by :class:`s3logfs.devtools.localserver.CountingMiddleware` in front of the
real local S3 server, so they travel over real HTTP to the real mount daemon.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server
from s3logfs.engine.cache import cache_hash

from helpers import gets_of, is_mounted, mount_stats, reference, run, wait_for


def cat(path: Path) -> bytes:
    return run(["cat", str(path)]).stdout


def noisy_log(seed: int, size: int) -> bytes:
    """Log lines with random hex in them: gzip shrinks them only about twofold."""
    rng = random.Random(seed)
    lines, total = [], 0
    while total < size:
        line = f"2026-11-21T00:00:{total % 60:02d}Z GET /{rng.randbytes(24).hex()} 200 {rng.randrange(10**6)}"
        lines.append(line.encode() + b"\n")
        total += len(lines[-1])
    return b"".join(lines)


def temp_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.tmp"))


def writing_into(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` holds a file under ``directory`` open for writing."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            fdinfo = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        flags = re.search(r"^flags:\s+([0-7]+)", fdinfo, re.MULTILINE)
        writable = flags is not None and int(flags.group(1), 8) & os.O_ACCMODE != os.O_RDONLY
        if writable and target.startswith(f"{directory}/"):
            return True
    return False


def test_5xx_on_get_are_retried_and_invisible(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server, faults: list[Fault]
) -> None:
    files = {"app.log": "logs/app.log.gz", "plain.log": "logs/plain.log"}
    s3.put_object(Bucket=bucket, Key=files["app.log"], Body=gzip.compress(noisy_log(1, 200_000)))
    s3.put_object(Bucket=bucket, Key=files["plain.log"], Body=b"plain line\n" * 1000)
    expected = {key: reference(s3, bucket, key) for key in files.values()}
    injected = [Fault(count=3, status=500, key_contains=key) for key in files.values()]
    faults.extend(injected)  # before mounting: whichever GET comes first (probe, read-ahead, read) fails
    mount = mount_one(prefix="logs/")
    for name, key in files.items():
        assert cat(mount.path / name) == expected[key]
    for fault, key in zip(injected, files.values()):
        statuses = [request.status for request in gets_of(server, key)]
        assert fault.count == 0, f"the injected 500s were not all requested: {gets_of(server, key)}"
        assert statuses.count(500) == 3
        assert statuses[-1] in (200, 206)
    assert mount_stats(mount)["retries"] >= 6


def test_truncated_body_is_resumed_with_a_ranged_get(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server, faults: list[Fault]
) -> None:
    key = "logs/big.log.gz"
    body = gzip.compress(noisy_log(2, 6_000_000), compresslevel=6)
    assert len(body) > 2_500_000  # random-ish content: the stored object stays large
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    expected = reference(s3, bucket, key)
    mount = mount_one(prefix="logs/")
    os.stat(mount.path / "big.log")  # size probes done: the fault below hits the download itself
    cut = 1_500_000
    fault = Fault(count=1, status=None, truncate_at=cut, key_contains=key)
    faults.append(fault)
    assert cat(mount.path / "big.log") == expected
    assert fault.count == 0
    gets = gets_of(server, key)
    broken = [index for index, request in enumerate(gets) if request.body_bytes == cut]
    assert len(broken) == 1
    resumed = gets[broken[0] + 1 :]
    assert resumed, "no GET followed the broken body"
    match = re.fullmatch(r"bytes=(\d+)-", resumed[0].range or "")
    assert match, f"the GET after the broken body was not ranged: {resumed[0].range!r}"
    assert 0 < int(match.group(1)) <= cut
    assert len(gets) == broken[0] + 2
    assert mount_stats(mount)["retries"] >= 1


def test_corrupt_gzip_gives_eio_for_that_file_only(s3: Any, bucket: str, mount_one: Any) -> None:
    corrupt = bytearray(gzip.compress(noisy_log(3, 100_000)))
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = bytes(64)
    s3.put_object(Bucket=bucket, Key="logs/corrupt.log.gz", Body=bytes(corrupt))
    s3.put_object(Bucket=bucket, Key="logs/good.log.gz", Body=gzip.compress(b"good line\n" * 100))
    mount = mount_one(prefix="logs/")
    for _ in range(2):  # the second attempt fetches again and fails the same way: nothing partial was kept
        result = run(["cat", str(mount.path / "corrupt.log")], check=False)
        assert result.returncode != 0
        assert b"Input/output error" in result.stderr, result.stderr
        assert result.stdout == b""
    assert "logs/corrupt.log.gz" in mount.log()
    assert cat(mount.path / "good.log") == b"good line\n" * 100
    assert mount_stats(mount)["errors"] >= 1
    cache_path = run(["getfattr", "-n", "user.s3logfs.cache_path", str(mount.path / "corrupt.log")],
                     check=False)
    assert cache_path.returncode != 0  # not in the cache


@pytest.mark.parametrize("found_by", ["get", "head"])
def test_object_deleted_after_mounting_fails_cleanly(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server, found_by: str
) -> None:
    s3.put_object(Bucket=bucket, Key="logs/kept.log", Body=b"kept\n" * 10)
    s3.put_object(Bucket=bucket, Key="logs/gone.log.gz", Body=gzip.compress(b"gone\n" * 40))
    mount = mount_one(*(["--poll-interval", "1"] if found_by == "head" else []), prefix="logs/")
    assert "gone.log" in os.listdir(mount.path)
    s3.delete_object(Bucket=bucket, Key="logs/gone.log.gz")
    if found_by == "head":  # listings that no longer show the key age its record: open() HEADs it first
        lists = len(server.counters.of_kind("list"))
        wait_for(lambda: len(server.counters.of_kind("list")) >= lists + 3, timeout=30)
    result = run(["cat", str(mount.path / "gone.log")], check=False)
    assert result.returncode != 0
    assert result.stdout == b""
    assert re.search(rb"Input/output error|No such file or directory", result.stderr), result.stderr
    assert any(r.key == "logs/gone.log.gz" and r.status == 404 for r in server.counters.of_kind(found_by))
    assert "logs/gone.log.gz" in mount.log()
    assert cat(mount.path / "kept.log") == b"kept\n" * 10


def test_object_deleted_after_mounting_gives_eio(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="logs/kept.log", Body=b"kept\n")
    s3.put_object(Bucket=bucket, Key="logs/gone.log.gz", Body=gzip.compress(b"gone\n" * 40))
    mount = mount_one(prefix="logs/")
    assert "gone.log" in os.listdir(mount.path)
    s3.delete_object(Bucket=bucket, Key="logs/gone.log.gz")
    result = run(["cat", str(mount.path / "gone.log")], check=False)
    assert b"Input/output error" in result.stderr, result.stderr


def test_kill_9_then_remount_with_the_same_cache(
    s3: Any, bucket: str, mount_factory: Any, server: LocalS3Server
) -> None:
    s3.put_object(Bucket=bucket, Key="logs/small.log", Body=b"small\n" * 100)
    s3.put_object(Bucket=bucket, Key="logs/big.log.gz", Body=gzip.compress(noisy_log(4, 40_000_000), 1))
    mount = mount_factory(bucket, "logs/")
    assert cat(mount.path / "small.log") == b"small\n" * 100
    pid = mount.pid
    assert pid is not None
    with subprocess.Popen(["cat", str(mount.path / "big.log")], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as reader:
        try:
            big_dir = mount.cache_dir / cache_hash(bucket, "logs/big.log.gz")[:2]
            wait_for(lambda: writing_into(pid, big_dir), timeout=60, interval=0.01)  # mid-download
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not Path(f"/proc/{pid}").exists() or mount.pid is None, timeout=10)
            reader.wait(timeout=30)
        finally:
            if reader.poll() is None:
                reader.kill()
    run(["fusermount", "-u", "-z", str(mount.path)])
    assert not is_mounted(mount.path)

    small_gets = len(gets_of(server, "logs/small.log"))
    again = mount_factory(bucket, "logs/", cache_dir=mount.cache_dir, mountpoint=mount.path)
    assert cat(again.path / "small.log") == b"small\n" * 100
    assert len(gets_of(server, "logs/small.log")) == small_gets, "the cache did not survive the crash"
    assert cat(again.path / "big.log") == reference(s3, bucket, "logs/big.log.gz")
    assert temp_files(again.cache_dir) == []
