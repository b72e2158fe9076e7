"""The catalog: which objects the mount shows, in stream order, and the poller.

At mount time the keys under the prefix come in lexicographic order. Keys found later
are appended, even when they sort before keys already seen, so the order never changes
during a mount (README, "The stream"). Each entry carries the object's listing record and its
decoded size once known. A front end that shows keys as files (the mount's tree) hears of
each key as it enters, in order (:meth:`Catalog.on_new_key`). Entries are kept in
columns (see :class:`_Columns`), so that a million listed keys stay small in memory.

The poller runs every ``poll_interval`` seconds:

* While the prefix fits in one listing page (1,000 keys), a full listing costs the same
  single request as an incremental one, so every poll lists everything: keys that sort
  earlier and objects replaced in place show up at the next poll.
* Beyond that, each poll lists only new keys with ListObjectsV2 ``StartAfter``, once per
  top-level folder below the prefix (AWS writes each source under its own folder, in
  time order), and every ``full_relist_every`` polls it lists the whole prefix again.

Under a time window (``--since``/``--until``) the mount-time listing and the polls go
through :class:`~s3logfs.engine.window_listing.WindowLister`, which lists only the folders and key
ranges that can hold the window. A poll then looks at the last ``POLL_LOOKBACK`` seconds
from where the mount is (today's or this hour's folders, and yesterday's just after
midnight); every ``full_relist_every`` polls it looks ``RESCAN_LOOKBACK`` back in full,
for late deliveries and new folders. Once ``--until`` has passed nothing is polled.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from ..errors import EndpointUnreachable, S3LogFSError
from .cache import CachedObject
from .fetcher import UNKNOWN, ObjectFetcher, SizeProbe
from .keystore import EtagColumn, ItemView, KeyPositions, KeyStore
from .s3 import ObjectInfo, S3Client
from .stats import Stats
from .window import UTC, Window
from .window_listing import WindowLister

log = logging.getLogger(__name__)

_LISTING_PAGE = 1000
"""Keys per page of a listing (S3's default): how many pages a full listing costs."""
_STOP_CHECK_SECONDS = 0.2
_MAX_FOLDERS_PER_POLL = 16
"""Above this many top-level folders, an incremental poll is one listing after the greatest key."""
POLL_LOOKBACK = 3600.0
"""Seconds of key time a windowed poll looks back: AWS delivers most logs within minutes."""
RESCAN_LOOKBACK = 86400.0
"""Seconds a windowed full poll looks back: CloudFront delivers late lines up to a day late."""
_NO_SIZE = -1
_MAX_POLL_BACKOFF = 60.0
"""While polls fail (the endpoint gone, access denied), the poller waits twice as long after each
failure, up to 8 poll intervals or this many seconds: the log gets one line when following pauses and
one when it resumes, and S3 is not hammered meanwhile."""


class _Columns:
    """Every entry's fields, one typed array (or list) per field, position by position.

    A mount holds one entry per listed key, a million on a large prefix: as objects (an
    entry, its listing record, an ETag string, boxed sizes and times) they cost about 350
    bytes a key; in columns about 50, beside the key itself. :class:`Entry` is a view of
    one position, made on demand. Writes happen under the catalog's lock; a reader never
    sees a position before its key is in (the key goes in last).
    """

    def __init__(self, lock: threading.RLock, keys: KeyStore) -> None:
        self.lock = lock
        self.positions = KeyPositions(keys)
        self.stored_sizes = array("q")
        self.etags = EtagColumn()
        self.modified = array("d")
        self.confirmed = array("d")
        self.decoded_sizes = array("q")
        """The decoded size, or ``_NO_SIZE`` while unknown."""
        self.exact = bytearray()
        self.encodings = bytearray()
        self.encoding_names: list[str | None] = [None]
        """What each code of ``encodings`` stands for: a handful of codec names."""

    def __len__(self) -> int:
        return len(self.positions)

    def append(self, info: ObjectInfo, confirmed_at: float, key_id: int) -> int:
        """Add an entry for ``info``, whose key has ``key_id`` (from ``positions.new_key_id``)."""
        self.stored_sizes.append(info.size)
        self.etags.append(info.etag)
        self.modified.append(info.last_modified)
        self.confirmed.append(confirmed_at)
        self.decoded_sizes.append(_NO_SIZE)
        self.exact.append(False)
        self.encodings.append(0)
        return self.positions.append_id(key_id)

    def info(self, position: int, key: str) -> ObjectInfo:
        with self.lock:  # the fields of one listing record, not half of a replacement's
            return ObjectInfo(key, self.stored_sizes[position], self.etags[position], self.modified[position])

    def set_info(self, position: int, info: ObjectInfo) -> None:
        with self.lock:
            self.stored_sizes[position] = info.size
            self.etags[position] = info.etag
            self.modified[position] = info.last_modified

    def encoding_code(self, encoding: str | None) -> int:
        with self.lock:
            if encoding not in self.encoding_names:
                self.encoding_names.append(encoding)
            return self.encoding_names.index(encoding)


class Entry:
    """One object of the mount: a view of the catalog's columns at ``index``, made on demand.

    Two views of the same position are equal. Mutable fields are guarded by the catalog's lock.
    """

    __slots__ = ("_columns", "index", "_key")

    def __init__(self, columns: _Columns, index: int, key: str | None = None) -> None:
        self._columns = columns
        self.index = index
        self._key: str | None = key
        """The key once decoded: a position's key never changes, and a view is asked for it often."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other._columns is self._columns and other.index == self.index

    def __hash__(self) -> int:
        return hash(self.index)

    def __repr__(self) -> str:
        return f"Entry({self.index}, {self.key!r})"

    @property
    def key(self) -> str:
        key = self._key
        if key is None:
            key = self._key = self._columns.positions.key(self.index)
        return key

    @property
    def info(self) -> ObjectInfo:
        """The object's listing record (or its last HEAD's)."""
        return self._columns.info(self.index, self.key)

    @info.setter
    def info(self, info: ObjectInfo) -> None:
        self._columns.set_info(self.index, info)

    @property
    def last_modified(self) -> float:
        """``info.last_modified``, without the key decoded for the whole record."""
        return self._columns.modified[self.index]

    @property
    def size(self) -> int | None:
        """The decoded size, once known."""
        size = self._columns.decoded_sizes[self.index]
        return None if size == _NO_SIZE else size

    @size.setter
    def size(self, size: int | None) -> None:
        self._columns.decoded_sizes[self.index] = _NO_SIZE if size is None else size

    @property
    def size_exact(self) -> bool:
        return bool(self._columns.exact[self.index])

    @size_exact.setter
    def size_exact(self, exact: bool) -> None:
        self._columns.exact[self.index] = exact

    @property
    def encoding(self) -> str | None:
        return self._columns.encoding_names[self._columns.encodings[self.index]]

    @encoding.setter
    def encoding(self, encoding: str | None) -> None:
        self._columns.encodings[self.index] = self._columns.encoding_code(encoding)

    @property
    def confirmed_at(self) -> float:
        """When a listing or HEAD last showed this version (``time.monotonic()``)."""
        return self._columns.confirmed[self.index]

    @confirmed_at.setter
    def confirmed_at(self, when: float) -> None:
        self._columns.confirmed[self.index] = when


Listener = Callable[[Sequence[Entry]], None]
KeyListener = Callable[[str, float], object]


class _EntryList(ItemView[Entry]):
    """The catalog's entries in stream order, as views made on demand; the first ``length`` only, if given.

    Listeners get the mount-time listing this way: a list of a million entry views would
    cost 60 MB while the stream's index is built from it.
    """

    def __init__(self, columns: _Columns, length: int | None = None) -> None:
        self._columns = columns
        self._length = length

    def __len__(self) -> int:
        return len(self._columns) if self._length is None else self._length

    def _item(self, index: int) -> Entry:
        return Entry(self._columns, index)


class EntriesByKey(Mapping[str, Entry]):
    """The catalog's entries by key: a read-only view over a compact key table, not a ``dict``."""

    def __init__(self, columns: _Columns) -> None:
        self._columns = columns

    def __getitem__(self, key: str) -> Entry:
        position = self._columns.positions.get(key)
        if position is None:
            raise KeyError(key)
        return Entry(self._columns, position)

    def get(self, key: str, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        position = self._columns.positions.get(key)
        return default if position is None else Entry(self._columns, position)

    def __contains__(self, key: object) -> bool:
        return key in self._columns.positions

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns.positions.iter_keys())

    def __len__(self) -> int:
        return len(self._columns)


