"""Time windows (``--since T``, ``--until T``): what T means, and the time each log key stands for.

README, "Time windows". A window is a half-open range of instants ``[since, until)``; either end
may be open. AWS writes a UTC time into almost every log key, in date folders and in the
object's name, and a window selects the objects whose *key time* overlaps it. The key time
is a range too, because each form of time means something different:

* a name ``YYYYMMDDTHHMMZ`` (ALB, NLB, ELB, CloudTrail, VPC Flow Logs, WAF...): the 5 minutes
  that end at that time (``T2340Z`` is 23:35 to 23:40);
* a name ``YYYY-MM-DD-hh-mm-ss`` (S3 server access logs, Firehose): that second, an instant
  (a delivery or arrival time);
* a name ``YYYY-MM-DD-HH`` (CloudFront): that hour;
* date folders ``YYYY/MM/DD[/HH]`` or Hive's ``year=YYYY/month=MM/...``, for a name without a
  time: the day (or hour) of the deepest folder;
* none of these (CloudWatch Logs exports): ``LastModified``, an instant.

A ``YYYY-MM-DD-hh-mm-ss`` name at exactly the start of its folder's period stands for the
whole period: S3 server access logs partitioned by ``EventTime`` write
``YYYY-MM-DD-00-00-00`` names into the day folder of their events.

This module parses, and builds the date folders of a range (:meth:`DateLayout.cover`); the
listing that uses them is :mod:`s3logfs.engine.window_listing`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import UsageError

UTC = timezone.utc
_AGE = re.compile(r"(?:\d+[smhdw])+", re.IGNORECASE)
_AGE_PART = re.compile(r"(\d+)([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TIME_HINT = "try 90s, 15m, 2h, 3d, 1w, 1h30m, 2026-11-01, 2026-11-01T08:00, 2026-11-01T08:00+02:00 or now"


def parse_time(text: str, now: datetime, option: str = "time") -> datetime:
    """An instant from ``T``: a relative age before ``now``, an ISO 8601 date or date-time, or ``now``.

    ISO times without an offset are UTC. Raises :class:`UsageError` with a one-line message.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    if value.startswith("-") and _AGE.fullmatch(value[1:]):  # "-5m", as in "five minutes ago": the same age
        value = value[1:]
    if _AGE.fullmatch(value):
        seconds = sum(int(count) * _UNIT_SECONDS[unit.lower()] for count, unit in _AGE_PART.findall(value))
        return now - timedelta(seconds=seconds)
    if not re.match(r"\d{4}-?\d{2}-?\d{2}", value):
        raise UsageError(f"bad {option} {text!r}: {_TIME_HINT}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise UsageError(f"bad {option} {text!r} ({error}): {_TIME_HINT}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@dataclass(frozen=True)
class Window:
    """The instants ``[since, until)``; None is an open end. Seconds since the epoch are cached."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise UsageError(f"--since {self.since.isoformat()} is later than --until {self.until.isoformat()}")

    @property
    def start(self) -> float:
        return self.since.timestamp() if self.since is not None else float("-inf")

    @property
    def end(self) -> float:
        return self.until.timestamp() if self.until is not None else float("inf")

    def holds(self, span: KeyTime) -> bool:
        """Whether a key time overlaps the window: a range by overlap, an instant by membership."""
        if span.end > span.start:
            return span.start < self.end and span.end > self.start
        return self.start <= span.start < self.end

    def describe(self) -> str:
        since = self.since.isoformat() if self.since is not None else "the start"
        until = self.until.isoformat() if self.until is not None else "now on"
        return f"from {since} to {until}"


def make_window(since: str | None, until: str | None, now: datetime | None = None) -> Window | None:
    """The window of ``--since``/``--until`` texts, or None when neither is given."""
    if since is None and until is None:
        return None
    now = now or datetime.now(UTC)
    return Window(
        parse_time(since, now, "--since") if since is not None else None,
        parse_time(until, now, "--until") if until is not None else None,
    )


@dataclass(frozen=True)
class KeyTime:
    """The range ``[start, end)`` a key stands for, in seconds; ``end == start`` for an instant."""

    start: float
    end: float


# ----------------------------------------------------------------------------- times in names


@dataclass(frozen=True)
class NameFormat:
    """One form of timestamp in object names."""

    kind: str
    strftime: str
    before: int
    """Seconds the key time starts before the name's time (an interval that ends there)."""
    after: int
    """Seconds the key time lasts after the name's time; 0 with ``before`` 0 is an instant."""


INTERVAL_END = NameFormat("interval-end", "%Y%m%dT%H%MZ", 300, 0)
SECOND = NameFormat("second", "%Y-%m-%d-%H-%M-%S", 0, 0)
HOUR = NameFormat("hour", "%Y-%m-%d-%H", 0, 3600)
_NAME_TIME = re.compile(
    r"(?<!\d)(?:(?P<z>\d{8}T\d{4}Z)|(?P<s>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})(?!\d)|(?P<h>\d{4}-\d{2}-\d{2}-\d{2})(?!-?\d))"
)


@dataclass(frozen=True)
class NameTime:
    """A timestamp found in a key's last component."""

    stem: str
    """The key up to the timestamp: keys of one stem sort by their time."""
    format: NameFormat
    moment: float

    @property
    def span(self) -> KeyTime:
        return KeyTime(self.moment - self.format.before, self.moment + self.format.after)

    def key_at(self, moment: float) -> str:
        """A key of this stem that sorts before every key of the stem named at ``moment`` or later."""
        return self.stem + datetime.fromtimestamp(moment, UTC).strftime(self.format.strftime)

    def past_stem(self) -> str:
        """A ``StartAfter`` that skips every key of this stem (each continues with a digit)."""
        return self.stem + ":"


def name_time(key: str) -> NameTime | None:
    """The first valid timestamp in the key's last component, or None."""
    name_start = key.rfind("/") + 1
    for match in _NAME_TIME.finditer(key, name_start):
        moment, found = _match_moment(match)
        if moment is not None:
            return NameTime(key[: match.start()], found, moment)
    return None


def _match_moment(match: re.Match[str]) -> tuple[float | None, NameFormat]:
    text = match.group(0)
    try:
        if match.group("z"):
            parts = (text[0:4], text[4:6], text[6:8], text[9:11], text[11:13], "0")
            return _epoch(*parts), INTERVAL_END
        if match.group("s"):
            return _epoch(*text.split("-")), SECOND
        return _epoch(*text.split("-"), "0", "0"), HOUR
    except ValueError:
        return None, SECOND


def _epoch(*fields: str) -> float:
    """Seconds since the epoch of UTC ``year, month, day, hour, minute, second``; ValueError if invalid."""
    year, month, day, hour, minute, second = (int(field) for field in fields)
    datetime(year, month, day, hour, minute, second)  # validates: month 13 or hour 24 raise ValueError
    return float(calendar.timegm((year, month, day, hour, minute, second)))


# ----------------------------------------------------------------------------- date folders

LEVELS = ("year", "month", "day", "hour", "minute")
_HIVE_LEVELS = 4
"""Hive-style folders go down to ``hour=``; plain folders go one deeper (WAF's ``HH/mm/``)."""
_YEARS = range(1990, 2200)


@dataclass(frozen=True)
class DateFolders:
    """A run of date folders in a key: ``ROOT/YYYY/MM/DD[/HH[/mm]]/`` or ``ROOT/year=YYYY/month=MM/...``."""

    root: str
    """Everything before the year folder (empty, or ending in ``/``)."""
    hive: bool
    widths: tuple[int, ...]
    values: tuple[int, ...]

    @property
    def period(self) -> KeyTime:
        return period_of(self.values)

    @property
    def layout(self) -> DateLayout:
        return DateLayout(self.root, self.hive, self.widths)


def date_folders(key: str) -> DateFolders | None:
    """The first run of at least year, month and day folders in ``key``'s folders, or None."""
    parts = key.split("/")[:-1]
    for index, part in enumerate(parts):
        hive = part.startswith("year=")
        if _folder_value(part, 0, hive) is None:
            continue
        values: list[int] = []
        widths: list[int] = []
        for level, folder in enumerate(parts[index: index + (_HIVE_LEVELS if hive else len(LEVELS))]):
            value = _folder_value(folder, level, hive)
            if value is None or not _valid(values + [value]):
                break
            values.append(value)
            widths.append(len(folder) - (len(LEVELS[level]) + 1 if hive else 0))
        if len(values) >= 3:
            root = "/".join(parts[:index]) + "/" if index else ""
            return DateFolders(root, hive, tuple(widths), tuple(values))
    return None


def _folder_value(folder: str, level: int, hive: bool) -> int | None:
    label = f"{LEVELS[level]}=" if hive else ""
    digits = folder[len(label):] if folder.startswith(label) else ""
    if not digits.isdigit() or not (len(digits) == 4 if level == 0 else len(digits) <= 2) or not digits.isascii():
        return None
    value = int(digits)
    return value if level or value in _YEARS else None


def _valid(values: list[int]) -> bool:
    try:
        period_of(tuple(values))
    except ValueError:
        return False
    return True


def period_of(values: tuple[int, ...]) -> KeyTime:
    """The range of a date folder: ``(2026,)`` is the year 2026, ``(2026, 11, 2, 5)`` an hour."""
    fields = list(values) + [1] * (3 - min(3, len(values))) + [0] * (5 - max(3, len(values)))
    year, month, day, hour, minute = fields[:5]  # a folder goes down to the minute at most
    start = datetime(year, month, day, hour, minute, tzinfo=UTC)
    if len(values) == 1:
        end = start.replace(year=start.year + 1)
    elif len(values) == 2:
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        end = start + (timedelta(days=1), timedelta(hours=1), timedelta(minutes=1))[len(values) - 3]
    return KeyTime(start.timestamp(), end.timestamp())


@dataclass(frozen=True)
class DateLayout:
    """How one folder writes its date folders: enough to build the folder of any date (projection)."""

    root: str
    hive: bool
    widths: tuple[int, ...]

    def folder(self, values: tuple[int, ...]) -> str:
        """The folder of a date: ``ROOT/2026/11/02/`` for ``(2026, 11, 2)``."""
        names = []
        for level, value in enumerate(values):
            label = f"{LEVELS[level]}=" if self.hive else ""
            names.append(f"{label}{value:0{self.widths[level]}d}/")
        return self.root + "".join(names)

    def past_years(self) -> str:
        """A ``StartAfter`` that skips every year folder of this root."""
        return self.root + ("year=" if self.hive else "") + ":"

    def cover(self, start: float, end: float, deepest: int) -> Iterator[tuple[str, bool]]:
        """The folders that together hold ``[start, end)``, widest first: ``(folder, whole)``.

        A folder entirely inside the range is listed whole; one that straddles an end is
        split into its children down to ``deepest`` levels (capped at the layout's depth),
        and the straddling folders at that depth are yielded with ``whole`` False. Years to
        hours cost at most a few dozen folders whatever the range, and none outside it.
        """
        depth = min(deepest, len(self.widths))
        first = datetime.fromtimestamp(max(start, 0.0), UTC).year
        last = datetime.fromtimestamp(min(end, 7258118400.0) - 1e-3, UTC).year  # 2200-01-01
        for year in range(first, last + 1):
            yield from self._cover((year,), start, end, depth)

    def _cover(self, values: tuple[int, ...], start: float, end: float, depth: int) -> Iterator[tuple[str, bool]]:
        period = period_of(values)
        if period.end <= start or period.start >= end:
            return
        whole = period.start >= start and period.end <= end
        if whole or len(values) == depth:
            yield self.folder(values), whole
            return
        for child in _children(values):
            yield from self._cover(values + (child,), start, end, depth)


def _children(values: tuple[int, ...]) -> range:
    level = len(values)
    if level == 1:
        return range(1, 13)
    if level == 2:
        return range(1, calendar.monthrange(values[0], values[1])[1] + 1)
    return range(24 if level == 3 else 60)


# ----------------------------------------------------------------------------- a key's time


def key_time(key: str, last_modified: float) -> KeyTime:
    """The time ``key`` stands for (see the module docstring); ``LastModified`` when it says none."""
    named = name_time(key)
    folders = date_folders(key)
    if named is not None:
        if folders is not None and named.format is SECOND and named.moment == folders.period.start:
            return folders.period
        return named.span
    if folders is not None:
        return folders.period
    return KeyTime(last_modified, last_modified)
