"""A soak: 16 concurrent readers for a minute on one mount, while objects land and
5% of GETs fail; every byte read must equal the reference, nothing may hang, RSS stays bounded.

The readers mix every way in: per-key files, ``stream`` read sequentially and at random
offsets, ``tail -f``, cursor files (a ``--writable-bookmarks`` mount) and ``s3logfs cat``
sharing the mount's cache. Each reader is a process of its own (this file, run as a script),
so the readers do not share the test's interpreter with the S3 server. They record what they
read (offset, length, SHA-256); the test checks it all at the end against the stream built
from the references (boto3 + gzip.decompress) in stream order. The cache is kept small, so
objects are evicted and fetched again throughout, through the failing GETs.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

DURATION = 62.0
"""Seconds every reader runs: a minute, and a little more."""
READERS = {"file": 3, "sequential": 3, "random": 3, "tail": 2, "cursor": 2, "cat": 3}
RSS_BOUND = 400 << 20
"""The daemon's RSS must stay under this (it streams through the disk cache, never memory)."""
LANDING_EVERY = 1.5


def _worker_main(kind: str, mountpoint: str, out: str, seed: int, *extra: str) -> None:
    """One reader: reads in its own way until ``DURATION`` is up, then writes what it read."""
    rng = random.Random(seed)
    root = Path(mountpoint)
    deadline = time.monotonic() + DURATION
    records: list[Any] = []
    if kind == "file":
        while time.monotonic() < deadline:
            names = [name for name in os.listdir(root) if name != "stream"]
            name = rng.choice(names)
            data = (root / name).read_bytes()
            records.append([name, len(data), hashlib.sha256(data).hexdigest()])
    elif kind == "sequential":
        while time.monotonic() < deadline:
            digest, length = hashlib.sha256(), 0
            with open(root / "stream", "rb", buffering=0) as stream:
                while chunk := stream.read(rng.choice((4096, 65536, 1 << 20))):
                    digest.update(chunk)
                    length += len(chunk)
            records.append([0, length, digest.hexdigest()])
    elif kind == "random":
        fd = os.open(root / "stream", os.O_RDONLY)
        while time.monotonic() < deadline:
            offset = rng.randrange(max(1, os.fstat(fd).st_size))
            data = os.pread(fd, rng.randrange(1, 300_000), offset)
            records.append([offset, len(data), hashlib.sha256(data).hexdigest()])
        os.close(fd)
    elif kind == "cursor":
        cursor = root / ".bookmarks" / f"soak{seed}"
        subprocess.run(["touch", str(cursor)], check=True)
        digest, length = hashlib.sha256(), 0
        while time.monotonic() < deadline:
            data = subprocess.run(["cat", str(cursor)], check=True, capture_output=True, timeout=120).stdout
            digest.update(data)
            length += len(data)
            time.sleep(rng.uniform(0, 1))
        records.append([0, length, digest.hexdigest()])
    elif kind == "cat":
        while time.monotonic() < deadline:
            data = subprocess.run([sys.executable, "-m", "s3logfs", "cat", *extra], check=True, capture_output=True,
                                  timeout=120).stdout
            records.append([0, len(data), hashlib.sha256(data).hexdigest()])
    Path(out).write_text(json.dumps(records))


if __name__ == "__main__":
    _worker_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), *sys.argv[5:])
    sys.exit(0)

# The test itself: the readers above need neither pytest nor the fixtures.
import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server

from helpers import Mount, reference, run, wait_for


def _body(number: int, rng: random.Random) -> tuple[str, bytes]:
    """A key and its stored body: plain or gzip (one or several members), some without a final newline."""
    lines = [f"{number:05d} {line:05d} {rng.randbytes(rng.randrange(8, 60)).hex()}\n" for line in range(rng.randrange(200, 1500))]
    text = "".join(lines).encode()
    if number % 7 == 3:
        text = text.rstrip(b"\n")
    style = number % 3
    if style == 0:
        return f"logs/{number:05d}.log", text
    if style == 1:
        return f"logs/{number:05d}.log.gz", gzip.compress(text, compresslevel=1)
    cut = len(text) // 2
    return f"logs/{number:05d}.log.gz", gzip.compress(text[:cut]) + gzip.compress(text[cut:])


def _stream_bytes(contents: list[bytes]) -> bytes:
    return b"".join(content + (b"\n" if content and not content.endswith(b"\n") else b"") for content in contents)


