"""The ``stream`` file: every object decoded and concatenated, with read-ahead and follow.

How a read finds its bytes
    A read at offset X asks the :class:`~s3logfs.engine.index.StreamIndex` which object spans
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
    size. Downloads are single-flight (:class:`~s3logfs.engine.fetcher.ObjectFetcher`), so a
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
from collections.abc import MutableSequence, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import CodecError, ObjectNotFound, S3Error, S3LogFSError
from .cache import CachedObject
from .catalog import Catalog, Entry
from .codecs import GZIP
from .fetcher import looks_gzip_named
from .index import LazySpans, Span, StreamIndex
from .stats import Stats

log = logging.getLogger(__name__)

PROBE_WORKERS = 8
"""Parallel gzip trailer probes after mounting: each is one 4-byte ranged GET. Fewer than the
read-ahead's workers, so probes never crowd out a reader."""
READER_QUIET_SECONDS = 1.0
"""Background trailer probes wait while a sequential reader was active this recently: its
read-ahead makes the same objects exact, and on a busy server probes would only slow it."""
PROBE_TAIL_OBJECTS = 1000
"""Background trailer probes after mounting cover at most the stream's last this many objects of
unknown size, where ``tail`` and followers read; a saved index's lengths count as known. So a
mount costs at most this many probe GETs however large the prefix, and a remount none."""
PROBE_NEAR_OBJECTS = 32
"""A read that jumps (``less`` to a percentage, a seek) probes this many objects of unknown size
around where it landed, so the reads after it are placed right."""
MULTI_MEMBER_DECODE_LIMIT = 1 << 20
TAIL_EXACT_OBJECTS = 16
TAIL_EXACT_BYTES = 64 * 1024
"""At mount time, the estimates of the last objects (up to this many, or this many bytes)
are settled: ``tail -n`` seeks from ``st_size`` and reads backwards, so the end of the
stream must not move under it when an estimate is corrected."""


@dataclass
class ReadPosition:
    """Where a handle's next sequential read continues."""

    next_offset: int = -1
    position: int = 0
    inner: int = 0
    fd: int = -1
    fd_position: int = -1
    data_size: int = 0
    adds_newline: bool = False
    ahead_from: int = 0
    ahead_to: int = 0
    """The positions ``[ahead_from, ahead_to)`` this reader has already handed to the read-ahead."""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.fd_position = -1, -1


