"""Following ``MOUNT/stream`` with real tools while it grows (README, "Everyday tools", "GoAccess",
"lnav" and "Semantics and limits").

Every test mounts a real bucket prefix with the real CLI, puts new objects into the local S3
server while a real reader (``tail -f``, ``tail -F``, ``less +F``, GoAccess) is watching, and
checks what the reader saw against an independent reference: boto3 ``get_object`` plus
``gzip.decompress``, with a newline added after an object that lacks one.

The only waits are for a condition, with a deadline of one poll interval plus two seconds
(:data:`SLACK`), measured from the moment of the first put. Every process started here is ended
in a ``finally`` block; mounts come down in the fixtures.

The last two tests follow multi-member gzip objects, and new objects of every shape while
estimates are being corrected.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import random
import re
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.demo_data import DemoObject, alb_object, cwl_firehose_object, s3_access_object

from helpers import Mount, free_port, have, reference, run, wait_for

POLL = 2
"""``--poll-interval`` of the follow tests, in seconds."""

SLACK = 2
"""New objects appear within ``--poll-interval`` (README, "Semantics and limits": staleness); a
reader that polls the file itself (``tail -f`` once a second, ``less +F``, GoAccess) may take this
much more."""

HEAD_BYTES = 4096
"""GoAccess in real-time mode reopens a file whose size changed and compares its inode and first
4096 bytes; if either changed it parses the whole file again, counting every line twice."""

T0 = datetime(2026, 3, 14, 9, 0, 0, tzinfo=timezone.utc)


# helpers --------------------------------------------------------------------------


def stream_bytes(s3: Any, bucket: str, keys: list[str]) -> bytes:
    """The reference stream of ``keys`` in that order: decoded, newline added if missing."""
    parts = []
    for key in keys:
        content = reference(s3, bucket, key)
        if content and not content.endswith(b"\n"):
            content += b"\n"
        parts.append(content)
    return b"".join(parts)


def put(s3: Any, bucket: str, objects: list[DemoObject]) -> None:
    for obj in objects:
        s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.body)


def alb_objects(seed: int, minutes: list[int], lines: int = 20) -> list[DemoObject]:
    """ALB objects, one per start time ``T0 + minute``: later times give keys that sort later."""
    rng = random.Random(seed)
    return [alb_object(rng, T0 + timedelta(minutes=minute, seconds=1), lines, prefix="alb/")
            for minute in minutes]


def head(path: Path, size: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def until(deadline: float, predicate: Callable[[], Any], what: str, interval: float = 0.05) -> Any:
    """``wait_for`` with an absolute deadline (so that it is measured from the put, not from here)."""
    try:
        return wait_for(predicate, timeout=max(0.0, deadline - time.monotonic()), interval=interval)
    except AssertionError:
        raise AssertionError(f"{what}: not within the deadline") from None


class PipeReader:
    """Collects everything a child writes to a pipe, in a thread."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pipe-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while chunk := self._pipe.read1(65536):
                with self._lock:
                    self._data += chunk
        except (OSError, ValueError):  # the pipe was closed under us, after the child ended
            return

    def value(self) -> bytes:
        with self._lock:
            return bytes(self._data)


@contextmanager
def background(command: list[str], **kwargs: Any) -> Iterator[subprocess.Popen]:
    """A child process that is always ended (terminate, then kill) when the block exits."""
    process = subprocess.Popen(command, **kwargs)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def goaccess(log: Path, log_format: str, report: Path, *extra: str) -> dict[str, Any]:
    """Run goaccess once over ``log`` and return the ``general`` section of its JSON report."""
    run(["goaccess", str(log), "--no-global-config", f"--log-format={log_format}", "-o", str(report), *extra],
        stdin=subprocess.DEVNULL)
    return json.loads(report.read_text())["general"]


# tail -f and tail -F ----------------------------------------------------------------


