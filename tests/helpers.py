"""What the tests share that is not a fixture: commands, mounts seen from outside, references, test data.

Imported as ``helpers`` from every test directory (``pythonpath = ["tests"]`` in pyproject.toml);
the fixtures live in ``conftest.py``. Only the standard library is imported at module level, so a
test module (or a process it spawns) that imports this stays light.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from s3logfs.devtools.localserver import Fault, LocalS3Server

ROOT = Path(__file__).resolve().parent.parent
"""The repository."""
README = ROOT / "README.md"
DATA = Path(__file__).resolve().parent / "data"
"""Sample logs the tests read; ``data/SOURCES.md`` says where each comes from."""

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
REGION = CREDENTIALS["AWS_DEFAULT_REGION"]
ACCOUNT = "123456789012"

FAKE_ACCESS_KEY = "ASIAS3LOGFSFAKEKEY42"
FAKE_SECRET = "s3logfs-fake-SECRET-Zq9Xw2Vb7Lm4Kp8Nr3Ty6"
FAKE_TOKEN = "s3logfs-fake-SESSION-TOKEN-Hd7Fj2Gs9Qa1Wz5Xc3Vb8+/Nm4Lk6=="
"""Credentials that must never reach a log line."""


def sample(name: str) -> bytes:
    """A sample log from ``tests/data``."""
    return (DATA / name).read_bytes()


# commands -------------------------------------------------------------------------------------


def run(command: list[str], check: bool = True, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return result


def s3logfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "s3logfs", *args]


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused_in_one_line(result: subprocess.CompletedProcess) -> str:
    """The stderr line of a command that failed as it should: a non-zero exit, one line, no traceback."""
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.returncode != 0, stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    return stderr.strip()


def refuse(command: list[str], mountpoint: Path, env: dict[str, str] | None = None) -> str:
    """Run a command that must be refused in one line and leave ``mountpoint`` as it was."""
    was_mounted = is_mounted(mountpoint)
    line = refused_in_one_line(run(command, check=False, env=env))
    assert is_mounted(mountpoint) == was_mounted
    return line


# mounts, seen from outside ------------------------------------------------------------------


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


def mount_stats(mount: Mount) -> dict[str, int]:
    """The daemon's counters: the ``user.s3logfs.stats`` attribute of the mount's root."""
    return json.loads(run(["getfattr", "--only-values", "-n", "user.s3logfs.stats", str(mount.path)]).stdout)


def stat_size(path: Path) -> int:
    """``st_size`` as ``stat(1)`` sees it."""
    return int(run(["stat", "-c", "%s", str(path)]).stdout)


# S3 and the references ----------------------------------------------------------------------


def reference(s3: Any, bucket: str, key: str) -> bytes:
    """What a reader must see for ``key``: boto3 get_object plus gzip.decompress."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body


def stream_reference(s3: Any, bucket: str, keys: list[str]) -> bytes:
    """Each object in key order, decoded, with a newline added after one that lacks it."""
    parts = []
    for key in keys:
        content = reference(s3, bucket, key)
        parts.append(content + b"\n" if content and not content.endswith(b"\n") else content)
    return b"".join(parts)


def put_all(s3: Any, bucket: str, contents: dict[str, bytes]) -> None:
    for key, body in contents.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def gets_of(server: LocalS3Server, key: str) -> list:
    """The GETs of ``key`` the server has answered."""
    return [request for request in server.counters.of_kind("get") if request.key == key]


@contextlib.contextmanager
def served_view(options: Any) -> Iterator[tuple[Any, Any]]:
    """The mount without FUSE: a loaded engine for ``options`` (a ``SourceOptions``) under its
    ``LogFilesystem``, closed afterwards; yields ``(view, engine)``."""
    from s3logfs import engine
    from s3logfs.fs.view import LogFilesystem, ViewOptions

    served = engine.build(options)
    view = LogFilesystem(served, ViewOptions(source=options.url, revalidate_after=60.0, uid=os.getuid(),
                                             gid=os.getgid()))
    served.load()
    served.reader.ready.wait(30)
    try:
        yield view, served
    finally:
        view.close()
        served.close()


def count_fast_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets an item each time the fast listing parser runs (not botocore's fallback)."""
    from s3logfs.engine import listing_parser

    calls: list[int] = []
    original = listing_parser.parse_list_v2
    monkeypatch.setattr(listing_parser, "parse_list_v2", lambda body: calls.append(1) or original(body))
    return calls


# objects that cannot be read: --skip-errors and EIO -----------------------------------------


def numbered_lines(tag: str, count: int) -> bytes:
    return b"".join(f"{tag} line {number:05d} {'x' * 40}\n".encode() for number in range(count))


def three_objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """Three objects under ``logs/``, and what each decodes to; the middle one is read only when the
    stream reaches it.

    The last object is over 64 KiB of plain text, so a mount settles only it before answering: the
    middle one is neither probed (a plain name) nor fetched until a reader gets there.
    """
    bodies = {"logs/a.log": numbered_lines("a", 50), "logs/b.log": numbered_lines("b", 50),
              "logs/c.log": numbered_lines("c", 2000)}
    put_all(s3, bucket, bodies)
    return {key: reference(s3, bucket, key) for key in bodies}


def break_object(kind: str, s3: Any, bucket: str, key: str, faults: list[Fault]) -> None:
    """Make ``key`` fail for good: deleted, corrupt (a gzip cut in half), or 500 on every GET."""
    from s3logfs.devtools.localserver import Fault as NewFault

    if kind == "missing":
        s3.delete_object(Bucket=bucket, Key=key)
    elif kind == "corrupt":
        body = gzip.compress(numbered_lines("broken", 400))
        s3.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2])
    else:
        faults.append(NewFault(count=10_000, status=500, key_contains=key))


