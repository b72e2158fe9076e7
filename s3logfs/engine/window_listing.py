"""Listing only the part of a prefix that can hold a time window (README, "Time windows").

A full listing costs a request per 1,000 keys of history. Under a window the listing
costs what the window holds, plus a few requests per folder layout and per name stem,
whatever the history, in the way of Athena's partition projection:

* **Date folders.** The scan meets a key below ``ROOT/YYYY/MM/DD/`` (or Hive's
  ``ROOT/year=YYYY/...``). From that one key it knows how ROOT writes its dates, and it
  builds the folders of the window (:meth:`~s3logfs.engine.window.DateLayout.cover`) instead
  of listing the folders: a day or hour inside the window is listed whole, one that
  straddles an end is scanned by the names inside it, and nothing else below ROOT is
  asked for. Then the scan jumps past ROOT's year folders with ``StartAfter``. The first
  key below ROOT is its oldest, so an open ``--since`` starts there, not at year 1970.
* **Timestamped names** (a flat prefix of S3 access logs, CloudFront's, or the keys of a
  day folder). Keys of one *stem* (the key up to its timestamp) sort by their time. A key
  older than the window makes the scan jump, with ``StartAfter``, to the stem's first
  key that can be inside it; a key newer than the window makes it jump past the stem.
* **Other keys** have no time but ``LastModified``, which only their listing gives: they
  are listed, and kept by it.

Folder dates and name times can disagree near a boundary (the file for 23:55-00:00 may
sit in the next day's folder), so folders are chosen ``FOLDER_SLACK`` wider than the
window, and every key is then kept or dropped by its own time.

Polls reuse the scan with a narrow window and a cursor per stem (the greatest key the
mount holds): only the folders of the last hour are listed, from where the mount is. When
the last full scan found date folders only, a poll builds their folders directly, without
the first page of the prefix; the next full scan finds new roots and stems.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

from .s3 import ObjectInfo, S3Client
from .window import DateLayout, Window, date_folders, key_time, name_time

log = logging.getLogger(__name__)

FOLDER_SLACK = 15 * 60
"""Seconds by which a folder's date and the time in a key's name may disagree."""
DEEPEST_FOLDER = 4
"""Folders are built down to hours; an hour that straddles the window is scanned by name."""
_SEEK_MARGIN = 60
"""Seconds of extra keys a seek keeps before the window: a name time is rounded down to its unit."""


@dataclass
class ScanStats:
    """What one scan cost and found, for the log and the tests."""

    roots: int = 0
    folders: int = 0
    seeks: int = 0


class WindowLister:
    """Lists the objects of one prefix whose key time falls in a window."""

    def __init__(self, client: S3Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._cursors: dict[str, str] = {}
        self._roots: list[DateLayout] | None = None
        """The date roots of the last full scan, when it found nothing outside them."""
        self._lock = threading.Lock()

    def note_known(self, keys: Iterable[str]) -> None:
        """Remember the greatest key of each stem the mount holds: polls list on from there."""
        with self._lock:
            for key in keys:
                named = name_time(key)
                if named is not None and key > self._cursors.get(named.stem, ""):
                    self._cursors[named.stem] = key

    def pages(self, window: Window, now: float, resume: bool = False) -> Generator[list[ObjectInfo], None, None]:
        """Pages of the objects whose key time overlaps ``window``, in key order.

        ``now`` bounds an open window's folders; with ``resume``, keys of a stem at or before
        the greatest known key of that stem are neither listed nor returned.
        """
        with self._lock:
            cursors = dict(self._cursors) if resume else {}
            roots = self._roots if resume else None
        scan = _Scan(self.client, self.prefix, window, now, cursors)
        yield from (scan.run_roots(roots) if roots is not None else scan.run())
        log.debug("window scan of %s: %s", self.prefix, scan.stats)
        if roots is None:
            with self._lock:
                self._roots = scan.layouts if scan.layouts and not scan.outside_roots else None


class _Scan:
    """One windowed listing; see the module docstring."""

    def __init__(self, client: S3Client, prefix: str, window: Window, now: float, cursors: dict[str, str]) -> None:
        self.client = client
        self.prefix = prefix
        self.window = window
        self.cursors = cursors
        self.folder_end = min(window.end, now) + FOLDER_SLACK
        self.stats = ScanStats()
        self.layouts: list[DateLayout] = []
        self.outside_roots = False
        """Whether the prefix holds keys outside date folders: a poll must then scan it whole."""

    def run(self) -> Iterator[list[ObjectInfo]]:
        yield from self._scan(self.prefix, find_roots=True)

    def run_roots(self, layouts: list[DateLayout]) -> Iterator[list[ObjectInfo]]:
        """The window's folders of known date roots only (a poll's window has a start)."""
        for layout in layouts:
            yield from self._cover(layout, self.window.start - FOLDER_SLACK)

    def _scan(self, prefix: str, find_roots: bool) -> Iterator[list[ObjectInfo]]:
        """List ``prefix`` in key order, jumping over what cannot be in the window."""
        start_after = None if find_roots else self._resume_point(prefix)
        while True:
            page = self.client.list_page(prefix, start_after=start_after)
            kept: list[ObjectInfo] = []
            jump: str | None = None
            for info in page.objects:
                folders = date_folders(info.key) if find_roots else None
                if folders is not None:
                    if kept:
                        yield kept
                    kept = []
                    self.layouts.append(folders.layout)
                    yield from self._cover(folders.layout, folders.period.start)  # the root's first key: its oldest
                    jump = folders.layout.past_years()
                    break
                self.outside_roots = self.outside_roots or find_roots
                jump = self._consider(info, kept)
                if jump is not None:
                    self.stats.seeks += 1
                    break
            if kept:
                yield kept
            if jump is None:
                if not page.truncated or not page.objects:
                    return
                jump = page.objects[-1].key
            start_after = jump

    def _resume_point(self, folder: str) -> str | None:
        """Where a poll starts in a date folder: the least cursor of the stems in it, if any.

        A new stem that sorts before it (a new load balancer) waits for the next full poll.
        """
        known = [cursor for stem, cursor in self.cursors.items() if stem.startswith(folder)]
        return min(known) if known else None

    def _consider(self, info: ObjectInfo, kept: list[ObjectInfo]) -> str | None:
        """Keep ``info`` if it is in the window; or where to jump, when its stem says so."""
        span = key_time(info.key, info.last_modified)
        named = name_time(info.key)
        if named is None or span != named.span:  # no name time, or the folder's period decides: no seeking
            if self.window.holds(span):
                kept.append(info)
            return None
        known = self.cursors.get(named.stem)
        before = span.end <= self.window.start if span.end > span.start else span.start < self.window.start
        if before or (known is not None and info.key <= known):
            target = known or ""
            if math.isfinite(self.window.start):
                earliest = self.window.start - named.format.before - named.format.after - _SEEK_MARGIN
                target = max(target, named.key_at(earliest))
            return target if target > info.key else None
        if span.start >= self.window.end:
            return named.past_stem()
        if self.window.holds(span):
            kept.append(info)
        return None

    def _cover(self, layout: DateLayout, earliest: float) -> Iterator[list[ObjectInfo]]:
        """The window's folders below a date root from ``earliest`` on, built rather than listed."""
        self.stats.roots += 1
        start = max(self.window.start - FOLDER_SLACK, earliest)
        for folder, whole in layout.cover(start, self.folder_end, DEEPEST_FOLDER):
            target = _narrow(folder, self.prefix)
            if target is None:
                continue
            self.stats.folders += 1
            if not whole or self.cursors:  # a poll seeks to its cursors even in a folder it lists whole
                yield from self._scan(target, find_roots=False)
                continue
            for page in self.client.list_pages(target):
                yield [info for info in page if self.window.holds(key_time(info.key, info.last_modified))]


def _narrow(folder: str, prefix: str) -> str | None:
    """What to list of ``folder`` under the mount's ``prefix``: the deeper of the two, or None if apart."""
    if folder.startswith(prefix):
        return folder
    if prefix.startswith(folder):
        return prefix
    return None


def list_window(client: S3Client, prefix: str, window: Window | None) -> Iterator[ObjectInfo]:
    """Every object under ``prefix`` in key order; under a window, only those whose key time falls in it.

    For commands that list once (``cat``, ``cache lookup``); a mount keeps a
    :class:`WindowLister` to poll with.
    """
    if window is None:
        yield from client.list_objects(prefix)
        return
    for page in WindowLister(client, prefix).pages(window, time.time()):
        yield from page