def _caught_up(out: Path, size: int) -> bool:
    return out.stat().st_size >= size


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _Landing(threading.Thread):
    """Puts a new object every ``LANDING_EVERY`` seconds until stopped."""

    def __init__(self, s3: Any, bucket: str, first: int) -> None:
        super().__init__(daemon=True)
        self.s3, self.bucket, self.number = s3, bucket, first
        self.rng = random.Random(first)
        self.keys: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(LANDING_EVERY):
                key, body = _body(self.number, self.rng)
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
                self.keys.append(key)
                self.number += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def _tail(mount: Mount, start: int, out: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as handle:
        return subprocess.Popen(["tail", "-c", f"+{start + 1}", "-f", str(mount.path / "stream")], stdout=handle)


@pytest.mark.slow  # a minute by design
@pytest.mark.timeout(600)
def test_soak_sixteen_readers_for_a_minute(
    s3: Any, bucket: str, mount_factory: Any, server: LocalS3Server, faults: list[Fault], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(15)
    initial = [_body(number, rng) for number in range(40)]
    for key, body in initial:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    cache = tmp_path / "cache"
    mount = mount_factory(bucket, "logs/", "--writable-bookmarks", "--poll-interval", "1", "--cache-max-size", "4M",
                          "--prefetch", "4", cache_dir=cache)
    pid = mount.pid
    assert pid is not None
    warm = (mount.path / "stream").read_bytes()  # every length exact: offsets are final from here on
    faults.append(Fault(count=10**9, status=500, every=20))  # 5% of every GET, from now on
    landing = _Landing(s3, bucket, len(initial))
    landing.start()

    cat_args = [f"{bucket}/logs/", "--endpoint-url", server.endpoint_url, "--cache-dir", str(cache),
                "--cache-max-size", "4M", "--config-file", str(mount.config_file)]
    workers: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    for kind, count in READERS.items():
        for number in range(count if kind != "tail" else 0):
            out = tmp_path / f"{kind}{number}.json"
            argv = [sys.executable, __file__, kind, str(mount.path), str(out), str(len(workers))]
            with open(out.with_suffix(".err"), "wb") as errors:
                workers.append((kind, out, subprocess.Popen([*argv, *(cat_args if kind == "cat" else [])],
                                                            stderr=errors)))
    tails = [(start, tmp_path / f"tail{start}.out") for start in (0, len(warm) // 2)]
    tail_processes = [_tail(mount, start, out) for start, out in tails]
    assert len(workers) + len(tail_processes) == 16

    peak_rss, stop_sampling = [0], threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.25):
            try:
                peak_rss[0] = max(peak_rss[0], _rss(pid))
            except OSError:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for kind, out, process in workers:  # bounded: a deadlock fails here, not by hanging the suite
            status = process.wait(timeout=DURATION + 180)
            assert status == 0, f"the {kind} reader failed: {out.with_suffix('.err').read_text()[-3000:]}"
        landing.stop.set()
        landing.join(timeout=60)
        assert landing.error is None, landing.error
        faults.clear()
        keys = [key for key, _ in initial] + landing.keys
        expected = _stream_bytes([reference(s3, bucket, key) for key in keys])
        wait_for(lambda: os.stat(mount.path / "stream").st_size == len(expected), timeout=60)
        for start, out in tails:  # tail -f followed everything that landed
            wait_for(functools.partial(_caught_up, out, len(expected) - start), timeout=60)
    finally:
        stop_sampling.set()
        landing.stop.set()
        for process in tail_processes:
            process.terminate()
            process.wait(timeout=30)
        for _, _, process in workers:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)

    by_name = {Path(key).name.removesuffix(".gz"): reference(s3, bucket, key) for key in keys}
    assert (mount.path / "stream").read_bytes() == expected
    assert warm == expected[: len(warm)]
    bytes_read = len(warm) + _check_readers(workers, expected, by_name)
    for start, out in tails:
        data = out.read_bytes()
        assert data == expected[start:], f"tail -f from {start}"
        bytes_read += len(data)
    assert 0 < peak_rss[0] < RSS_BOUND, peak_rss[0]
    gets = server.counters.of_kind("get")
    failed = sum(1 for request in gets if request.status == 500)
    run(["getfattr", "-n", "user.s3logfs.stats", str(mount.path)])  # the daemon still answers
    with capsys.disabled():
        print(f"\nsoak: {len(keys)} objects ({len(keys) - len(initial)} landed during the run), "
              f"{bytes_read / 1e6:.1f} MB read by 16 readers in {DURATION:.0f} s, daemon peak RSS "
              f"{peak_rss[0] / 2**20:.1f} MiB, {len(gets)} GETs of which {failed} failed on purpose")
    assert failed > 0


def _check_readers(workers: list[tuple[str, Path, subprocess.Popen[bytes]]], expected: bytes,
                   by_name: dict[str, bytes]) -> int:
    """Check every record of every reader against the reference; return the bytes they read."""
    total = 0
    for kind, out, _ in workers:
        records = json.loads(out.read_text())
        assert records, f"the {kind} reader read nothing"
        for first, length, digest in records:
            if kind == "file":
                data = by_name[first]
                assert (length, hashlib.sha256(data).hexdigest()) == (len(data), digest), first
            else:
                assert length <= len(expected) - first
                assert hashlib.sha256(expected[first : first + length]).hexdigest() == digest, (kind, first, length)
                if kind == "random":
                    assert length > 0, first
            total += length
    return total
