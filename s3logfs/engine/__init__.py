"""The engine: every layer below the front ends, wired for one bucket prefix.

Data flows one way: S3 (:mod:`.s3`) to the disk cache (:mod:`.cache`, filled by the
:mod:`.fetcher` through the :mod:`.codecs` and :mod:`.records`) to the :mod:`.catalog` and
the :mod:`.index` to the :mod:`.stream` reader; :mod:`.bookmarks` and the :mod:`.cursor`
protocol sit on top. The front ends (the mount in :mod:`s3logfs.fs`, ``s3logfs cat`` and
:class:`s3logfs.LogStream`) build the same engine with :func:`build` from one
:class:`SourceOptions`. Nothing here imports a front end or the FUSE binding.

Importing this package, or one light module of it (:mod:`.cache`, :mod:`.bookmarks`,
:mod:`.records`, :mod:`.options`), does not import the layers: :func:`build` does, and so does
the first use of a name such as ``StreamCursor`` (:func:`__getattr__`). The S3 layer imports
botocore, which the commands that never reach S3 (``--version``, ``--help``, ``bookmarks``)
would otherwise load on every start.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import S3LogFSError
from .options import SourceOptions
from .records import cache_subdir

if TYPE_CHECKING:
    from .bookmarks import StreamBookmarks
    from .cache import DiskCache
    from .catalog import Catalog
    from .cursor import StreamCursor
    from .fetcher import ObjectFetcher
    from .s3 import S3Client
    from .stats import Stats
    from .stream import StreamReader

__all__ = ["Engine", "SourceOptions", "StreamCursor", "build", "cache_root", "dir_prefix"]

_LAZY = {
    "BookmarkStore": "bookmarks", "StreamBookmarks": "bookmarks", "DiskCache": "cache", "check_cache_dir": "cache",
    "Catalog": "catalog", "StreamCursor": "cursor", "ObjectFetcher": "fetcher", "StreamIndex": "index",
    "KeyStore": "keystore", "S3Client": "s3", "Stats": "stats", "StreamReader": "stream",
}
"""The names this package has always offered, each imported from its module on first use."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

log = logging.getLogger(__name__)

_SAVE_EVERY = 5.0
"""Seconds between saves of the stream index while serving: a crash loses at most this much order."""
_EVICT_EVERY = 300.0
_REPORT_LISTING_EVERY = 5.0
"""Seconds between progress reports of a first listing that takes long (a large prefix)."""
"""Seconds between cache evictions while serving (``--cache-hours``, ``--cache-max-size``)."""


