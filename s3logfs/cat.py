"""``s3logfs cat``: the stream on stdout, s3tail's workflow without FUSE.

It builds the same engine as the mount (:func:`s3logfs.engine.build`: the same listing,
cache, codecs, index and read-ahead) and reads it through the engine's cursor protocol
(:mod:`s3logfs.engine.cursor`), as the mount's cursor files do, so it prints the same
bytes in the same order and moves bookmarks the same way. It never imports the FUSE binding.

When it stops (end of the stream, Ctrl-C, SIGTERM, or a reader that closed the pipe) it
prints ``Bookmark: KEY:LINE`` in s3tail's form on stderr, and saves the bookmark under
the name ``-b`` gave. The place is the end of the last complete line the reader took:
for a pipe, what is still unread in the pipe's buffer (``FIONREAD``) does not count.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import signal
import stat
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import engine
from .config import CatOptions
from .engine import Engine, StreamCursor
from .engine.bookmarks import Bookmark
from .errors import S3LogFSError

log = logging.getLogger(__name__)

READ_SIZE = 256 << 10
"""Bytes asked of the stream per read: the size of one write to stdout."""
_HISTORY_BYTES = 4 << 20
"""Recent output kept to find the last line a pipe's reader took (a pipe holds at most 1 MiB by default)."""
_PROGRESS_EVERY = 0.25
_ESTIMATE_AFTER = 2.0
"""Seconds of reading before the progress line gives a total and a time left."""


class _Stopped(Exception):
    """Ctrl-C or SIGTERM asked ``cat`` to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.status = 128 + signum


class _StopSignals:
    """SIGINT and SIGTERM stop ``cat``, but never between a write and the mark it moves.

    Raised at once anywhere else (waiting for S3, for new objects), a stop that comes
    while output is being written waits until the write and its mark are done, so the
    bookmark always names the last line that went out.
    """

    def __init__(self) -> None:
        self._deferring = False
        self._pending: int | None = None

    def _handle(self, signum: int, frame: object) -> None:
        if self._deferring:
            self._pending = signum
            return
        raise _Stopped(signum)

    @contextmanager
    def installed(self) -> Iterator[None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self._handle) for signum in signals}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending is not None:
            raise _Stopped(self._pending)


@dataclass
class _Output:
    """What has gone to stdout; the cursor's mark follows the last complete line written."""

    fd: int
    cursor: StreamCursor
    offset: int = 0
    history: collections.deque[tuple[int, bytes]] = field(default_factory=collections.deque)
    kept: int = 0
    marks: collections.deque[tuple[int, Bookmark]] = field(default_factory=lambda: collections.deque(maxlen=64))
    """Recent line ends written (stream offset, mark), to fall back on past the history."""
    partial: bytes = b""
    """The start of a line that goes on in the next read: written with its end, never alone."""

    def __post_init__(self) -> None:
        self.offset = self.cursor.offset
        self.first_mark = self.cursor.mark

    def write(self, data: bytes, stops: _StopSignals) -> None:
        """Write the whole lines of ``data``, the last read; the mark moves past the last one.

        Only whole lines go out, so a stop leaves the output at a line's end, where the
        bookmark is: runs appended with ``>>`` join exactly. A reader that closes the pipe
        makes a write return short, then fail: the bytes that went through are counted
        before :class:`BrokenPipeError` goes up.
        """
        cut = data.rfind(b"\n") + 1
        if not cut:
            self.partial += data
            return
        lines, self.partial = self.partial + data[:cut], data[cut:]
        with stops.deferred():
            self._write(lines)
            self.cursor.took(data)
            self.marks.append((self.offset, self.cursor.mark))

    def finish(self, stops: _StopSignals) -> None:
        """Write what is left: the stream ends every object with a newline, so normally nothing."""
        if self.partial:
            with stops.deferred():
                self._write(self.partial)
            self.partial = b""

    def _write(self, data: bytes) -> None:
        start = self.offset
        self._remember(start, data)
        sent = 0
        try:
            while sent < len(data):
                sent += os.write(self.fd, data[sent:])
        except BrokenPipeError:
            self._settle_after_broken_pipe(start + sent)
            raise
        self.offset += len(data)

    def _remember(self, start: int, data: bytes) -> None:
        self.history.append((start, data))
        self.kept += len(data)
        while self.kept - len(self.history[0][1]) >= _HISTORY_BYTES:
            self.kept -= len(self.history.popleft()[1])

    def _settle_after_broken_pipe(self, sent_end: int) -> None:
        """The reader closed the pipe: the mark goes back to the last line it took.

        The bytes still in the pipe's buffer were never read. Within the recent output the
        mark is that line's end; before it, the last mark set at or before that point.
        """
        consumed = sent_end - _unread_in_pipe(self.fd)
        for chunk_start, chunk in reversed(self.history):
            if chunk_start >= consumed:
                continue
            newline = chunk.rfind(b"\n", 0, consumed - chunk_start)
            if newline >= 0:
                self.cursor.mark_offset(chunk_start + newline + 1)
                return
        self.cursor.mark = next((mark for end, mark in reversed(self.marks) if 0 <= end <= consumed),
                                self.first_mark)


def _unread_in_pipe(fd: int) -> int:
    """Bytes written to ``fd`` that no reader has taken (0 for anything but a pipe).

    Only for a pipe: on a socket, FIONREAD counts what came in, not what went out.
    """
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return 0
        buffer = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    except OSError:
        return 0
    return int(struct.unpack("i", buffer)[0])


