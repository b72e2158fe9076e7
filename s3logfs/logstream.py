"""``LogStream``: s3tail's ``S3Tail`` API on the mount's engine, for Python programs.

It reads the same stream as ``MOUNT/stream`` and ``s3logfs cat`` (same listing, cache,
codecs, index and read-ahead; see :mod:`s3logfs.engine`), a key at a time, so that it
can number lines per key and let a ``key_handler`` skip keys before they are fetched.
It never imports the FUSE binding.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from .bookmarks import Bookmark, Place
from .cache import default_cache_dir
from .config import DEFAULT_TIMEOUT, CatOptions, CommonOptions, find_config_file, s3_config
from .engine import Engine, build_engine
from .s3 import parse_source
from .timewindow import make_window

log = logging.getLogger(__name__)

LineHandler = Callable[[int, str], Any]
"""``line_handler(num, line)``: a return value that is not None stops the stream and is returned."""
KeyHandler = Callable[[str, str, bool], Any]
"""``key_handler(key, cache_path, cached)``: a falsy return value skips the key."""


class LogStream:
    """Every object under ``s3://bucket/prefix``, decoded, as lines, with s3tail's bookmarks.

    * ``line_handler(num, line)`` gets each line without its newline (UTF-8, undecodable
      bytes replaced); ``num`` counts lines per key from 1. A return value that is not
      None stops :meth:`watch`, which returns it.
    * ``key_handler(key, cache_path, cached)`` is asked about each key in stream order,
      before anything of it is fetched; a falsy answer skips the key. With read-ahead it
      is asked up to ``prefetch`` keys ahead of the lines being handled.
    * ``bookmark`` is a bookmark name (read from, and saved to, the config file's
      ``[bookmarks]``, shared with ``s3logfs cat -b`` and mounts), s3tail's ``KEY:LINE``,
      ``KEY@BYTE``, or a stream offset. Lines are whole: a place inside a line hands over
      that whole line (bookmarks that readers save always lie at a line's end).
    * ``follow=True`` keeps waiting for new objects (``poll_interval``) until :meth:`stop`.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        line_handler: LineHandler | None = None,
        key_handler: KeyHandler | None = None,
        bookmark: str | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        profile_name: str | None = None,
        cache_dir: str | Path | None = None,
        cache_hours: float = 24,
        records: str = "none",
        since: str | None = None,
        until: str | None = None,
        follow: bool = False,
        poll_interval: float = 10.0,
        prefetch: int = 16,
        skip_errors: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        config_file: str | Path | None = None,
    ) -> None:
        if bucket.startswith("s3://") and not prefix:  # LogStream("s3://bucket/prefix") works too
            bucket, prefix = parse_source(bucket)
        common = CommonOptions(
            s3=s3_config(region_name, profile_name, endpoint_url, timeout),
            cache_dir=Path(cache_dir).expanduser() if cache_dir else default_cache_dir(),
            cache_hours=cache_hours,
            cache_max_size=None,
            log_level="WARNING",
            log_file=None,
            config_file=find_config_file(Path(config_file) if config_file else None),
        )
        self.options = CatOptions(common=common, bucket=bucket, prefix=prefix, poll_interval=poll_interval,
                                  prefetch=max(0, prefetch), records=records, window=make_window(since, until),
                                  skip_errors=skip_errors, follow=follow, bookmark=bookmark)
        self.line_handler = line_handler
        self.key_handler = key_handler
        self._stopped = threading.Event()
        self._engine: Engine | None = None
        self._name: str | None = None
        self._start: Place | None = None
        self._key: str | None = None
        self._line = 0
        self._byte = 0
        self._closed = False

    # the s3tail API ------------------------------------------------------------------

    def watch(self) -> Any:
        """Hand every line to ``line_handler`` until the end (or :meth:`stop`); see the class docstring."""
        if self.line_handler is None:
            raise TypeError("watch() needs a line_handler")
        for number, line in self._lines():
            result = self.line_handler(number, line)
            if result is not None:
                return result
        return None

    def stop(self, *args: object) -> None:
        """Stop :meth:`watch` or the iteration after the current line; usable as a signal handler."""
        self._stopped.set()

    def get_bookmark(self) -> str:
        """Where the next run should start, in s3tail's ``KEY:LINE`` form (give it back as ``bookmark=``)."""
        engine = self._open()
        if self._key is None:
            start = self._start or Place(0, 0, 0)
            return engine.bookmarks.as_s3tail(engine.bookmarks.bookmark_at(start.offset)).format()
        return Bookmark(key=engine.bookmarks.previous_key(self._key), line=self._line).format()

    def close(self) -> None:
        """Save a named bookmark where reading stopped, and release the engine."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None:
            try:
                self._save()
            finally:
                self._engine.close()

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        """The lines, without their newline, as :meth:`watch` hands them over."""
        for _, line in self._lines():
            yield line

    # reading -------------------------------------------------------------------------

    def _open(self) -> Engine:
        if self._engine is None:
            engine = build_engine(self.options, size_ahead=False)
            try:
                engine.start_reading(self.options.follow)
                self._start, self._name = engine.bookmarks.start_of(self.options.bookmark)
            except BaseException:
                engine.close()
                raise
            self._engine = engine
        return self._engine

    def _lines(self) -> Iterator[tuple[int, str]]:
        engine = self._open()
        assert self._start is not None
        first, inner = self._start.position, self._start.inner
        for position in self._approved_positions(engine, first):
            yield from self._key_lines(engine, position, inner if position == first else 0)
            if self._stopped.is_set():
                return

    def _approved_positions(self, engine: Engine, first: int) -> Iterator[int]:
        """Stream positions from ``first`` whose key ``key_handler`` accepts, fetched ahead."""
        ahead: collections.deque[int] = collections.deque()
        following = first
        depth = max(1, self.options.prefetch)
        while not self._stopped.is_set():
            while len(ahead) < depth and following < len(engine.reader.index):
                if self._accepts(engine, following):
                    ahead.append(following)
                    if self.options.prefetch:
                        engine.reader.prefetch_position(following)
                following += 1
            if ahead:
                yield ahead.popleft()
            elif not self.options.follow:
                return
            else:
                _wait_for_more(engine, following, self._stopped)

    def _accepts(self, engine: Engine, position: int) -> bool:
        if self.key_handler is None:
            return True
        entry = engine.catalog.by_key[engine.reader.index.spans[position].key]
        cached = engine.fetcher.cached(entry.info) is not None
        path = str(engine.fetcher.cache.path_for(engine.fetcher.bucket, entry.key))
        return bool(self.key_handler(entry.key, path, cached))

    def _key_lines(self, engine: Engine, position: int, inner: int) -> Iterator[tuple[int, str]]:
        key = engine.reader.index.spans[position].key
        cached = engine.reader.open_object(position)  # None: left out by skip_errors (logged, counted)
        if cached is None:
            return
        _, fd = engine.fetcher.open(engine.catalog.by_key[key].info, cached)  # fetched again if evicted
        handle = os.fdopen(fd, "rb")
        with handle:
            self._key, self._line, self._byte = key, 0, 0
            for raw in handle:
                self._line += 1
                # A last line without a newline: the stream adds one, and a bookmark counts it.
                self._byte += len(raw) + (not raw.endswith(b"\n"))
                if self._byte <= inner:
                    continue  # before the bookmark: counted, not handed over
                yield self._line, raw.rstrip(b"\n").decode("utf-8", "replace")
                if self._stopped.is_set():
                    return

    def _save(self) -> None:
        if self._name is None or self._engine is None:
            return
        bookmarks = self._engine.bookmarks
        if self._key is None:
            assert self._start is not None
            mark = bookmarks.bookmark_at(self._start.offset)
        else:
            mark = Bookmark(source=bookmarks.source, key=self._key, byte=self._byte)
        bookmarks.move(self._name, mark, create=True)


def _wait_for_more(engine: Engine, seen: int, stopped: threading.Event) -> None:
    index = engine.reader.index
    with index.changed:
        index.changed.wait_for(lambda: len(index) > seen or stopped.is_set(), timeout=0.5)
