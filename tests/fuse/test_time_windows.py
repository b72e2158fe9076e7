"""``--since`` and ``--until`` against the moto server: exact selection, listing costs, follow, bad input.

What each key's time means is written out here from AWS's documented key layouts and the README's
table ("Time windows"), independently of s3logfs: the 5 minutes that end at an ``YYYYMMDDTHHMMZ``
name, the second of a ``YYYY-MM-DD-hh-mm-ss`` name, the hour of a ``YYYY-MM-DD-HH`` name,
the day of an S3 ``EventTime`` partition, and ``LastModified`` for a key with no time.
"""

from __future__ import annotations

import gzip
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import (
    ACCOUNT,
    Mount,
    alb_now_key,
    daemon_pid,
    reference,
    run,
    s3_now_key,
    seed_alb_history,
    wait_for,
)

UTC = timezone.utc
HISTORY_START = datetime(2026, 6, 1, tzinfo=UTC)
HISTORY_END = datetime(2026, 11, 30, tzinfo=UTC)
SINCE = datetime(2026, 8, 14, 10, 0, tzinfo=UTC)
UNTIL = datetime(2026, 10, 3, 13, 30, tzinfo=UTC)
MIDNIGHTS = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 20, tzinfo=UTC))
"""A window whose ends are day boundaries, where a key's folder and its name can disagree."""
FIVE_MINUTES = timedelta(minutes=5)


@dataclass(frozen=True)
class LogObject:
    """A key, its body, and the time the key stands for: ``[start, end)``, or the instant ``start``."""

    key: str
    body: bytes
    start: datetime | None  # None: the key says no time, LastModified decides
    end: datetime | None


def interval_end(prefix: str, folder: str, name: Callable[[str], str], when: datetime,
                 folder_by_end: bool = False) -> LogObject:
    """An ``AWSLogs/`` object named by the end of its 5-minute interval, in the folder of its start
    (or of its end: the file for 23:55-00:00 then sits in the next day's folder)."""
    end = when.replace(minute=when.minute - when.minute % 5, second=0, microsecond=0) + FIVE_MINUTES
    start = end - FIVE_MINUTES
    key = f"{prefix}{(end if folder_by_end else start).strftime(folder)}{name(end.strftime('%Y%m%dT%H%MZ'))}"
    return LogObject(key, gzip.compress(f"{key} line\n".encode(), mtime=0), start, end)


def alb(when: datetime, rng: random.Random) -> LogObject:
    lb = rng.choice(["app.web.50dc6c495c0c9188", "app.api.1234abcd5678ef90"])
    return interval_end(f"alb/AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-1/", "%Y/%m/%d/",
                        lambda t: f"{ACCOUNT}_elasticloadbalancing_us-east-1_{lb}_{t}_10.0.0.{rng.randrange(3)}_"
                                  f"{rng.getrandbits(32):08x}.log.gz", when, folder_by_end=True)


def cloudtrail(when: datetime, rng: random.Random) -> LogObject:
    region = rng.choice(["eu-west-1", "us-east-1"])
    return interval_end(f"ct/AWSLogs/{ACCOUNT}/CloudTrail/{region}/", "%Y/%m/%d/",
                        lambda t: f"{ACCOUNT}_CloudTrail_{region}_{t}_{rng.getrandbits(64):016X}.json.gz", when)


def vpc(top: str, folder: str, hive: bool) -> Callable[[datetime, random.Random], LogObject]:
    base = (f"{top}AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region=us-east-1/" if hive
            else f"{top}AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/")

    def make(when: datetime, rng: random.Random) -> LogObject:
        return interval_end(base, folder, lambda t: f"{ACCOUNT}_vpcflowlogs_us-east-1_fl-1234abcd_{t}_"
                                                    f"{rng.getrandbits(32):08x}.log.gz", when)

    return make