# s3tail's workflow: ``s3logfs cat``, ``LogStream`` and the mount beside them ---------------------

CAT_LOGS: dict[str, bytes] = {
    "logs/2016-08-04-00-15-10-A": b"a1\na2\na3\n",
    "logs/2016-08-04-00-20-10-B.gz": gzip.compress(b"b1\nb2\n") + gzip.compress(b"b3 second member\n"),
    "logs/2016-08-04-00-25-10-C": b"c1\nc2 unterminated",
    "logs/2016-08-04-00-30-10-D.gz": gzip.compress(b"d1\n"),
}
"""Keys named as in s3tail's README: plain, multi-member gzip, an unterminated line, single-member gzip."""


def bookmark_line(result: subprocess.CompletedProcess) -> str:
    """The bookmark ``s3logfs cat`` prints on its last stderr line."""
    lines = result.stderr.decode().splitlines()
    assert lines[-1].startswith("Bookmark: "), lines
    return lines[-1].removeprefix("Bookmark: ")


# --records: the expected lines, built from json directly ----------------------------------------


def compact_line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def cloudtrail_lines(document: bytes) -> bytes:
    """What ``--records cloudtrail`` gives: each of ``json.loads(file)["Records"]``, re-serialized compactly."""
    return b"".join(compact_line(record) for record in json.loads(document)["Records"])


def concatenated_values(text: str) -> list[Any]:
    """Every top-level JSON value of ``text``, values back to back or separated by whitespace."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
    return values


def cwl_lines(text: str) -> bytes:
    """``ISO-timestamp message`` for each event of each DATA_MESSAGE envelope."""
    lines = []
    for envelope in concatenated_values(text):
        if envelope["messageType"] != "DATA_MESSAGE":
            continue
        for event in envelope["logEvents"]:
            when = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event['timestamp'] % 1000:03d}Z"
            lines.append(f"{stamp} {event['message']}\n".encode())
    return b"".join(lines)


def cloudtrail_document(count: int, start: int = 0) -> bytes:
    """A CloudTrail-shaped file: one line, ``{"Records":[...]}``, with non-ASCII and escapes."""
    events = [
        {
            "eventVersion": "1.08",
            "eventTime": f"2026-11-01T08:{(start + n) % 60:02d}:00Z",
            "eventName": "GetObject" if n % 2 else "PutObject",
            "userAgent": "caf\u00e9/1.0 \u65e5\u672c",
            "requestParameters": {"key": f"a/{start + n}\"quoted\"", "nested": [1, {"x": None}, "}{"]},
            "sourceIPAddress": "192.0.2.1",
        }
        for n in range(count)
    ]
    return json.dumps({"Records": events}, ensure_ascii=False).encode()


CONTROL_MESSAGE = (
    b'{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"",'
    b'"subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1432826855000,'
    b'"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}'
)


# keys named by time, for --since and --until -------------------------------------------------


def alb_now_key(when: datetime, serial: int) -> str:
    """An ALB key for the 5 minutes that end at ``when``, in the date folder of ``when``."""
    end = when.replace(second=0, microsecond=0)
    return (f"AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-1/{end:%Y/%m/%d}/{ACCOUNT}_elasticloadbalancing_"
            f"us-east-1_app.web.50dc6c495c0c9188_{end:%Y%m%dT%H%MZ}_10.0.0.1_{serial:08x}.log.gz")


def s3_now_key(when: datetime, serial: int) -> str:
    """An S3 server access log key named by the second of ``when``, in a flat prefix."""
    return f"logs/{when:%Y-%m-%d-%H-%M-%S}-{serial:016X}"


def seed_alb_history(server: LocalS3Server, bucket: str, days: int, now: datetime) -> list[str]:
    """An ALB prefix with one object a day for ``days`` days, and the last day dense (every 5 minutes)."""
    body = gzip.compress(b"alb line\n", mtime=0)
    keys = []
    base = f"AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-1/"
    stamps = [now - timedelta(days=day, hours=3) for day in range(days, 0, -1)]
    stamps += [now - timedelta(minutes=5 * step) for step in range(288, 0, -1)]
    for stamp in stamps:
        end = stamp.replace(second=0, microsecond=0)
        keys.append(f"{base}{end:%Y/%m/%d}/{ACCOUNT}_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_"
                    f"{end:%Y%m%dT%H%MZ}_10.0.0.1_{len(keys):08x}.log.gz")
    server.listing.seed(bucket, [body], [(key, 0, now.timestamp()) for key in keys])
    return keys