class Catalog:
    """Every object under the prefix, in stream order."""

    def __init__(
        self,
        client: S3Client,
        fetcher: ObjectFetcher,
        prefix: str,
        keys: KeyStore,
        stats: Stats,
        poll_interval: float = 10.0,
        full_relist_every: int = 6,
        window: Window | None = None,
    ) -> None:
        self.fetcher = fetcher
        self._client = client
        self.prefix = prefix
        self.keys = keys
        """The interned keys, shared with the index (and a front end's tree)."""
        self.stats = stats
        self.poll_interval = poll_interval
        self.full_relist_every = max(1, full_relist_every)
        self.window = window
        self._lister = WindowLister(client, prefix) if window is not None else None
        self._lock = threading.RLock()
        self._columns = _Columns(self._lock, keys)
        self.entries: Sequence[Entry] = _EntryList(self._columns)
        self.by_key: Mapping[str, Entry] = EntriesByKey(self._columns)
        self.greatest_key = ""
        self.mtime = time.time()
        self._listeners: list[Listener] = []
        self._key_listeners: list[KeyListener] = []
        self._probe_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._polls = 0
        self._full_listing_pages = 1
        self.loaded = threading.Event()
        """Set once the mount-time listing is in, or has failed: the catalog then holds all it will."""
        self._grew = threading.Condition(self._lock)

    def entry_of_key_id(self, key_id: int, key: str | None = None) -> Entry:
        """The entry of the key interned as ``key_id`` in :attr:`keys` (``key``, if the caller
        has it decoded already): ``by_key`` without the key decoded and compared. KeyError if
        the catalog does not hold it."""
        position = self._columns.positions.position_of_id(key_id)
        if position is None:
            raise KeyError(key_id)
        return Entry(self._columns, position, key)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with each batch of new entries, in stream order."""
        self._listeners.append(listener)

    def on_new_key(self, listener: KeyListener) -> None:
        """Call ``listener(key, last_modified)`` for each key as it enters, in stream order, under the
        catalog's lock: before any reader can see its entry, and page by page while the listing loads."""
        self._key_listeners.append(listener)

    def load(self, known_order: Sequence[str] = ()) -> None:
        """List the prefix; keys of ``known_order`` (a persisted order) come first, in that order.

        Without a persisted order the stream order is the listing's, so each page enters
        the tree as it arrives: ``ls`` can work through the first pages while later ones
        load. With one (a remount with the same cache), the tree fills once the whole
        listing is in. Listeners get the whole listing as one batch. If the listing
        breaks half way, the mount keeps what came; the poller lists on from there.
        Under a window the stream order is the window's key order: ``known_order`` is
        the order of another window, or of the whole prefix.
        """
        try:
            if known_order and self.window is None:
                listed = {info.key: info for info in self._full_listing()}
                ordered = [listed.pop(key) for key in known_order if key in listed]
                self._add(ordered + sorted(listed.values(), key=lambda info: info.key), notify=False)
            else:
                self._add_pages()
        finally:
            with self._lock:
                listed_entries = _EntryList(self._columns, len(self._columns))
            self._note_listing_size(len(listed_entries))
            try:
                for listener in self._listeners:  # even with no entries: the stream is then empty, not pending
                    listener(listed_entries)
            finally:
                with self._grew:
                    self.loaded.set()
                    self._grew.notify_all()

    def _add_pages(self) -> None:
        if self._lister is not None and self.window is not None:
            pages = self._lister.pages(self.window, time.time())
        else:
            pages = self._client.list_pages(self.prefix)
        try:
            for page in pages:
                self._add(page, notify=False)
                if self._stop.is_set():  # unmounted while listing
                    return
        finally:
            pages.close()

    def wait_for_more(self, seen: int) -> None:
        """Block until the catalog holds more than ``seen`` entries, or the listing is in."""
        with self._grew:
            self._grew.wait_for(lambda: len(self.entries) > seen or self.loaded.is_set())

    def _add(self, infos: list[ObjectInfo], notify: bool = True) -> list[Entry]:
        now = time.monotonic()
        added: list[Entry] = []
        with self._lock:
            for info in infos:
                key_id = self._columns.positions.new_key_id(info.key)
                if key_id is None:  # listed already
                    continue
                for key_listener in self._key_listeners:
                    key_listener(info.key, info.last_modified)
                added.append(Entry(self._columns, self._columns.append(info, now, key_id)))
                self.greatest_key = max(self.greatest_key, info.key)
            if added:
                self.mtime = time.time()
                self.stats.set(keys=len(self.entries))
                self._grew.notify_all()
        if self._lister is not None and added:
            self._lister.note_known(entry.key for entry in added)
        if notify and added:
            for listener in self._listeners:
                listener(added)
        return added

    def _full_listing(self) -> list[ObjectInfo]:
        infos = list(self._client.list_objects(self.prefix))
        self._note_listing_size(len(infos))
        return infos

    def _note_listing_size(self, keys: int) -> None:
        """Remember how many pages a full listing costs: the poller relists in full while it is one."""
        self._full_listing_pages = max(1, -(-keys // _LISTING_PAGE))

    def _folder_starts(self) -> dict[str, str]:
        """Each top-level folder's prefix, and the greatest key seen in it."""
        starts: dict[str, str] = {}
        with self._lock:
            for key in self.by_key:
                folder, slash, _ = key[len(self.prefix) :].partition("/")
                group = f"{self.prefix}{folder}/" if slash else self.prefix
                starts[group] = max(starts.get(group, ""), key)
        if len(starts) > _MAX_FOLDERS_PER_POLL:
            return {self.prefix: self.greatest_key}
        starts.setdefault(self.prefix, self.greatest_key)
        starts[self.prefix] = self.greatest_key  # also catches new folders that sort last
        return starts

    def poll_once(self) -> list[Entry]:
        """One round of the poller. Returns the entries it added."""
        self._polls += 1
        if self.window is not None:
            return self._poll_window()
        if self._full_listing_pages <= 1 or self._polls % self.full_relist_every == 0:
            infos = self._full_listing()
            self._refresh_known(infos)
        else:
            infos = []
            for group, start_after in self._folder_starts().items():
                infos.extend(self._client.list_objects(group, start_after=start_after or None))
        added = self._add([info for info in infos if info.key not in self.by_key])
        if added:
            log.info("found %d new object(s), last %s", len(added), added[-1].key)
        return added

    def _poll_window(self) -> list[Entry]:
        """A poll under a window: the last ``POLL_LOOKBACK`` seconds from the known keys on."""
        assert self.window is not None and self._lister is not None
        now = time.time()
        if self.window_closed(now):
            return []
        full = self._polls % self.full_relist_every == 0
        since = max(self.window.start, now - (RESCAN_LOOKBACK if full else POLL_LOOKBACK))
        recent = Window(datetime.fromtimestamp(since, UTC), self.window.until)
        infos = [info for page in self._lister.pages(recent, now, resume=not full) for info in page]
        if full:
            self._refresh_known(infos)
        added = self._add([info for info in infos if info.key not in self.by_key])
        if added:
            log.info("found %d new object(s) in the window, last %s", len(added), added[-1].key)
        return added

    def window_closed(self, now: float) -> bool:
        """Whether ``--until`` has passed: no new object can fall in the window any more."""
        return self.window is not None and self.window.end <= now

    def _refresh_known(self, infos: list[ObjectInfo]) -> None:
        now = time.monotonic()
        with self._lock:
            for info in infos:
                entry = self.by_key.get(info.key)
                if entry is not None:
                    self._update(entry, info, now)

    def _update(self, entry: Entry, info: ObjectInfo, now: float) -> None:
        """Record a fresh listing or HEAD of an entry's object (caller holds the lock)."""
        entry.confirmed_at = now
        if info.etag != entry.info.etag or info.size != entry.info.size:
            log.info("s3://%s/%s was replaced (ETag %s)", self.fetcher.bucket, info.key, info.etag)
            entry.info = info
            entry.size, entry.size_exact, entry.encoding = None, False, None

    def revalidate(self, entry: Entry, max_age: float) -> None:
        """HEAD the object if its listing is older than ``max_age`` seconds."""
        if time.monotonic() - entry.confirmed_at <= max_age:
            return
        try:
            info = self._client.head(entry.key)
        except EndpointUnreachable as error:  # what the cache holds still reads; an uncached object fails later
            log.debug("cannot revalidate %s: %s", entry.key, error)
            return
        with self._lock:
            self._update(entry, info, time.monotonic())

    @property
    def bucket(self) -> str:
        return self.fetcher.bucket

    @property
    def transforms(self) -> bool:
        """Whether decoded content is records' lines (``--records``), which no probe sizes exactly."""
        return self.fetcher.transforms

    def cached(self, entry: Entry) -> CachedObject | None:
        """The entry's decoded content if it is in the cache (no request)."""
        return self.fetcher.cached(entry.info)

    def cache_path(self, entry: Entry) -> Path:
        """Where the entry's decoded content is (or would be) cached: s3tail's ``key_handler`` path."""
        return self.fetcher.cache_path(entry.key)

    def open_decoded(self, entry: Entry, cached: CachedObject | None = None) -> tuple[CachedObject, int]:
        """A descriptor on the entry's decoded content, fetched again if it left the cache meanwhile.

        Every reader of decoded content opens it here, never by a cache path, so an
        eviction (another process sharing the cache) cannot race it.
        """
        return self.fetcher.open(entry.info, cached if cached is not None else self.materialize(entry))

    def materialize(self, entry: Entry) -> CachedObject:
        """The entry's decoded content on disk; its size becomes exact."""
        cached = self.fetcher.materialize(entry.info)
        with self._lock:
            if cached.etag == entry.info.etag:
                entry.size, entry.size_exact, entry.encoding = cached.size, True, cached.encoding
        return cached

    def decoded_size(self, entry: Entry, sniff: bool = False) -> tuple[int, bool]:
        """The entry's decoded size, probing S3 at most once per object version.

        ``sniff`` asks for the content's first bytes when the listing alone sized it.
        """

        def known() -> bool:
            return entry.size is not None and not (sniff and entry.encoding == UNKNOWN)

        if known():
            assert entry.size is not None
            return entry.size, entry.size_exact
        with self._lock:
            lock = self._probe_locks.setdefault(entry.key, threading.Lock())
        with lock:
            if not known():
                info = entry.info
                self._note_probe(entry, info, self.fetcher.probe_size(info, sniff))
            assert entry.size is not None
            return entry.size, entry.size_exact

    def local_size(self, entry: Entry) -> int | None:
        """The size :meth:`decoded_size` gives, or None where finding it out needs a request to S3."""
        if entry.size is None:
            info = entry.info
            probe = self.fetcher.local_size(info)
            if probe is None:
                return None
            self._note_probe(entry, info, probe)
        return entry.size

    def _note_probe(self, entry: Entry, info: ObjectInfo, probe: SizeProbe) -> None:
        with self._lock:  # a read may have made the size exact while the probe ran
            if not entry.size_exact and entry.info == info:  # not replaced meanwhile
                entry.size, entry.size_exact, entry.encoding = probe.size, probe.exact, probe.encoding

    def start(self) -> None:
        """Start the poller thread (after daemonizing: never before a fork); none once ``--until`` has passed."""
        if self.poll_interval > 0 and self._thread is None and not self.window_closed(time.time()):
            self._thread = threading.Thread(target=self._run, name="s3logfs-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.loaded.wait(_STOP_CHECK_SECONDS):  # the mount-time listing first
            if self._stop.is_set():
                return
        delay = self.poll_interval
        failing_since: float | None = None
        while not self._stop.wait(delay) and not self.window_closed(time.time()):
            try:
                self.poll_once()
            except S3LogFSError as error:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("following paused: %s (polling again with backoff)", error)
                else:
                    log.debug("poll failed again: %s", error)
                delay = min(delay * 2, max(self.poll_interval, min(_MAX_POLL_BACKOFF, 8 * self.poll_interval)))
                continue
            except Exception:  # the poller must survive anything a listing throws
                log.exception("poll failed")
                continue
            if failing_since is not None:
                log.warning("following resumed: S3 answers again after %.0f s", time.monotonic() - failing_since)
                failing_since = None
            delay = self.poll_interval