def s3_simple(when: datetime, rng: random.Random) -> LogObject:
    when = when.replace(microsecond=0)
    key = f"s3/access-{when:%Y-%m-%d-%H-%M-%S}-{rng.getrandbits(64):016X}"
    return LogObject(key, f"{key} line\n".encode(), when, when)


def s3_event_time(when: datetime, rng: random.Random) -> LogObject:
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    key = f"s3p/{ACCOUNT}/us-east-1/source-bucket/{day:%Y/%m/%d}/{day:%Y-%m-%d-%H-%M-%S}-{rng.getrandbits(64):016X}"
    return LogObject(key, f"{key} line\n".encode(), day, day + timedelta(days=1))


def s3_delivery_time(when: datetime, rng: random.Random) -> LogObject:
    when = when.replace(microsecond=0)
    key = f"s3d/{ACCOUNT}/us-east-1/source-bucket/{when:%Y/%m/%d}/{when:%Y-%m-%d-%H-%M-%S}-{rng.getrandbits(64):016X}"
    return LogObject(key, f"{key} line\n".encode(), when, when)


def cloudfront(when: datetime, rng: random.Random) -> LogObject:
    hour = when.replace(minute=0, second=0, microsecond=0)
    key = f"cf/{rng.choice(['E2ABCDEF', 'E9XYZ123'])}.{hour:%Y-%m-%d-%H}.{rng.getrandbits(32):08x}.gz"
    return LogObject(key, gzip.compress(f"#Version: 1.0\n{key} line\n".encode(), mtime=0), hour,
                     hour + timedelta(hours=1))


def firehose(when: datetime, rng: random.Random) -> LogObject:
    when = when.replace(microsecond=0)
    key = f"fh/{when:%Y/%m/%d/%H}/stream-1-{when:%Y-%m-%d-%H-%M-%S}-{rng.getrandbits(64):016x}"
    return LogObject(key, gzip.compress(f"{key} line\n".encode(), mtime=0), when, when)


def undated(prefix: str) -> LogObject:
    """A key with no time in it (ALB's test file): LastModified decides."""
    key = f"{prefix}ELBAccessLogTestFile"
    return LogObject(key, b"Enable AccessLog for ELB: test\n", None, None)


LAYOUTS: dict[str, tuple[str, Callable[[datetime, random.Random], LogObject]]] = {
    "alb": ("alb/", alb),
    "cloudtrail": ("ct/", cloudtrail),
    "vpc-daily": ("vpc-daily/", vpc("vpc-daily/", "%Y/%m/%d/", hive=False)),
    "vpc-hourly": ("vpc-hourly/", vpc("vpc-hourly/", "%Y/%m/%d/%H/", hive=False)),
    "vpc-hive-daily": ("vpc-hive-daily/", vpc("vpc-hive-daily/", "year=%Y/month=%m/day=%d/", hive=True)),
    "vpc-hive-hourly": ("vpc-hive-hourly/", vpc("vpc-hive-hourly/", "year=%Y/month=%m/day=%d/hour=%H/", hive=True)),
    "s3-simple": ("s3/access-", s3_simple),
    "s3-partitioned-event-time": ("s3p/", s3_event_time),
    "s3-partitioned-delivery-time": ("s3d/", s3_delivery_time),
    "cloudfront": ("cf/", cloudfront),
    "firehose": ("fh/", firehose),
}


def moments(rng: random.Random) -> Iterator[datetime]:
    """Times over six months, and times right at and around both ends of the window."""
    span = (HISTORY_END - HISTORY_START).total_seconds()
    for _ in range(70):
        yield HISTORY_START + timedelta(seconds=rng.uniform(0, span))
    for edge in (SINCE, UNTIL, *MIDNIGHTS):
        for offset in (-3600, -301, -300, -299, -1, 0, 1, 299, 300, 301, 3599, 3600):
            yield edge + timedelta(seconds=offset)


def put_all(s3: Any, bucket: str, objects: list[LogObject]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda obj: s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.body), objects))