@dataclass
class Engine:
    """Everything below the front ends, wired for one bucket prefix."""

    options: SourceOptions
    stats: Stats
    client: S3Client
    cache: DiskCache
    fetcher: ObjectFetcher
    catalog: Catalog
    reader: StreamReader
    bookmarks: StreamBookmarks
    _stop: threading.Event = field(default_factory=threading.Event)

    def load(self) -> None:
        """List the prefix; the stream keeps the order a previous run saved with this cache."""
        self.catalog.subscribe(self.reader.on_added)
        self.catalog.load(self.reader.saved_order())

    def start_reading(self, follow: bool) -> None:
        """For a reader that goes front to back: list the prefix, wait for the stream, poll if following."""
        self.load()
        self.reader.ready.wait()
        if follow:
            self.catalog.start()

    def serve(self, report: Callable[[str], None] = log.info) -> None:
        """For a long-lived front end (the mount): list in the background, poll, save and evict.

        A first listing that runs longer than a few seconds is reported through ``report``
        every few seconds (objects so far), and once when it ends.

        Threads start here, never in :func:`build`: the mount calls this from FUSE's ``init``,
        once libfuse runs (a process that forks must not have threads yet).
        """
        threading.Thread(target=self._load_in_background, name="s3logfs-listing", daemon=True).start()
        threading.Thread(target=self._report_listing, args=(report,), name="s3logfs-listing-report",
                         daemon=True).start()
        self.catalog.start()
        threading.Thread(target=self._housekeeping, name="s3logfs-housekeeping", daemon=True).start()

    def open_cursor(self, value: str | None) -> StreamCursor:
        """A cursor at ``value`` (``-b``: a bookmark name, ``KEY:LINE``, ``KEY@BYTE`` or an offset)."""
        from .cursor import StreamCursor

        place, name = self.bookmarks.start_of(value)
        return StreamCursor(self.reader, self.bookmarks, place, name)

    def close(self) -> None:
        self._stop.set()
        self.catalog.stop()
        self.reader.close()
        self.cache.close()

    def _load_in_background(self) -> None:
        """The first listing, while the front end already answers: its views fill as pages arrive."""
        started = time.monotonic()
        try:
            self.load()
        except S3LogFSError as error:
            log.error("listing stopped after %d objects: %s", len(self.catalog.entries), error)
        except Exception:  # the front end stays up with what was listed
            log.exception("listing stopped after %d objects", len(self.catalog.entries))
        else:
            log.debug("listed %d objects in %.2f s", len(self.catalog.entries), time.monotonic() - started)

    def _report_listing(self, report: Callable[[str], None]) -> None:
        started = time.monotonic()
        reported = False
        while not self.catalog.loaded.wait(_REPORT_LISTING_EVERY):
            if self._stop.is_set():
                return
            report(f"listing {self.options.url}: {len(self.catalog.entries):,} objects so far")
            reported = True
        if reported:
            report(f"listed {len(self.catalog.entries):,} objects in {time.monotonic() - started:.0f} s")

    def _housekeeping(self) -> None:
        """Save the stream index every few seconds; evict from the cache every few minutes."""
        last_eviction = 0.0
        while not self._stop.is_set():
            try:
                self.reader.index.save()
                if time.monotonic() - last_eviction > _EVICT_EVERY:
                    self.cache.evict()
                    last_eviction = time.monotonic()
            except OSError as error:
                log.warning("housekeeping failed: %s", error)
            self._stop.wait(_SAVE_EVERY)


def dir_prefix(prefix: str) -> str:
    """The directory a prefix lists: ``logs/prod-2016`` shows the keys of ``logs/``."""
    return prefix[: prefix.rfind("/") + 1]


def cache_root(cache_dir: Path, raw: bool, records: str) -> Path:
    """Where a source's decoded objects go: stored bytes (``--raw``) and each ``--records`` mode apart."""
    if raw:
        return cache_dir / "raw"
    records_dir = cache_subdir(records)
    return cache_dir / records_dir if records_dir is not None else cache_dir


def build(options: SourceOptions, client: S3Client | None = None, stats: Stats | None = None,
          size_ahead: bool = True) -> Engine:
    """The layers for one source, wired; nothing runs until :meth:`Engine.load` or :meth:`Engine.serve`.

    ``client`` is one that already passed the front end's checks, counting into ``stats``.
    ``size_ahead`` is for readers that seek (the mount; see :class:`StreamReader`).
    """
    from .bookmarks import BookmarkStore, StreamBookmarks
    from .cache import DiskCache, check_cache_dir
    from .catalog import Catalog
    from .fetcher import ObjectFetcher
    from .index import StreamIndex
    from .keystore import KeyStore
    from .s3 import S3Client
    from .stats import Stats
    from .stream import StreamReader

    stats = stats or Stats()
    client = client or S3Client(options.bucket, options.s3, stats)
    check_cache_dir(options.cache_dir)  # the parent of a --raw or --records cache too
    cache = DiskCache.open(cache_root(options.cache_dir, options.raw, options.records), options.cache_hours,
                           options.cache_max_size)
    fetcher = ObjectFetcher(client, cache, stats, decode=not options.raw, records=options.records)
    keys = KeyStore(dir_prefix(options.prefix))
    catalog = Catalog(client, fetcher, options.prefix, keys, stats, options.poll_interval, window=options.window)
    state_file = None if cache.ephemeral else StreamIndex.state_path(cache.root, options.bucket, options.prefix)
    index = StreamIndex(state_file, persist=options.window is None, keys=keys)  # a window's offsets are its own
    reader = StreamReader(catalog, index, stats, options.prefetch, skip_errors=options.skip_errors,
                          size_ahead=size_ahead)
    bookmarks = StreamBookmarks(BookmarkStore(options.bookmarks_file), options.url, options.prefix, catalog,
                                index, reader.exact_length)
    return Engine(options, stats, client, cache, fetcher, catalog, reader, bookmarks)
