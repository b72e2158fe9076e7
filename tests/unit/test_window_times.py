"""Time windows without a server: parsing T, the time of each AWS key layout, and the folders of a window."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from s3logfs.engine.window import (
    UTC,
    KeyTime,
    Window,
    date_folders,
    key_time,
    make_window,
    name_time,
    parse_time,
)
from s3logfs.errors import UsageError

NOW = datetime(2026, 12, 2, 3, 0, 0, tzinfo=UTC)


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", NOW - timedelta(seconds=90)),
    ("15m", NOW - timedelta(minutes=15)),
    ("2h", NOW - timedelta(hours=2)),
    ("3d", NOW - timedelta(days=3)),
    ("1w", NOW - timedelta(weeks=1)),
    ("1h30m", NOW - timedelta(hours=1, minutes=30)),
    ("1W2D", NOW - timedelta(days=9)),
    ("-2h", NOW - timedelta(hours=2)),  # "two hours ago", as people write it: the same age
    ("now", NOW),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T08:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ("2026-11-01T08:00:30Z", datetime(2026, 11, 1, 8, 0, 30, tzinfo=UTC)),
    ("2026-11-01T08:00+02:00", datetime(2026, 11, 1, 6, tzinfo=UTC)),
])
def test_times_parse(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterdayish", "2026-13-01", "2h ago", "", "--2h", "-now", "2026-11-01T25:00", "1.5h"])
def test_bad_times_are_one_line_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_time(text, NOW, "--since")
    assert "\n" not in str(raised.value) and "--since" in str(raised.value)


def test_since_later_than_until_is_refused() -> None:
    with pytest.raises(UsageError, match="later than --until"):
        make_window("1h", "2h", NOW)
    assert make_window(None, None, NOW) is None
    assert make_window("2h", None, NOW) == Window(NOW - timedelta(hours=2), None)


ALB = ("AWSLogs/123456789012/elasticloadbalancing/us-east-1/2026/11/21/"
       "123456789012_elasticloadbalancing_us-east-1_app.my-lb.50dc6c495c0c9188_20261121T2340Z_10.0.0.1_2et2e1mx.log.gz")


@pytest.mark.parametrize(("key", "start", "end"), [
    (ALB, utc(2026, 11, 21, 23, 35), utc(2026, 11, 21, 23, 40)),  # the 5 minutes that end at T2340Z
    ("AWSLogs/1/CloudTrail/eu-west-1/2026/11/21/1_CloudTrail_eu-west-1_20261121T0005Z_abcdEFGH12345678.json.gz",
     utc(2026, 11, 21, 0, 0), utc(2026, 11, 21, 0, 5)),
    ("logs/2026-11-21-05-40-12-ABCDEF0123456789", utc(2026, 11, 21, 5, 40, 12), utc(2026, 11, 21, 5, 40, 12)),
    ("logs/1/us-east-1/src/2026/11/21/2026-11-21-00-00-00-ABCDEF", utc(2026, 11, 21), utc(2026, 11, 22)),  # EventTime
    ("logs/1/us-east-1/src/2026/11/21/2026-11-21-07-10-00-ABCDEF", utc(2026, 11, 21, 7, 10), utc(2026, 11, 21, 7, 10)),
    ("cf/E2ABC.2026-11-21-05.a1b2c3d4.gz", utc(2026, 11, 21, 5), utc(2026, 11, 21, 6)),
    ("fh/2026/11/21/05/stream-1-2026-11-21-05-40-12-1a2b3c4d", utc(2026, 11, 21, 5, 40, 12), utc(2026, 11, 21, 5, 40, 12)),
    ("v/aws-account-id=1/aws-service=vpcflowlogs/aws-region=r/year=2026/month=11/day=21/hour=05/x.log.gz",
     utc(2026, 11, 21, 5), utc(2026, 11, 21, 6)),
    ("v/2026/11/21/readme.txt", utc(2026, 11, 21), utc(2026, 11, 22)),
    ("exportedlogs/task/stream/000000.gz", 1234.0, 1234.0),  # no time: LastModified
    ("logs/2026-13-21-05-40-12-ABC", 1234.0, 1234.0),  # not a date
])
def test_key_times(key: str, start: float, end: float) -> None:
    assert key_time(key, 1234.0) == KeyTime(start, end)


def test_stems_sort_by_time_and_seek_targets_sort_before() -> None:
    named = name_time(ALB)
    assert named is not None
    assert named.stem.endswith("_app.my-lb.50dc6c495c0c9188_")
    assert named.key_at(utc(2026, 11, 21, 23, 40)) < ALB < named.past_stem()
    assert named.key_at(utc(2026, 11, 21, 23, 41)) > ALB


def test_window_membership() -> None:
    window = Window(datetime(2026, 11, 21, 23, 40, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))
    assert not window.holds(KeyTime(utc(2026, 11, 21, 23, 35), utc(2026, 11, 21, 23, 40)))  # ends at since
    assert window.holds(KeyTime(utc(2026, 11, 21, 23, 40), utc(2026, 11, 21, 23, 45)))
    assert window.holds(KeyTime(utc(2026, 11, 21, 23, 40), utc(2026, 11, 21, 23, 40)))  # an instant at since
    assert not window.holds(KeyTime(utc(2026, 11, 22), utc(2026, 11, 22)))  # an instant at until


def test_the_cover_lists_whole_folders_inside_and_splits_the_edges() -> None:
    folders = date_folders(ALB)
    assert folders is not None and folders.root == "AWSLogs/123456789012/elasticloadbalancing/us-east-1/"
    cover = list(folders.layout.cover(utc(2024, 12, 31, 22), utc(2026, 3, 2, 1), 4))
    root = folders.root
    assert cover == [(f"{root}2024/12/31/", False), (f"{root}2025/", True), (f"{root}2026/01/", True),
                     (f"{root}2026/02/", True), (f"{root}2026/03/01/", True), (f"{root}2026/03/02/", False)]
    hive = date_folders("v/year=2026/month=11/day=21/hour=05/x.log.gz")
    assert hive is not None
    assert list(hive.layout.cover(utc(2026, 11, 21, 5, 30), utc(2026, 11, 21, 7), 4)) == [
        ("v/year=2026/month=11/day=21/hour=05/", False), ("v/year=2026/month=11/day=21/hour=06/", True)]