@pytest.mark.parametrize("follow", ["-f", "-F"])
def test_tail_follows_new_objects(s3: Any, bucket: str, mount_one: Callable[..., Mount], follow: str) -> None:
    initial = alb_objects(1, [10, 15, 20])
    put(s3, bucket, initial)
    initial_keys = [obj.key for obj in initial]
    old = stream_bytes(s3, bucket, initial_keys)
    mount = mount_one("--poll-interval", str(POLL), prefix="alb/")
    stream = mount.path / "stream"

    later, earlier = alb_objects(2, [25, 5])
    assert initial_keys[-1] < later.key and earlier.key < initial_keys[-1]
    expected_tail = b"".join(old.splitlines(keepends=True)[-10:])

    with background(["tail", follow, str(stream)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL) as tail:
        output = PipeReader(tail.stdout)
        # starting tail has no deadline: it only has to print the last ten lines
        wait_for(lambda: output.value() == expected_tail, timeout=30)
        before = os.stat(stream)
        head_before = head(stream)
        assert before.st_size == len(old)
        assert head_before == old[:HEAD_BYTES]

        started = time.monotonic()
        put(s3, bucket, [later, earlier])
        new_later = stream_bytes(s3, bucket, [later.key])
        new_earlier = stream_bytes(s3, bucket, [earlier.key])
        until(started + POLL + SLACK,
              lambda: new_later in output.value() and new_earlier in output.value(),
              f"tail {follow} showing both new objects")
        assert tail.poll() is None, "tail exited"
        seen = output.value()

    assert seen in (expected_tail + new_later + new_earlier, expected_tail + new_earlier + new_later)
    after = os.stat(stream)
    assert after.st_ino == before.st_ino
    assert after.st_size - before.st_size == len(new_later) + len(new_earlier)
    assert head(stream) == head_before
    # The stream as a whole: old objects in key order, the two new ones appended in either order.
    whole = stream.read_bytes()
    assert whole in (old + new_later + new_earlier, old + new_earlier + new_later)


# less +F in tmux -----------------------------------------------------------------------


@pytest.mark.skipif(not have("tmux") or not have("less"), reason="needs tmux and less")
def test_less_follow_in_tmux(s3: Any, bucket: str, mount_one: Callable[..., Mount]) -> None:
    rng = random.Random(3)
    initial = [s3_access_object(rng, T0 + timedelta(minutes=m), 30, prefix="s3-access/") for m in (0, 1, 2)]
    put(s3, bucket, initial)
    mount = mount_one("--poll-interval", str(POLL), prefix="s3-access/")
    stream = mount.path / "stream"
    last_line = stream_bytes(s3, bucket, [initial[-1].key]).splitlines()[-1].decode()

    socket_name = f"s3logfs-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    session = "follow"
    tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
    env = {name: value for name, value in os.environ.items() if not name.startswith(("LESS", "TMUX"))}
    env.update(LESS="", TERM="xterm", LANG="C.UTF-8")

    def screen() -> str:
        result = run([*tmux, "capture-pane", "-p", "-J", "-t", session], check=False, env=env)
        return result.stdout.decode(errors="replace")

    marker = f"s3logfs-less-follow-{uuid.uuid4().hex}"
    try:
        run([*tmux, "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
             f"less +F {shlex.quote(str(stream))}"], env=env)
        # less +F starts at the end: the last line of the stream must be on screen
        wait_for(lambda: last_line[-60:] in screen(), timeout=30)
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key="s3-access/2026-03-14-09-59-59-ZZZZMARKER",
                      Body=f"{marker}\n".encode())
        until(started + POLL + SLACK, lambda: marker in screen(), "less +F showing the new line")
    finally:
        run([*tmux, "kill-session", "-t", session], check=False, env=env)
        run([*tmux, "kill-server"], check=False, env=env)


# GoAccess --persist / --restore ----------------------------------------------------------


@pytest.mark.skipif(not have("goaccess"), reason="needs goaccess")
def test_goaccess_restore_counts_every_line_once(s3: Any, bucket: str, mount_one: Callable[..., Mount],
                                                 tmp_path: Path) -> None:
    initial = alb_objects(4, [10, 15, 20], lines=25)
    put(s3, bucket, initial)
    mount = mount_one("--poll-interval", str(POLL), prefix="alb/")
    stream = mount.path / "stream"
    old = stream_bytes(s3, bucket, [obj.key for obj in initial])
    db = tmp_path / "goaccess-db"
    db.mkdir()

    first = goaccess(stream, "AWSALB", tmp_path / "first.json", "--persist", f"--db-path={db}")
    assert first["total_requests"] == old.count(b"\n")

    # one that sorts last, one that sorts first (found later, so appended at the end)
    new = alb_objects(5, [25, 5], lines=15)
    started = time.monotonic()
    put(s3, bucket, new)
    added = len(stream_bytes(s3, bucket, [obj.key for obj in new]))
    new_lines = sum(obj.content.count(b"\n") for obj in new)
    until(started + POLL + SLACK, lambda: os.stat(stream).st_size == len(old) + added, "stream size growing")

    second = goaccess(stream, "AWSALB", tmp_path / "second.json", "--restore", "--persist", f"--db-path={db}")
    assert second["total_requests"] == old.count(b"\n") + new_lines
    assert second["valid_requests"] == old.count(b"\n") + new_lines