def run_cat(options: CatOptions, out_fd: int = 1) -> int:
    """``s3logfs cat``: returns the exit status (0 at the end or when the reader left, 130/143 on a signal)."""
    source = engine.build(options.source, size_ahead=False)
    stops = _StopSignals()
    try:
        with stops.installed():
            try:
                source.start_reading(options.follow)
                cursor = source.open_cursor(options.bookmark)
            except _Stopped as stopped:
                return stopped.status  # nothing was printed: no bookmark to report
            if len(source.reader.index) == 0:
                waiting = "; waiting for new objects" if options.follow else ""
                print(f"s3logfs: nothing under {options.source.url}{waiting}", file=sys.stderr, flush=True)
            if cursor.name is not None and source.bookmarks.get(cursor.name) is None:  # a typo shows here
                print(f"s3logfs: new bookmark {cursor.name}, starting at the beginning", file=sys.stderr, flush=True)
            output = _Output(out_fd, cursor)
            status = _copy_until_stopped(source, output, options, stops)
        with _signals_held():
            _finish(source, cursor)
        return status
    finally:
        source.close()


def _copy_until_stopped(source: Engine, output: _Output, options: CatOptions, stops: _StopSignals) -> int:
    """Copy until the end, a signal or a reader that left; the exit status."""
    try:
        _copy(source, output, options, stops)
    except _Stopped as stopped:
        return stopped.status
    except BrokenPipeError:  # the reader has all it wanted (head, less q): a normal end
        return 0
    return 0


@contextmanager
def _signals_held() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM waits until the bookmark is saved, then acts."""
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _copy(source: Engine, output: _Output, options: CatOptions, stops: _StopSignals) -> None:
    """Copy the stream from the cursor's place to stdout; with ``follow``, wait for more at the end."""
    cursor = output.cursor
    progress = _Progress(source, cursor) if options.progress and sys.stderr.isatty() else None
    try:
        while True:
            data = cursor.read(READ_SIZE)
            if data:
                output.write(data, stops)
                continue
            if not options.follow:
                output.finish(stops)
                return
            _wait_for_growth(source, cursor.offset, len(source.reader.index))
    finally:
        if progress is not None:
            progress.stop()
        cursor.close()


def _wait_for_growth(source: Engine, offset: int, objects: int) -> None:
    """Until the stream has more bytes or more objects (a new one may be estimated at 0 bytes)."""
    index = source.reader.index
    with index.changed:
        index.changed.wait_for(lambda: index.total() > offset or len(index) > objects, timeout=1.0)


def _finish(source: Engine, cursor: StreamCursor) -> None:
    """Save the bookmark ``-b`` named; report skipped objects; print the bookmark, in s3tail's form, last."""
    cursor.save(create=True)
    skipped = source.stats.snapshot().get("skips", 0)
    try:
        shown = cursor.as_s3tail().format()
    except S3LogFSError as error:  # s3tail's form counts the lines of the object
        log.warning("cannot count the lines for s3tail's bookmark form: %s", error)
        shown = cursor.mark.describe()
    try:
        if skipped:
            print(f"s3logfs: skipped {skipped} object(s) that could not be read (--skip-errors; the log names them)",
                  file=sys.stderr, flush=True)
        print(f"Bookmark: {shown}", file=sys.stderr, flush=True)
    except OSError:  # stderr went with the pipe: the bookmark is saved all the same
        pass


class _Progress:
    """A live line on stderr: objects and bytes done of the total, throughput, time left.

    The stream's total size is not known ahead (a gzip object's decoded size is known once
    read), so the total is estimated from what is: the stored bytes of the objects left, times
    the ratio of decoded to stored bytes seen so far. Until that ratio means something (some
    objects and a second or two done), the line says "estimating".
    """

    def __init__(self, source: Engine, cursor: StreamCursor) -> None:
        self._index = source.reader.index
        self._catalog = source.catalog
        self._cursor = cursor
        self._start = cursor.start
        self._began = time.monotonic()
        self._stored_total = 0
        self._counted = self._start.position
        """Objects from the start up to here have their stored size in ``_stored_total``."""
        self._stored_done = 0
        self._finished = self._start.position
        """Objects from the start up to here are read: their stored size is in ``_stored_done``."""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s3logfs-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(_PROGRESS_EVERY):
            sys.stderr.write("\r" + self.line() + "\033[K")
            sys.stderr.flush()

    def _stored(self, position: int) -> int:
        return int(self._catalog.by_key[self._index.spans[position].key].info.size)

    def _count_stored(self, position: int) -> None:
        """Bring the stored-byte sums up to the index's length and the cursor's ``position``."""
        while self._counted < len(self._index):
            self._stored_total += self._stored(self._counted)
            self._counted += 1
        while self._finished < min(position, len(self._index)):
            self._stored_done += self._stored(self._finished)
            self._finished += 1

    def line(self) -> str:
        position = self._cursor.read_position.position
        self._count_stored(position)
        objects = max(0, min(position, len(self._index)) - self._start.position)
        total_objects = len(self._index) - self._start.position
        done = max(0, self._cursor.offset - self._start.offset)
        elapsed = max(1e-6, time.monotonic() - self._began)
        rate = done / elapsed
        head = f"{objects}/{total_objects} objects, {done / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s"
        if objects == 0 or self._stored_done == 0 or elapsed < _ESTIMATE_AFTER:
            return f"{head}, estimating"
        ratio = done / self._stored_done  # decoded bytes per stored byte, so far
        total = done + (self._stored_total - self._stored_done) * ratio
        left = (total - done) / rate if rate > 0 else 0.0
        return f"{head}, about {total / 1e6:.0f} MB in all, {left:.0f} s left"

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=1)
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
