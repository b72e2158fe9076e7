"""The ``stream`` file: every object decoded and concatenated, with read-ahead and follow.

How a read finds its bytes
    A read at offset X asks the :class:`~s3logfs.index.StreamIndex` which object spans
    X, makes sure that object is decoded in the cache (fetching only it), and copies
    from the cached file. A newline is added after an object that lacks one.

Why each open handle has a cursor
    Lengths start as estimates and are corrected when an object is decoded, which
    shifts the offsets of every later object. A reader going sequentially must never
    see a gap, a repeat or a mixed-up line because of that, so each handle remembers
    which object and inner offset its next expected read continues from. A read at
    exactly that offset continues from the cursor whatever the corrections did; any
    other read is located afresh in the index.

Read-ahead
    A sequential read schedules the next ``prefetch`` objects on a thread pool of that
    size. Downloads are single-flight (:class:`~s3logfs.objects.ObjectFetcher`), so a
    reader that catches up simply joins the download in progress. Decoded data goes to
    the disk cache, never to memory, so RSS does not grow with the prefetch depth.

Follow
    Batches of new objects from the catalog's poller are decoded first, then appended
    with exact lengths, so ``st_size`` only ever grows by bytes that are really there.
    The initial batch (the mount-time listing) is sized from the listing, its last
    objects exactly (so ``tail -n`` is right at once); gzip trailers of the rest are
    probed in the background once ``stream`` answers, so it costs the listing and a few
    GETs whatever the number of objects.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .cache import CachedObject
from .codecs import GZIP
from .objects import looks_gzip_named
from .catalog import Catalog, Entry
from .errors import S3LogFSError
from .index import Span, StreamIndex

log = logging.getLogger(__name__)

PROBE_WORKERS = 8
"""Parallel gzip trailer probes after mounting: each is one 4-byte ranged GET. Fewer than the
read-ahead's workers, so probes never crowd out a reader."""
READER_QUIET_SECONDS = 1.0
"""Background trailer probes wait while a sequential reader was active this recently: its
read-ahead makes the same objects exact, and on a busy server probes would only slow it."""
MULTI_MEMBER_DECODE_LIMIT = 1 << 20
TAIL_EXACT_OBJECTS = 16
TAIL_EXACT_BYTES = 64 * 1024
"""At mount time, the estimates of the last objects (up to this many, or this many bytes)
are settled: ``tail -n`` seeks from ``st_size`` and reads backwards, so the end of the
stream must not move under it when an estimate is corrected."""


@dataclass
class Cursor:
    """Where a handle's next sequential read continues."""

    next_offset: int = -1
    position: int = 0
    inner: int = 0
    fd: int = -1
    fd_position: int = -1
    data_size: int = 0
    adds_newline: bool = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.fd_position = -1, -1