class StreamReader:
    """Serves the bytes of ``stream`` from the catalog, the index and the cache."""

    def __init__(self, catalog: Catalog, index: StreamIndex, stats: Stats, prefetch: int, skip_errors: bool = False,
                 size_ahead: bool = True) -> None:
        """``skip_errors`` (``--skip-errors``): an object that cannot be read is left out of the
        stream (its span becomes 0 bytes, exact), logged and counted, instead of giving EIO.

        ``size_ahead`` sizes the stream's last objects before it answers and probes the others
        in the background, for readers that seek (``tail -n``, ``ls -l``): the mount. A reader
        that goes front to back (``cat``, ``LogStream``) sizes each object as it reads it, and
        fetches nothing it will not read."""
        self.size_ahead = size_ahead
        self.catalog = catalog
        self.stats = stats
        self.index = index
        self.prefetch = prefetch
        self.skip_errors = skip_errors
        self._skipped: set[tuple[str, str]] = set()
        self.ready = threading.Event()
        self._saved = index.load_saved_spans()
        self._fetch_pool = ThreadPoolExecutor(max(1, prefetch, TAIL_EXACT_OBJECTS), thread_name_prefix="s3logfs-fetch")
        self._batches = ThreadPoolExecutor(1, thread_name_prefix="s3logfs-index")
        self._probe_pool = ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="s3logfs-probe")
        self._scheduled: set[tuple[str, str]] = set()
        self._probed: set[str] = set()
        self._lock = threading.Lock()
        self._batch_count = 0
        self._last_read_ahead = 0.0
        self._closed = threading.Event()

    def saved_order(self) -> list[str]:
        """Keys in the order a previous mount with this cache streamed them."""
        return list(self._saved)

    # building the index ---------------------------------------------------------

    def on_added(self, entries: Sequence[Entry]) -> None:
        """Catalog listener: size a batch of new entries and append it, in order."""
        first = self._batch_count == 0
        self._batch_count += 1
        try:
            self._batches.submit(self._append_batch, entries, first)
        except RuntimeError:  # closed: unmounted while the listing ran
            log.debug("unmounted: %d listed object(s) dropped", len(entries))

    def _append_batch(self, entries: Sequence[Entry], first: bool) -> None:
        try:
            spans: MutableSequence[Span]
            if first:  # made as the index takes them in: a list would hold a span and a key per listed object
                spans = LazySpans(entries, self._known_span)
                if self.size_ahead:
                    self._settle_tail(entries, spans)
            elif self.size_ahead:  # decoded first, so st_size only grows by bytes really there
                spans = list(self._fetch_pool.map(self._settle, entries))
            else:  # a front-to-back reader sizes each object as it reads it, and fetches no other
                spans = [self._known_span(entry) for entry in entries]
            start = len(self.index)
            self.index.append(spans)
            self.ready.set()  # before saving: writing 10,000 spans takes a tenth of a second
            if first and self.size_ahead:
                self._probe_in_background(start, entries, spans)
            del spans  # a span (and a key) per listed object: freed before the save, which takes a while
            self.index.save()
        except RuntimeError as error:
            if not self._closed.is_set():
                raise
            # unmounted meanwhile: its pools refuse new work, which is no fault
            log.debug("unmounted while adding %d listed object(s): %s", len(entries), error)
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

    def _settle_tail(self, entries: Sequence[Entry], spans: MutableSequence[Span]) -> None:
        """Size the stream's last objects before ``stream`` answers, so ``tail -n`` is exact.

        A gzip trailer that looks single-member is exact. Other small objects are decoded:
        a whole small GET costs what a probe costs, and warms the cache for ``tail``. A
        large one is sniffed: plain is exact but for a final newline.
        """

        def settle(position: int) -> Span:
            entry = entries[position]
            if self.catalog.transforms:  # --records: no probe sizes the lines, decoding does
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

    def _probe_in_background(self, start: int, entries: Sequence[Entry], spans: Sequence[Span]) -> None:
        """Read the gzip trailers of the last ``PROBE_TAIL_OBJECTS`` unknown objects, last first,
        while no reader is active.

        Until its probe lands, a gzip object counts as empty, and a trailer gives at most
        the decoded size (the last member's), so ``st_size`` only grows. Objects a reader
        fetched meanwhile are exact already and cost no probe; reading backwards from the
        end meets a forward reader half way instead of racing it. Lengths a previous mount
        saved are kept, not probed again; objects further back are probed when a reader
        jumps near them (:meth:`_probe_near`), or made exact when read.
        """
        self._last_read_ahead = time.monotonic()  # a reader waiting for the stream to answer goes first
        budget = PROBE_TAIL_OBJECTS
        for offset in range(len(entries) - 1, -1, -1):
            if budget == 0:
                break
            if self._needs_probe(entries[offset], spans, offset):
                self._submit_probe(start + offset, entries[offset])
                budget -= 1

    def _needs_probe(self, entry: Entry, spans: Sequence[Span], position: int) -> bool:
        """Whether only a trailer probe can size this entry (a gzip name, nothing known of it).

        The span at ``position`` is decoded last: the mount's first batch asks this of
        every key of a prefix that holds no gzip.
        """
        if entry.size is not None or not looks_gzip_named(entry.key) or spans[position].exact:
            return False
        saved = self._saved.get(entry.key)
        return saved is None or saved.etag != entry.info.etag or (not saved.exact and saved.length == 0)

    def _submit_probe(self, position: int, entry: Entry) -> None:
        with self._lock:
            if entry.key in self._probed:
                return
            self._probed.add(entry.key)
        self._probe_pool.submit(self._probe_one, position, entry)

    def _probe_near(self, position: int) -> None:
        """Probe the unknown objects around where a jumping reader landed."""
        first = max(0, position - PROBE_NEAR_OBJECTS // 2)
        for nearby in range(first, min(len(self.index), first + PROBE_NEAR_OBJECTS)):
            entry = self.catalog.by_key[self.index.spans[nearby].key]
            if self._needs_probe(entry, self.index.spans, nearby):
                self._submit_probe(nearby, entry)

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
            if self._skips(error):
                self._note_skip(entry, error)
                return Span(entry.key, entry.info.etag, 0, True)
            log.warning("cannot read new object %s: %s", entry.key, error)
            return Span(entry.key, entry.info.etag, entry.info.size, False)

    def _exact_span(self, entry: Entry) -> Span:
        cached, length = self._decode(entry)
        return Span(entry.key, cached.etag, length, True)

    def _decode(self, entry: Entry) -> tuple[CachedObject, int]:
        """The entry's decoded content on disk, and its exact length in the stream."""
        cached = self.catalog.materialize(entry)
        return cached, cached.stream_length

    # reading ----------------------------------------------------------------------

    def size(self) -> int:
        self.ready.wait()
        return self.index.total()

    def read(self, cursor: ReadPosition, offset: int, size: int, read_ahead: bool = True) -> bytes:
        """Up to ``size`` bytes at ``offset``; a sequential read (or one from 0) reads ahead unless told not to."""
        self.ready.wait()
        sequential = offset == cursor.next_offset
        if sequential:
            position, inner = cursor.position, cursor.inner
        else:
            position, inner = self.index.locate(offset)
            if offset:  # a read from 0 reads ahead instead
                self._probe_near(position)
        read_ahead = read_ahead and (sequential or offset == 0)
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0 and position < len(self.index):
            if read_ahead and cursor.fd_position != position:
                self._read_ahead(cursor, position + 1)
            try:
                self._open(cursor, position)
            except S3LogFSError:
                if not chunks:
                    raise
                break  # a short read up to the object that fails; the next read gets the error
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

    def place_before(self, cursor: ReadPosition, back: int) -> tuple[int, int]:
        """``(position, inner)`` of the place ``back`` bytes before where ``cursor`` stands.

        Counted through the spans the cursor has just read, which are exact, so a correction
        of an estimate elsewhere in the stream cannot move it (a stream offset would move).
        A place at an object's very end is given as that object's length, not the next start.
        """
        position, inner = cursor.position, cursor.inner
        while position > 0 and back >= inner:  # at or before this object's start: into the one before
            back -= inner
            position -= 1
            inner = self.index.spans[position].length
        return position, max(0, inner - back)

    def _copy(self, cursor: ReadPosition, inner: int, limit: int) -> bytes:
        if inner < cursor.data_size:
            return os.pread(cursor.fd, min(limit, cursor.data_size - inner), inner)
        return b"\n"

    def _open(self, cursor: ReadPosition, position: int) -> None:
        """Point the cursor's descriptor at the decoded object of ``position``."""
        if cursor.fd_position == position:
            return
        cursor.close()
        span = self.index.spans[position]
        entry = self.catalog.by_key[span.key]
        decoded = self._decode_or_skip(position, entry)
        if decoded is None:  # skipped: an empty object, which the read loop steps over
            cursor.fd_position, cursor.data_size, cursor.adds_newline = position, 0, False
            return
        cached, length = decoded
        cached, cursor.fd = self.catalog.open_decoded(entry, cached)  # fetched again if evicted since
        adds_newline = length > cached.size
        self.index.correct(position, length, exact=True, etag=cached.etag)
        cursor.fd_position, cursor.data_size, cursor.adds_newline = position, cached.size, adds_newline

    def _decode_or_skip(self, position: int, entry: Entry) -> tuple[CachedObject, int] | None:
        """As :meth:`_decode`; None for an object that ``skip_errors`` leaves out (its span is then 0, exact).

        A skipped object stays skipped for the mount, so ``stat`` and reads keep agreeing.
        """
        if (entry.key, entry.info.etag) in self._skipped:
            self.index.correct(position, 0, exact=True)
            return None
        try:
            return self._decode(entry)
        except S3LogFSError as error:
            if not self._skips(error):
                raise
            self._note_skip(entry, error)
            self.index.correct(position, 0, exact=True)
            return None

    def _skips(self, error: S3LogFSError) -> bool:
        """Whether ``skip_errors`` leaves an object out for ``error``.

        A missing object, a corrupt one and one that failed after every retry are skipped.
        Denied access is not (expired credentials would silently empty the stream), nor is an
        object replaced while it was read (reading it again gets the new one).
        """
        return self.skip_errors and isinstance(error, (ObjectNotFound, CodecError, S3Error))

    def _note_skip(self, entry: Entry, error: S3LogFSError) -> None:
        """Log and count a skipped object, once per object version."""
        with self._lock:
            if (entry.key, entry.info.etag) in self._skipped:
                return
            self._skipped.add((entry.key, entry.info.etag))
        self.stats.add(skips=1)
        log.warning("skipped s3://%s/%s in the stream (--skip-errors): %s", self.catalog.bucket,
                    entry.key, error)

    def _read_ahead(self, cursor: ReadPosition, start: int) -> None:
        """Hand the ``prefetch`` positions from ``start`` to the read-ahead.

        A sequential reader moves its window one object at a time, so only the positions
        new to the window are handed over: one per object, not ``prefetch`` (each costs a
        span and a key decoded from the compact index). A read-ahead that failed is not
        handed over again; the reader fetches that object itself when it gets there.
        """
        end = min(start + self.prefetch, len(self.index))
        first = max(start, cursor.ahead_to) if cursor.ahead_from <= start <= cursor.ahead_to else start
        for position in range(first, end):
            self.prefetch_position(position)
        cursor.ahead_from, cursor.ahead_to = start, max(end, first)

    def prefetch_position(self, position: int) -> None:
        """Fetch and decode the object at ``position`` in the background, once."""
        self._last_read_ahead = time.monotonic()
        span = self.index.spans[position]
        entry = self.catalog.by_key[span.key]
        token = (entry.key, entry.info.etag)
        with self._lock:
            if token in self._scheduled:
                return
            self._scheduled.add(token)
        self._fetch_pool.submit(self._prefetch_one, position, entry)

    def open_object(self, position: int) -> tuple[CachedObject, int] | None:
        """The decoded object at ``position`` (fetched if needed) and a descriptor on it; its span becomes exact.

        The descriptor pins that version: an eviction or a replacement meanwhile cannot change
        what it reads. None when ``skip_errors`` leaves the object out (logged and counted, as
        in :meth:`read`).
        """
        entry = self.catalog.by_key[self.index.spans[position].key]
        decoded = self._decode_or_skip(position, entry)
        if decoded is None:
            return None
        cached, fd = self.catalog.open_decoded(entry, decoded[0])
        self.index.correct(position, cached.stream_length, exact=True, etag=cached.etag)
        return cached, fd

    def exact_length(self, position: int) -> int:
        """The exact stream length of the object at ``position``, decoding it if needed."""
        span = self.index.spans[position]
        if not span.exact:
            self._make_exact(position, self.catalog.by_key[span.key])
        return self.index.spans[position].length

    def _make_exact(self, position: int, entry: Entry) -> None:
        """Decode the entry into the cache and give its span the exact length (0 if skipped)."""
        decoded = self._decode_or_skip(position, entry)
        if decoded is not None:
            cached, length = decoded
            self.index.correct(position, length, True, cached.etag)

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


def _tail_positions(spans: Sequence[Span]) -> list[int]:
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