@pytest.fixture(scope="module")
def layouts_bucket(server: LocalS3Server) -> tuple[str, dict[str, list[LogObject]]]:
    """One bucket, one prefix per layout; each layout's objects (the key decides, so duplicates merge)."""
    s3 = server.client()
    name = f"test-windows-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    made: dict[str, list[LogObject]] = {}
    for number, (layout, (prefix, make)) in enumerate(LAYOUTS.items()):
        rng = random.Random(number)
        objects = {obj.key: obj for obj in (make(when, rng) for when in moments(rng))}
        if layout == "alb":
            extra = undated(f"alb/AWSLogs/{ACCOUNT}/")
            objects[extra.key] = extra
        made[layout] = sorted(objects.values(), key=lambda obj: obj.key)
    put_all(s3, name, [obj for objects in made.values() for obj in objects])
    return name, made


def selected(objects: list[LogObject], since: datetime | None, until: datetime | None,
             last_modified: Callable[[str], datetime]) -> list[str]:
    """The keys whose time falls in ``[since, until)``: by overlap for a range, by membership for an instant."""
    low = since or datetime.min.replace(tzinfo=UTC)
    high = until or datetime.max.replace(tzinfo=UTC)
    keys = []
    for obj in objects:
        start = obj.start or last_modified(obj.key)
        end = obj.end or start
        if (start < high and end > low) if end > start else (low <= start < high):
            keys.append(obj.key)
    return sorted(keys)


def window_arguments(since: datetime | None, until: datetime | None) -> list[str]:
    arguments = ["--poll-interval", "0"]
    if since is not None:
        arguments += ["--since", since.strftime("%Y-%m-%dT%H:%M:%SZ")]
    if until is not None:
        arguments += ["--until", until.isoformat()]
    return arguments


WINDOWS = {"both ends": (SINCE, UNTIL), "since only": (SINCE, None), "until only": (None, UNTIL),
           "midnights": MIDNIGHTS}
CASES = [(layout, "both ends") for layout in LAYOUTS] + [
    (layout, "midnights") for layout in ("alb", "vpc-daily", "vpc-hive-hourly", "s3-partitioned-event-time")] + [
    (layout, window) for layout in ("alb", "s3-simple", "cloudfront", "vpc-hive-hourly")
    for window in ("since only", "until only")
]


@pytest.mark.parametrize(("layout", "window"), CASES)
def test_windows_select_exactly_the_keys_whose_time_falls_in_them(
    server: LocalS3Server, layouts_bucket: tuple[str, dict[str, list[LogObject]]],
    mount_factory: Callable[..., Mount], layout: str, window: str,
) -> None:
    bucket, made = layouts_bucket
    s3 = server.client()
    objects = made[layout]
    since, until = WINDOWS[window]
    prefix = LAYOUTS[layout][0]

    def last_modified(key: str) -> datetime:
        return s3.head_object(Bucket=bucket, Key=key)["LastModified"]

    expected_keys = selected(objects, since, until, last_modified)
    assert 0 < len(expected_keys) < len(objects)  # the window cuts the history
    mount = mount_factory(bucket, prefix, *window_arguments(since, until))
    stream = (mount.path / "stream").read_bytes()
    expected = b"".join(reference(s3, bucket, key) for key in expected_keys)
    assert stream == expected, f"{layout}: {len(stream)} bytes, expected {len(expected)}"
    assert os.stat(mount.path / "stream").st_size == len(expected)


def lists_to_mount_and_read(server: LocalS3Server, mount_factory: Callable[..., Mount], bucket: str,
                            *arguments: str) -> tuple[int, bytes]:
    before = len(server.counters.of_kind("list"))
    mount = mount_factory(bucket, "", *arguments)
    stream = (mount.path / "stream").read_bytes()
    return len(server.counters.of_kind("list")) - before, stream