# GoAccess real-time HTML ---------------------------------------------------------------


def websocket_messages(port: int, stop: threading.Event, sink: list[dict[str, Any]]) -> None:
    """A minimal WebSocket client (RFC 6455): append each JSON message GoAccess sends to ``sink``.

    Runs in a thread until ``stop`` is set or the server goes away.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            buffer = b""

            def receive() -> None:
                nonlocal buffer
                while True:
                    if stop.is_set():
                        raise EOFError
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        raise EOFError
                    buffer += chunk
                    return

            def need(count: int) -> bytes:
                nonlocal buffer
                while len(buffer) < count:
                    receive()
                data, buffer = buffer[:count], buffer[count:]
                return data

            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                          f"Origin: http://127.0.0.1\r\n\r\n").encode())
            while b"\r\n\r\n" not in buffer:
                receive()
            status, _, buffer = buffer.partition(b"\r\n\r\n")
            if b" 101 " not in status.split(b"\r\n")[0]:
                return
            message = b""
            while True:
                first, second = need(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack(">H", need(2))
                elif length == 127:
                    (length,) = struct.unpack(">Q", need(8))
                mask = need(4) if second & 0x80 else b""
                payload = need(length)
                if mask:
                    payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
                message += payload
                if first & 0x80:  # FIN: the message is complete
                    if message.startswith(b"{"):
                        sink.append(json.loads(message))
                    message = b""
    except (EOFError, OSError):
        return


def embedded_totals(html: str) -> int | None:
    """``general.total_requests`` of the JSON data GoAccess embeds in its HTML report."""
    match = re.search(r'"general":\s*\{[^{}]*?"total_requests":\s*(\d+)', html)
    return int(match.group(1)) if match else None


@pytest.mark.skipif(not have("goaccess"), reason="needs goaccess")
def test_goaccess_real_time_follows_the_stream(s3: Any, bucket: str, mount_one: Callable[..., Mount],
                                               tmp_path: Path) -> None:
    initial = alb_objects(6, [10, 15, 20])
    put(s3, bucket, initial)
    mount = mount_one("--poll-interval", str(POLL), prefix="alb/")
    stream = mount.path / "stream"
    old = stream_bytes(s3, bucket, [obj.key for obj in initial])
    old_lines = old.count(b"\n")
    report = tmp_path / "report.html"
    port = free_port()
    command = ["goaccess", str(stream), "--no-global-config", "--log-format=AWSALB", "--real-time-html",
               "-o", str(report), f"--port={port}", "--addr=127.0.0.1"]
    stop = threading.Event()
    messages: list[dict[str, Any]] = []
    client: threading.Thread | None = None
    with background(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE) as process:
        try:
            errors = PipeReader(process.stderr)
            wait_for(lambda: process.poll() is not None or (report.exists()
                     and embedded_totals(report.read_text(errors="replace")) is not None), timeout=30)
            assert process.poll() is None, errors.value().decode(errors="replace")
            # GoAccess 1.7 writes report.html once, at start, with the data of that moment embedded;
            # later updates go to the page over its WebSocket only, so that is where they are checked.
            assert embedded_totals(report.read_text(errors="replace")) == old_lines

            def connect() -> bool:
                nonlocal client
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    return False
                client = threading.Thread(target=websocket_messages, args=(port, stop, messages), daemon=True)
                client.start()
                return True

            wait_for(connect, timeout=30)
            # on connection GoAccess sends the whole current report
            wait_for(lambda: messages, timeout=30)
            assert messages[-1]["general"]["total_requests"] == old_lines

            new = alb_objects(7, [25, 5])
            started = time.monotonic()
            put(s3, bucket, new)
            added = len(stream_bytes(s3, bucket, [obj.key for obj in new]))
            new_lines = sum(obj.content.count(b"\n") for obj in new)
            until(started + POLL + SLACK, lambda: os.stat(stream).st_size == len(old) + added,
                  "stream size growing")
            until(started + POLL + SLACK,
                  lambda: messages and messages[-1]["general"]["total_requests"] >= old_lines + new_lines,
                  "GoAccess pushing the new totals")
            # exactly: a re-parse from offset 0 (inode or first bytes changed) would count old lines twice
            assert messages[-1]["general"]["total_requests"] == old_lines + new_lines
            assert messages[-1]["general"]["valid_requests"] == old_lines + new_lines
            assert process.poll() is None, errors.value().decode(errors="replace")
        finally:
            stop.set()
            if client is not None:
                client.join(timeout=5)


# GoAccess totals, mount against a local copy ----------------------------------------------


def s3_access_objects(seed: int, count: int, lines: int) -> list[DemoObject]:
    rng = random.Random(seed)
    return [s3_access_object(rng, T0 + timedelta(minutes=5 * i), lines, prefix="s3-access/")
            for i in range(count)]


@pytest.mark.skipif(not have("goaccess"), reason="needs goaccess")
@pytest.mark.parametrize("log_format", ["AWSALB", "AWSS3"])
def test_goaccess_totals_match_a_local_copy(s3: Any, bucket: str, mount_one: Callable[..., Mount],
                                            tmp_path: Path, log_format: str) -> None:
    if log_format == "AWSALB":
        objects, prefix = alb_objects(8, [0, 5, 10, 15, 20], lines=40), "alb/"
    else:
        objects, prefix = s3_access_objects(9, 5, 40), "s3-access/"
    put(s3, bucket, objects)
    # one plain object without its final newline: the stream must add it, or two lines merge
    if log_format == "AWSS3":
        s3.put_object(Bucket=bucket, Key=objects[2].key, Body=objects[2].body.rstrip(b"\n"))
    keys = sorted(obj.key for obj in objects)
    expected = stream_bytes(s3, bucket, keys)
    lines = expected.count(b"\n")
    mount = mount_one(prefix=prefix)
    stream = mount.path / "stream"

    on_mount = goaccess(stream, log_format, tmp_path / "mount.json")
    local = tmp_path / "local.log"
    shutil.copyfile(stream, local)
    assert local.read_bytes() == expected
    on_copy = goaccess(local, log_format, tmp_path / "local.json")

    volatile = {"date_time", "generation_time", "log_path"}
    assert {k: v for k, v in on_mount.items() if k not in volatile} == \
        {k: v for k, v in on_copy.items() if k not in volatile}
    for name in ("total_requests", "valid_requests", "failed_requests", "unique_visitors"):
        assert on_mount[name] == on_copy[name], name
    assert on_mount["total_requests"] == on_mount["valid_requests"] == lines
    assert on_mount["failed_requests"] == 0


# lnav -------------------------------------------------------------------------------------


@pytest.mark.skipif(not have("lnav"), reason="needs lnav")
def test_lnav_recognizes_s3_access_logs(s3: Any, bucket: str, mount_one: Callable[..., Mount],
                                        tmp_path: Path) -> None:
    objects = s3_access_objects(10, 4, 30)
    put(s3, bucket, objects)
    s3.put_object(Bucket=bucket, Key=objects[1].key, Body=objects[1].body.rstrip(b"\n"))
    expected = stream_bytes(s3, bucket, sorted(obj.key for obj in objects))
    mount = mount_one(prefix="s3-access/")
    home = tmp_path / "lnav-home"
    home.mkdir()
    result = run(["lnav", "-n", "-q",
                  "-c", ";SELECT log_format, count(*) AS n FROM all_logs GROUP BY log_format",
                  "-c", ":write-json-to -", str(mount.path / "stream")],
                 env={**{k: v for k, v in os.environ.items() if not k.startswith("XDG_")},
                      "HOME": str(home), "TERM": "dumb"},
                 stdin=subprocess.DEVNULL, timeout=120)
    rows = json.loads(result.stdout)
    assert rows == [{"log_format": "s3_log", "n": expected.count(b"\n")}], result.stderr


# multi-member gzip and every other shape of object under tail -f ----------------------------


def test_tail_f_starts_with_the_last_lines_of_multi_member_objects(
        s3: Any, bucket: str, mount_one: Callable[..., Mount]) -> None:
    """CloudWatch Logs deliveries through Firehose are multi-member gzip, each member a JSON envelope.

    ``tail -f stream`` first prints the last ten lines of the stream. Each Firehose object here
    is one line (envelopes concatenated without a delimiter, the stream adds the newline).
    """
    rng = random.Random(12)
    objects = [cwl_firehose_object(rng, T0 + timedelta(minutes=m), 4, 3) for m in range(12)]
    put(s3, bucket, objects)
    expected = stream_bytes(s3, bucket, sorted(obj.key for obj in objects))
    expected_tail = b"".join(expected.splitlines(keepends=True)[-10:])
    mount = mount_one("--poll-interval", str(POLL), prefix="cwl-firehose/")
    with background(["tail", "-f", str(mount.path / "stream")], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL) as tail:
        output = PipeReader(tail.stdout)
        try:
            wait_for(lambda: output.value() == expected_tail, timeout=10)
        except AssertionError:
            seen = output.value()
            lines = len(seen.splitlines())
            raise AssertionError(f"tail -f printed {lines} lines, {len(seen)} bytes, "
                                 f"not the last 10 lines ({len(expected_tail)} bytes)") from None


def test_tail_follows_every_object_shape_without_repeats(s3: Any, bucket: str,
                                                         mount_one: Callable[..., Mount]) -> None:
    """New objects of every shape reach ``tail -f`` exactly, even after earlier estimates were corrected.

    The first object is a multi-member gzip, so its mount-time size (the gzip trailer gives the
    last member only) is an estimate. ``tail -f`` starts at the end without reading it (the ALB
    objects after it are much longer than tail's backward reads); another reader then reads the
    whole stream, which corrects the estimate and moves every later offset. tail must neither
    repeat nor skip anything when the next objects arrive (README, "Semantics and limits": a sequential
    reader never sees a gap or a repeat because of a correction).
    """
    rng = random.Random(11)
    multi = cwl_firehose_object(rng, T0, 5, 3, prefix="mixed/a-cwl/")
    albs = [alb_object(rng, T0 + timedelta(minutes=m, seconds=1), 40, prefix="mixed/b-alb/")
            for m in (10, 15)]
    put(s3, bucket, [multi, *albs])
    keys = [multi.key, *(obj.key for obj in albs)]
    old = stream_bytes(s3, bucket, keys)
    assert not reference(s3, bucket, multi.key).endswith(b"\n")
    assert len(old) - len(stream_bytes(s3, bucket, [multi.key])) > 40_000
    mount = mount_one("--poll-interval", str(POLL), prefix="mixed/")
    stream = mount.path / "stream"
    expected_tail = b"".join(old.splitlines(keepends=True)[-10:])

    new = {
        "mixed/c-plain-no-newline.log": b"plain line 1\nplain line 2 without newline",
        "mixed/c-gzip-no-newline.log.gz": gzip.compress(b"gzip line 1\ngzip line 2 without newline"),
        "mixed/c-empty.log": b"",
        "mixed/0-multi-member-sorts-first.gz": gzip.compress(b"member 1\n") + gzip.compress(b"member 2\n"),
    }
    with background(["tail", "-f", str(stream)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL) as tail:
        output = PipeReader(tail.stdout)
        wait_for(lambda: output.value() == expected_tail, timeout=30)
        inode = os.stat(stream).st_ino
        assert stream.read_bytes() == old  # corrects the estimate of the first object
        assert os.stat(stream).st_size == len(old)

        started = time.monotonic()
        for key, body in new.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        pieces = [stream_bytes(s3, bucket, [key]) for key in new]
        wanted = len(expected_tail) + sum(map(len, pieces))
        until(started + POLL + SLACK, lambda: len(output.value()) >= wanted,
              "tail -f showing the new objects")
        # a sentinel that sorts last: once tail shows it, any repeat would already be in the output
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key="mixed/z-sentinel.log", Body=b"sentinel\n")
        until(started + POLL + SLACK, lambda: output.value().endswith(b"sentinel\n"),
              "tail -f showing the sentinel")
        seen = output.value()
        assert tail.poll() is None, "tail exited"

    assert seen[: len(expected_tail)] == expected_tail
    middle = seen[len(expected_tail): -len(b"sentinel\n")]
    assert any(middle == b"".join(order) for order in itertools.permutations(pieces)), middle[:2000]
    assert os.stat(stream).st_ino == inode
    grown = sum(map(len, pieces)) + len(b"sentinel\n")
    assert os.stat(stream).st_size == len(old) + grown
    whole = stream.read_bytes()
    assert whole.startswith(old) and whole.endswith(b"sentinel\n") and len(whole) == len(old) + grown
