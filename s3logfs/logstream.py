"""``LogStream``: s3tail's ``S3Tail`` API on the mount's engine, for Python programs.

It reads the same stream as ``MOUNT/stream`` and ``s3logfs cat`` (same listing, cache,
codecs, index and read-ahead; see :mod:`s3logfs.engine`) through the same cursor protocol
(:mod:`s3logfs.engine.cursor`), an object at a time, so that it can number lines per key
and let a ``key_handler`` skip keys before they are fetched. It never imports the FUSE binding.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from . import engine
from .config import DEFAULT_TIMEOUT, Settings, common_options, source_options
from .engine import Engine, StreamCursor
from .engine.bookmarks import Bookmark
from .engine.options import parse_source
from .engine.window import make_window
from .errors import UsageError

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
        settings = Settings({
            "region": region_name, "profile": profile_name, "endpoint_url": endpoint_url, "timeout": timeout,
            "cache_dir": str(cache_dir) if cache_dir else None, "cache_hours": cache_hours,
            "poll_interval": poll_interval, "prefetch": max(0, prefetch), "records": records,
            "skip_errors": skip_errors,
        }, config={})  # the config file holds the bookmarks; its [options] are the command line's
        try:
            common = common_options(settings, Path(config_file) if config_file else None)
            self.options = source_options(settings, common, bucket, prefix, make_window(since, until))
        except UsageError as error:  # checked as the command line's options are, named as the caller named them
            raise UsageError(_FLAG.sub(lambda flag: flag.group(1).replace("-", "_"), str(error))) from None
        self.follow = follow
        self.bookmark = bookmark
        self.line_handler = line_handler
        self.key_handler = key_handler
        self._stopped = threading.Event()
        self._engine: Engine | None = None
        self._cursor: StreamCursor | None = None
        self._key: str | None = None
        self._line = 0
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
        cursor = self._open()[1]
        if self._key is None:
            return cursor.as_s3tail().format()
        assert self._engine is not None
        return Bookmark(key=self._engine.bookmarks.previous_key(self._key), line=self._line).format()

    def close(self) -> None:
        """Save a named bookmark where reading stopped, and release the engine."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None:
            try:
                if self._cursor is not None:
                    self._cursor.close()
                    self._cursor.save(create=True)
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

    def _open(self) -> tuple[Engine, StreamCursor]:
        if self._engine is None or self._cursor is None:
            source = engine.build(self.options, size_ahead=False)
            try:
                source.start_reading(self.follow)
                self._cursor = source.open_cursor(self.bookmark)
            except BaseException:
                source.close()
                raise
            self._engine = source
        return self._engine, self._cursor

    def _lines(self) -> Iterator[tuple[int, str]]:
        source, cursor = self._open()
        first, inner = cursor.start.position, cursor.start.inner
        for position in self._approved_positions(source, first):
            yield from self._object_lines(source, cursor, position, inner if position == first else 0)
            if self._stopped.is_set():
                return

    def _approved_positions(self, source: Engine, first: int) -> Iterator[int]:
        """Stream positions from ``first`` whose key ``key_handler`` accepts, fetched ahead."""
        ahead: collections.deque[int] = collections.deque()
        following = first
        depth = max(1, self.options.prefetch)
        while not self._stopped.is_set():
            while len(ahead) < depth and following < len(source.reader.index):
                if self._accepts(source, following):
                    ahead.append(following)
                    if self.options.prefetch:
                        source.reader.prefetch_position(following)
                following += 1
            if ahead:
                yield ahead.popleft()
            elif not self.follow:
                return
            else:
                _wait_for_more(source, following, self._stopped)

    def _accepts(self, source: Engine, position: int) -> bool:
        if self.key_handler is None:
            return True
        entry = source.catalog.by_key[source.reader.index.spans[position].key]
        cached = source.catalog.cached(entry) is not None
        return bool(self.key_handler(entry.key, str(source.catalog.cache_path(entry)), cached))

    def _object_lines(self, source: Engine, cursor: StreamCursor, position: int,
                      inner: int) -> Iterator[tuple[int, str]]:
        """The lines of the object at ``position`` as the stream holds them, numbered from 1.

        Lines that end at or before ``inner`` are counted, not handed over: a place inside a
        line hands over that whole line. Each line handed over moves the cursor's mark.
        """
        key = source.reader.index.spans[position].key
        byte = 0
        pending: list[bytes] = []
        """The start of a line that goes on in the next chunk, in pieces: joined once, when it ends."""
        for chunk in cursor.read_object(position, _CHUNK_BYTES):  # nothing if skip_errors left it out
            if self._key != key:
                self._key, self._line = key, 0
            lines = chunk.split(b"\n")
            if pending and len(lines) > 1:
                lines[0] = b"".join([*pending, lines[0]])
                pending = []
            if lines[-1]:
                pending.append(lines[-1])
            for line in lines[:-1]:
                self._line += 1
                byte += len(line) + 1
                if byte <= inner:
                    continue
                cursor.mark_object(position, byte)
                yield self._line, line.decode("utf-8", "replace")
                if self._stopped.is_set():
                    return


_FLAG = re.compile(r"--([a-z][a-z-]*)")
_CHUNK_BYTES = 1 << 20
"""Bytes of an object read at a time: its lines are handed over as each chunk arrives."""


def _wait_for_more(source: Engine, seen: int, stopped: threading.Event) -> None:
    index = source.reader.index
    with index.changed:
        index.changed.wait_for(lambda: len(index) > seen or stopped.is_set(), timeout=0.5)