@pytest.mark.slow  # four mounts of two years of keys
def test_only_the_window_is_listed_whatever_the_history(
    server: LocalS3Server, s3: Any, mount_factory: Callable[..., Mount]
) -> None:
    now = datetime.now(UTC)
    counts = []
    for days in (30, 730):
        bucket = f"test-history-{days}-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        keys = seed_alb_history(server, bucket, days, now)
        listed, stream = lists_to_mount_and_read(server, mount_factory, bucket, "--since", "2h",
                                                 "--poll-interval", "0")
        assert 20 <= stream.count(b"alb line") <= 26, stream.count(b"alb line")  # 2 h of 5-minute files
        counts.append(listed)
        _, everything = lists_to_mount_and_read(server, mount_factory, bucket, "--poll-interval", "0")
        assert everything.count(b"alb line") == len(keys)
    assert counts[0] == counts[1], f"LIST requests for 30 and 730 days of history: {counts}"
    assert counts[0] <= 6, counts


FLAT_KEYS = 50_000


@pytest.mark.slow  # 50,000 keys
def test_a_flat_prefix_is_listed_from_the_window_start(
    server: LocalS3Server, s3: Any, mount_factory: Callable[..., Mount]
) -> None:
    bucket = f"test-flat-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    stamps = [start + timedelta(seconds=37 * number) for number in range(FLAT_KEYS)]
    keys = [f"logs/{stamp:%Y-%m-%d-%H-%M-%S}-{number:016X}" for number, stamp in enumerate(stamps)]
    bodies = [f"line {number}\n".encode() for number in range(10)]
    server.listing.seed(bucket, bodies, [(key, number % 10, 1.7e9) for number, key in enumerate(keys)])
    since = stamps[FLAT_KEYS - 1000]
    listed, stream = lists_to_mount_and_read(server, mount_factory, bucket, "--since", since.isoformat(),
                                             "--poll-interval", "0")
    assert stream == b"".join(bodies[number % 10] for number in range(FLAT_KEYS - 1000, FLAT_KEYS))
    assert listed < 5, f"{listed} LIST pages for the last 1,000 of {FLAT_KEYS} keys"
    until = stamps[FLAT_KEYS - 500]  # and it stops past the window's end
    listed, stream = lists_to_mount_and_read(server, mount_factory, bucket, "--since", since.isoformat(),
                                             "--until", until.isoformat(), "--poll-interval", "0")
    assert stream == b"".join(bodies[number % 10] for number in range(FLAT_KEYS - 1000, FLAT_KEYS - 500))
    assert listed < 5, listed


POLL = 1
SLACK = 2


@pytest.mark.parametrize("name_key", [alb_now_key, s3_now_key], ids=["date-folders", "flat"])
def test_tail_f_under_since_shows_a_new_object(
    s3: Any, bucket: str, mount_factory: Callable[..., Mount], tmp_path: Path, name_key: Callable[..., str]
) -> None:
    now = datetime.now(UTC)
    old = [name_key(now - timedelta(days=days), days) for days in (40, 3, 1)]
    recent = [name_key(now - timedelta(minutes=minutes), 100 + minutes) for minutes in (30, 10)]
    for key in old + recent:
        s3.put_object(Bucket=bucket, Key=key, Body=f"{key}\n".encode())
    mount = mount_factory(bucket, "", "--since", "1h", "--poll-interval", str(POLL))
    assert (mount.path / "stream").read_bytes() == b"".join(f"{key}\n".encode() for key in recent)
    output = tmp_path / "tail.out"
    with open(output, "wb") as sink:
        tail = subprocess.Popen(["tail", "-f", "-s", "0.2", str(mount.path / "stream")], stdout=sink,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: output.read_bytes().count(b"\n") == len(recent), timeout=30)
            new_key = name_key(datetime.now(UTC) + timedelta(seconds=1), 999)
            s3.put_object(Bucket=bucket, Key=new_key, Body=f"{new_key}\n".encode())
            # new objects appear within POLL (README, "Semantics and limits"), SLACK allows for tail's own
            # polling; the wait is longer still, so that a busy machine does not fail it
            wait_for(lambda: f"{new_key}\n".encode() in output.read_bytes(), timeout=POLL + SLACK + 10)
        finally:
            tail.terminate()
            tail.wait(timeout=10)
    assert output.read_bytes() == b"".join(f"{key}\n".encode() for key in [*recent, new_key])