class StreamReader:
    """Serves the bytes of ``stream`` from the catalog, the index and the cache."""

    def __init__(self, catalog: Catalog, index: StreamIndex, prefetch: int) -> None:
        self.catalog = catalog
        self.index = index
        self.prefetch = prefetch
        self.ready = threading.Event()
        self._saved = {span.key: span for span in index.load_saved()}
        self._fetch_pool = ThreadPoolExecutor(max(1, prefetch, TAIL_EXACT_OBJECTS), thread_name_prefix="s3logfs-fetch")
        self._batches = ThreadPoolExecutor(1, thread_name_prefix="s3logfs-index")
        self._probe_pool = ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="s3logfs-probe")
        self._scheduled: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._batch_count = 0
        self._last_read_ahead = 0.0
        self._closed = threading.Event()

    def saved_order(self) -> list[str]:
        """Keys in the order a previous mount with this cache streamed them."""
        return list(self._saved)

    # building the index ---------------------------------------------------------

    def on_added(self, entries: list[Entry]) -> None:
        """Catalog listener: size a batch of new entries and append it, in order."""
        first = self._batch_count == 0
        self._batch_count += 1
        try:
            self._batches.submit(self._append_batch, entries, first)
        except RuntimeError:  # closed: unmounted while the listing ran
            log.debug("unmounted: %d listed object(s) dropped", len(entries))

    def _append_batch(self, entries: list[Entry], first: bool) -> None:
        try:
            if first:
                spans = [self._known_span(entry) for entry in entries]
                self._settle_tail(entries, spans)
            else:
                spans = list(self._fetch_pool.map(self._settle, entries))
            start = len(self.index)
            self.index.append(spans)
            self.ready.set()  # before saving: writing 10,000 spans takes a tenth of a second
            self.index.save()
            if first:
                self._probe_in_background(start, entries, spans)
        except Exception:  # the index thread must outlive any one batch
            log.exception("cannot add %d object(s) to the stream", len(entries))
        finally:
            self.ready.set()

    def _known_span(self, entry: Entry) -> Span:
        """A span from what costs no request: a saved index, or the listing's size.

        The disk cache is not asked here (10,000 lookups on a cold mount); the trailer probe
        and every read ask it first.
        """
        saved = self._saved.get(entry.key)
        if saved is not None and saved.etag == entry.info.etag:
            return Span(entry.key, entry.info.etag, saved.length, saved.exact)
        if looks_gzip_named(entry.key):  # 0 until its trailer lands: a tiny gzip can decode smaller than stored
            return Span(entry.key, entry.info.etag, 0, False)
        return Span(entry.key, entry.info.etag, entry.info.size, False)  # assumes a final newline

    def _settle_tail(self, entries: list[Entry], spans: list[Span]) -> None:
        """Size the stream's last objects before ``stream`` answers, so ``tail -n`` is exact.

        A gzip trailer that looks single-member is exact. Other small objects are decoded:
        a whole small GET costs what a probe costs, and warms the cache for ``tail``. A
        large one is sniffed: plain is exact but for a final newline.
        """

        def settle(position: int) -> Span:
            entry = entries[position]
            if self.catalog.fetcher.transforms:  # --records: no probe sizes the lines, decoding does
                return self._settle(entry)
            try:
                size, exact = self.catalog.decoded_size(entry, sniff=entry.info.size > MULTI_MEMBER_DECODE_LIMIT)
            except S3LogFSError as error:
                log.warning("cannot probe %s: %s", entry.key, error)
                return spans[position]
            if exact or (entry.encoding == GZIP and not _looks_multi_member(size, entry.info.size, limit=None)):
                return Span(entry.key, entry.info.etag, size, False)
            return self._settle(entry)

        chosen = _tail_positions(spans)
        for position, span in zip(chosen, self._fetch_pool.map(settle, chosen)):
            spans[position] = span

    def _probe_in_background(self, start: int, entries: list[Entry], spans: list[Span]) -> None:
        """Read the gzip trailers of the other objects, last objects first, while no reader is active.

        Until its probe lands, a gzip object counts as empty, and a trailer gives at most
        the decoded size (the last member's), so ``st_size`` only grows. Objects a reader
        fetched meanwhile are exact already and cost no probe; reading backwards from the
        end meets a forward reader half way instead of racing it.
        """
        self._last_read_ahead = time.monotonic()  # a reader waiting for the stream to answer goes first
        for offset in range(len(entries) - 1, -1, -1):
            entry = entries[offset]
            if not spans[offset].exact and entry.size is None and looks_gzip_named(entry.key):
                self._probe_pool.submit(self._probe_one, start + offset, entry)

    def _probe_one(self, position: int, entry: Entry) -> None:
        while time.monotonic() - self._last_read_ahead < READER_QUIET_SECONDS and not self._closed.is_set():
            time.sleep(READER_QUIET_SECONDS / 4)  # a sequential reader is sizing objects exactly: let it
        if self._closed.is_set() or self.index.spans[position].exact:
            return
        try:
            size, exact = self.catalog.decoded_size(entry)
            if self._closed.is_set():
                return
            if not exact and _looks_multi_member(size, entry.info.size, limit=MULTI_MEMBER_DECODE_LIMIT):
                self._make_exact(position, entry)
            else:
                self.index.estimate(position, size)
        except S3LogFSError as error:
            log.warning("cannot probe %s: %s", entry.key, error)

    def _settle(self, entry: Entry) -> Span:
        try:
            return self._exact_span(entry)
        except S3LogFSError as error:
            log.warning("cannot read new object %s: %s", entry.key, error)
            return Span(entry.key, entry.info.etag, entry.info.size, False)

    def _exact_span(self, entry: Entry) -> Span:
        cached, length = self._decode(entry)
        return Span(entry.key, cached.etag, length, True)

    def _decode(self, entry: Entry) -> tuple[CachedObject, int]:
        """The entry's decoded content on disk, and its exact length in the stream."""
        cached = self.catalog.materialize(entry)
        return cached, cached.size + int(cached.size > 0 and not cached.ends_with_newline)

    # reading ----------------------------------------------------------------------

    def size(self) -> int:
        self.ready.wait()
        return self.index.total()

    def read(self, cursor: Cursor, offset: int, size: int) -> bytes:
        self.ready.wait()
        sequential = offset == cursor.next_offset
        if sequential:
            position, inner = cursor.position, cursor.inner
        else:
            position, inner = self.index.locate(offset)
        read_ahead = sequential or offset == 0
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0 and position < len(self.index):
            if read_ahead and cursor.fd_position != position:
                self._read_ahead(position + 1)
            self._open(cursor, position)
            length = cursor.data_size + cursor.adds_newline
            if inner >= length:  # the estimate was longer than the object really is, or it is empty
                if sequential or chunks or inner == 0:
                    position, inner = position + 1, 0
                else:
                    position, inner = self.index.locate(offset)
                continue
            chunk = self._copy(cursor, inner, remaining)
            chunks.append(chunk)
            remaining -= len(chunk)
            inner += len(chunk)
            if inner >= length:
                position, inner = position + 1, 0
        data = b"".join(chunks)
        cursor.next_offset, cursor.position, cursor.inner = offset + len(data), position, inner
        return data

    def _copy(self, cursor: Cursor, inner: int, limit: int) -> bytes:
        if inner < cursor.data_size:
            return os.pread(cursor.fd, min(limit, cursor.data_size - inner), inner)
        return b"\n"

    def _open(self, cursor: Cursor, position: int) -> None:
        """Point the cursor's descriptor at the decoded object of ``position``."""
        if cursor.fd_position == position:
            return
        cursor.close()
        span = self.index.spans[position]
        entry = self.catalog.by_key[span.key]
        cached, length = self._decode(entry)
        adds_newline = length > cached.size
        self.index.correct(position, length, exact=True, etag=cached.etag)
        cursor.fd = os.open(cached.path, os.O_RDONLY | os.O_CLOEXEC)
        cursor.fd_position, cursor.data_size, cursor.adds_newline = position, cached.size, adds_newline

    def _read_ahead(self, start: int) -> None:
        self._last_read_ahead = time.monotonic()
        for position in range(start, min(start + self.prefetch, len(self.index))):
            span = self.index.spans[position]
            entry = self.catalog.by_key[span.key]
            token = (entry.key, entry.info.etag)
            with self._lock:
                if token in self._scheduled:
                    continue
                self._scheduled.add(token)
            self._fetch_pool.submit(self._prefetch_one, position, entry)

    def exact_length(self, position: int) -> int:
        """The exact stream length of the object at ``position``, decoding it if needed."""
        span = self.index.spans[position]
        if not span.exact:
            self._make_exact(position, self.catalog.by_key[span.key])
        return self.index.spans[position].length

    def _make_exact(self, position: int, entry: Entry) -> None:
        """Decode the entry into the cache and give its span the exact length."""
        span = self._exact_span(entry)
        self.index.correct(position, span.length, True, span.etag)

    def _prefetch_one(self, position: int, entry: Entry) -> None:
        try:
            self._make_exact(position, entry)
        except S3LogFSError as error:
            log.warning("read-ahead of %s failed: %s", entry.key, error)
            with self._lock:
                self._scheduled.discard((entry.key, entry.info.etag))

    def close(self) -> None:
        self._closed.set()
        self._batches.shutdown(wait=False, cancel_futures=True)
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        self._fetch_pool.shutdown(wait=False, cancel_futures=True)
        self.index.save()


def _tail_positions(spans: list[Span]) -> list[int]:
    """The inexact spans among the last ``TAIL_EXACT_OBJECTS`` or ``TAIL_EXACT_BYTES`` of a batch."""
    chosen: list[int] = []
    covered = 0
    for position in range(len(spans) - 1, -1, -1):
        if len(chosen) >= TAIL_EXACT_OBJECTS or covered >= TAIL_EXACT_BYTES:
            break
        covered += spans[position].length
        if not spans[position].exact:
            chosen.append(position)
    return chosen


def _looks_multi_member(estimate: int, stored_size: int, limit: int | None) -> bool:
    """Whether a gzip estimate is suspect (and the object within ``limit`` stored bytes).

    The trailer gives the last member's size only. Log text compresses 3-10x, so a trailer
    size under 1.5x the whole stored size means several members (CloudWatch deliveries
    through Firehose) or a tiny object: both are cheaper to decode now than to correct
    later. A plain object's estimate is its stored size, which is not suspect.
    """
    if estimate == stored_size or (limit is not None and stored_size > limit):
        return False
    return estimate < 1.5 * stored_size

