"""Checks of the numbers a user gives (command line or config file), each failing as one line.

A value outside its range is refused rather than clamped: ``--prefetch -3`` or
``--poll-interval nan`` is a typo, and running with some other value would hide it. The
ranges are wide; their ends only keep out what cannot work (a zero timeout, a prefetch of
a million threads, a size past what any disk holds).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UsageError

MAX_SECONDS = 7 * 86400.0
"""The longest interval or timeout taken: a week."""
MAX_CACHE_HOURS = 10 * 365 * 24.0
MAX_PREFETCH = 256
"""Each object read ahead is a thread and a connection."""
MIN_CACHE_SIZE = 1 << 20
MAX_CACHE_SIZE = 1 << 60
MIN_TIMEOUT = 0.1
MIN_POLL_INTERVAL = 0.1


def _option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _number(name: str, value: Any, kind: type) -> float:
    try:
        number = float(value) if kind is float else int(value)
    except (TypeError, ValueError, OverflowError) as error:
        what = "a number" if kind is float else "a whole number"
        raise UsageError(f"bad value for {_option(name)}: {value!r} is not {what}") from error
    if not math.isfinite(number):
        raise UsageError(f"bad value for {_option(name)}: {value!r} is not a finite number")
    return number


def seconds(name: str, value: Any, minimum: float, off: bool = False, maximum: float = MAX_SECONDS) -> float:
    """A duration in seconds from ``minimum`` to ``maximum``; with ``off``, 0 too (the feature is off)."""
    number = _number(name, value, float)
    if (off and number == 0) or minimum <= number <= maximum:
        return number
    zero = ", or 0 for off" if off else ""
    raise UsageError(f"bad value for {_option(name)}: {value!r} (expected {minimum:g} to {maximum:g} seconds{zero})")


def hours(name: str, value: Any) -> float:
    """A number of hours, 0 included, up to ten years."""
    number = _number(name, value, float)
    if 0 <= number <= MAX_CACHE_HOURS:
        return number
    raise UsageError(f"bad value for {_option(name)}: {value!r} (expected 0 to {MAX_CACHE_HOURS:g} hours)")


def count(name: str, value: Any, minimum: int, maximum: int) -> int:
    """A whole number from ``minimum`` to ``maximum``."""
    if isinstance(value, float) and not value.is_integer():
        raise UsageError(f"bad value for {_option(name)}: {value!r} is not a whole number")
    number = int(_number(name, value, int))
    if minimum <= number <= maximum:
        return number
    raise UsageError(f"bad value for {_option(name)}: {value!r} (expected {minimum} to {maximum})")


def size(name: str, value: int) -> int:
    """A cache size in bytes, from 1 MiB to an exbibyte."""
    if MIN_CACHE_SIZE <= value <= MAX_CACHE_SIZE:
        return value
    if value < MIN_CACHE_SIZE:
        raise UsageError(f"bad value for {_option(name)}: {value} bytes (expected 1M or more, such as 500M or 2G)")
    raise UsageError(f"bad value for {_option(name)}: {value} bytes (expected at most 1E, an exbibyte; "
                     "such as 500M or 2G)")