def lists_of(server: LocalS3Server, bucket: str) -> int:
    """The LIST requests of ``bucket`` the server has answered."""
    return sum(1 for request in server.counters.of_kind("list") if request.bucket == bucket)


def test_nothing_is_polled_once_until_has_passed(
    server: LocalS3Server, s3: Any, bucket: str, mount_factory: Callable[..., Mount]
) -> None:
    now = datetime.now(UTC)
    for days in (3, 2):
        key = s3_now_key(now - timedelta(days=days), days)
        s3.put_object(Bucket=bucket, Key=key, Body=f"{key}\n".encode())
    mount = mount_factory(bucket, "", "--until", "1d", "--poll-interval", "0.2")
    assert (mount.path / "stream").read_bytes().count(b"\n") == 2
    listed = lists_of(server, bucket)
    # The positive control: a mount of another bucket with the same --poll-interval and no --until
    # lists ten times; the first mount's poller had as long to list, and must not have.
    control = f"{bucket}-control"
    s3.create_bucket(Bucket=control)
    s3.put_object(Bucket=control, Key=s3_now_key(now, 1), Body=b"control\n")
    mount_factory(control, "", "--poll-interval", "0.2")
    polled = lists_of(server, control)
    wait_for(lambda: lists_of(server, control) >= polled + 10, timeout=60)
    assert lists_of(server, bucket) == listed


PROBED_PREFIX_KEYS = 1_500


def trailer_probes(server: LocalS3Server) -> list[str]:
    return [request.key for request in server.iter_requests() if request.kind == "get" and request.range == "bytes=-4"]


@pytest.mark.slow  # 1,500 probes over two mounts
def test_trailer_probes_cover_the_tail_once_and_are_kept_for_the_next_mount(
    server: LocalS3Server, s3: Any, mount_factory: Callable[..., Mount]
) -> None:
    """On a large gzip prefix a mount probes the tail and PROBE_TAIL_OBJECTS more; the next mount
    probes only what is still unknown (and the tail, which it sizes again)."""
    from s3logfs.engine.stream import PROBE_TAIL_OBJECTS, TAIL_EXACT_OBJECTS

    bucket = f"test-probes-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    content = b"a gzip line\n" * 20
    keys = [f"alb/{number:06d}.log.gz" for number in range(PROBED_PREFIX_KEYS)]
    server.listing.seed(bucket, [gzip.compress(content, mtime=0)], [(key, 0, 1.7e9) for key in keys])
    budget = PROBE_TAIL_OBJECTS + TAIL_EXACT_OBJECTS
    before = len(trailer_probes(server))
    mount = mount_factory(bucket, "alb/", "--poll-interval", "0")
    stream = mount.path / "stream"
    wait_for(lambda: os.stat(stream).st_size >= budget * len(content), timeout=60)
    assert os.stat(stream).st_size == budget * len(content)  # the others count when read
    run(["fusermount", "-u", str(mount.path)])
    wait_for(lambda: daemon_pid(mount.path) is None, timeout=15)  # its index is saved on the way out
    # The positive control: the daemon has exited and the server has answered all it was asked, so
    # every probe this mount made is in the request log, one beyond the budget included.
    wait_for(lambda: server.counters.in_flight == 0, timeout=15)
    first = trailer_probes(server)[before:]
    assert sorted(first) == keys[-budget:]  # the last objects, each once
    before = len(trailer_probes(server))
    again = mount_factory(bucket, "alb/", "--poll-interval", "0", cache_dir=mount.cache_dir)
    wait_for(lambda: os.stat(again.path / "stream").st_size == len(keys) * len(content), timeout=60)
    second = trailer_probes(server)[before:]
    assert sorted(second) == keys[: len(keys) - budget] + keys[-TAIL_EXACT_OBJECTS:]
