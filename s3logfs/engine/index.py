"""The stream index: where each object starts in ``stream``, and how sure we are.

Each entry has a stream length: its decoded size, plus one byte when the stream adds a
newline after an object that lacks one. A length is *exact* once the object has been
decoded (it is in the cache); before that it is an *estimate* from cheap probes (see
:meth:`s3logfs.engine.fetcher.ObjectFetcher.probe_size`), which assumes a final newline.

Offsets are prefix sums of lengths, kept in a Fenwick tree: a correction is a point
update and locating an offset is a descent, both O(log n), so correcting thousands of
estimates during one sequential read stays cheap.

The order and the lengths are persisted in the cache directory, keyed by bucket and
prefix, so a remount with the same cache keeps every old key at its old offset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from .keystore import EtagColumn, ItemView, KeyPositions, KeyStore, release_free_memory

log = logging.getLogger(__name__)

T = TypeVar("T")


class Fenwick:
    """Prefix sums over a growing list of non-negative integers."""

    def __init__(self) -> None:
        self._tree = array("q", [0])  # typed arrays: 16 bytes a value, not two int objects and pointers
        self._values = array("q")

    def __len__(self) -> int:
        return len(self._values)

    def append(self, value: int) -> None:
        self._values.append(value)
        index = len(self._values)
        low = index & -index  # the new node sums the values (index - low, index]
        self._tree.append(value + self.prefix(index - 1) - self.prefix(index - low))

    def set(self, position: int, value: int) -> None:
        delta = value - self._values[position]
        self._values[position] = value
        index = position + 1
        while index < len(self._tree):
            self._tree[index] += delta
            index += index & -index

    def value(self, position: int) -> int:
        return self._values[position]

    def values(self) -> array:
        """The values themselves (not a copy)."""
        return self._values

    def prefix(self, count: int) -> int:
        """Sum of the first ``count`` values."""
        total = 0
        while count > 0:
            total += self._tree[count]
            count -= count & -count
        return total

    def total(self) -> int:
        return self.prefix(len(self._values))

    def locate(self, offset: int) -> int:
        """The position whose span holds ``offset``; ``len(self)`` when past the end."""
        position = 0
        remaining = offset
        step = 1 << max(0, len(self._tree).bit_length())
        while step:
            nxt = position + step
            if nxt < len(self._tree) and self._tree[nxt] <= remaining:
                position = nxt
                remaining -= self._tree[nxt]
            step >>= 1
        return position  # the largest position whose prefix sum is <= offset: it holds offset


@dataclass(slots=True)
class Span:
    """One object's place in the stream, as handed in and out: the index keeps it in columns."""

    key: str
    etag: str
    length: int
    exact: bool


class _Spans(ItemView[Span]):
    """The index's spans as :class:`Span` copies made on demand (a change goes through the index)."""

    def __init__(self, index: StreamIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def _item(self, position: int) -> Span:
        return self._index.span(position)


class SavedSpans(Mapping[str, Span]):
    """The spans a previous mount saved, by key, in their order: a compact ``dict[str, Span]``."""

    def __init__(self, keys: KeyStore) -> None:
        self._positions = KeyPositions(keys)
        self._etags = EtagColumn()
        self._lengths = array("q")
        self._exact = bytearray()

    def add(self, span: Span) -> None:
        """Add a span; a key seen already keeps its first span (not while others read)."""
        if self._positions.add(span.key) is not None:
            self._etags.append(span.etag)
            self._lengths.append(span.length)
            self._exact.append(span.exact)

    def __getitem__(self, key: str) -> Span:
        position = self._positions.get(key)
        if position is None:
            raise KeyError(key)
        return Span(key, self._etags[position], self._lengths[position], bool(self._exact[position]))

    def get(self, key: str, default: Span | None = None) -> Span | None:  # type: ignore[override]
        return self[key] if key in self._positions else default

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def __iter__(self) -> Iterator[str]:
        return self._positions.iter_keys()

    def __len__(self) -> int:
        return len(self._positions)


class _SortedKeys(ItemView[str]):
    """Keys in sorted order: by an order of positions, or the positions' own order when it is sorted."""

    def __init__(self, keys: KeyPositions, order: array | None) -> None:
        self._keys = keys
        self._order = order

    def __len__(self) -> int:
        return len(self._keys)

    def _item(self, index: int) -> str:
        return self._keys.key(index if self._order is None else self._order[index])


class LazySpans(MutableSequence[Span]):
    """Spans made from a sequence of items when read, except those set: a batch's spans without
    a list of them.

    The mount-time batch holds every listed key; as a list of spans it costs a ``Span``, a
    key string and an ETag string per key (over 350 bytes) until the index has taken it in.
    """

    def __init__(self, items: Sequence[T], make: Callable[[T], Span]) -> None:
        self._items = items
        self._make = make
        self._set: dict[int, Span] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, position):  # type: ignore[no-untyped-def]  # Sequence's int and slice forms
        if isinstance(position, slice):
            return [self[each] for each in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        span = self._set.get(position)
        return span if span is not None else self._make(self._items[position])

    def __setitem__(self, position, span):  # type: ignore[no-untyped-def]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(position)
        self._set[position] = span

    def __delitem__(self, position):  # type: ignore[no-untyped-def]
        raise TypeError("a batch's spans are never removed")

    def insert(self, index: int, value: Span) -> None:
        raise TypeError("a batch's spans are never inserted")


class _PositionOf(Mapping[str, int]):
    """Key -> position in the stream, over the index's compact key table."""

    def __init__(self, positions: KeyPositions) -> None:
        self._positions = positions

    def __getitem__(self, key: str) -> int:
        position = self._positions.get(key)
        if position is None:
            raise KeyError(key)
        return position

    def get(self, key: str, default: int | None = None) -> int | None:  # type: ignore[override]
        position = self._positions.get(key)
        return default if position is None else position

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions.iter_keys())

    def __len__(self) -> int:
        return len(self._positions)


class StreamIndex:
    """Lengths and offsets of the stream's objects, in stream order. Thread-safe.

    Kept in columns, not one object per span: the keys interned in the store the tree and the
    catalog share (a span's position is its key's id, so nothing is stored for it in a mount),
    the ETags as raw bytes, the lengths in the Fenwick tree's typed arrays and the exact flags
    in a bytearray: about 35 bytes a span. :attr:`spans` and :attr:`position_of` are views.
    """

    def __init__(self, state_file: Path | None, persist: bool = True, keys: KeyStore | None = None) -> None:
        """``state_file`` holds a previous mount's order and lengths; without ``persist`` it is
        only read (a time window's mount takes the known lengths but keeps its own order).
        ``keys`` is where the keys are interned, shared with the tree and the catalog."""
        self.state_file = state_file
        self.persist = persist
        self._positions = KeyPositions(keys)
        self._etags = EtagColumn()
        self._exact = bytearray()
        self._sums = Fenwick()
        self.spans: Sequence[Span] = _Spans(self)
        self.position_of: Mapping[str, int] = _PositionOf(self._positions)
        self._lock = threading.RLock()
        self._dirty = False
        self.mtime = time.time()
        self.changed = threading.Condition(self._lock)

    def __len__(self) -> int:
        return len(self._exact)  # grown last by append: every column holds this many

    def span(self, position: int) -> Span:
        """A copy of the span at ``position``."""
        with self._lock:
            if position < 0:
                position += len(self)
            if not 0 <= position < len(self):
                raise IndexError(position)
            key = self._positions.key(position)
            return Span(key, self._etags[position], self._sums.value(position), bool(self._exact[position]))

    def append(self, spans: Iterable[Span]) -> None:
        added = 0
        with self._lock:
            for span in spans:
                key_id = self._positions.new_key_id(span.key)
                if key_id is None:
                    continue
                self._etags.append(span.etag)
                self._sums.append(span.length)
                self._exact.append(span.exact)
                self._positions.append_id(key_id)
                added += 1
            self._touch()
        release_free_memory(added)  # a mount-time listing's batch: its parsing and the growth are done

    def sorted_keys(self) -> Sequence[str]:
        """The keys in sorted order, for bisection: decoded when read, not a list of strings.

        Only their order is kept (4 bytes a key), and not even that when the stream's order
        is sorted already, as the order of a listing is.
        """
        with self._lock:
            snapshot = self._positions.snapshot()
        previous = None
        for key in snapshot.iter_keys():
            if previous is not None and key < previous:
                return _SortedKeys(snapshot, array("i", sorted(range(len(snapshot)), key=snapshot.key)))
            previous = key
        return _SortedKeys(snapshot, None)

    def correct(self, position: int, length: int, exact: bool = True, etag: str | None = None) -> None:
        """Record a span's real length (it was an estimate, or its object was replaced)."""
        with self._lock:
            span = self.span(position)
            if span.length != length:
                log.debug("stream length of %s corrected: %d -> %d", span.key, span.length, length)
                self._sums.set(position, length)
                self._touch()
            elif span.exact != exact:
                self._dirty = True
            self._exact[position] = exact
            if etag is not None:
                self._etags[position] = etag

    def estimate(self, position: int, length: int) -> None:
        """A better estimate of a span's length; ignored once the span is exact."""
        with self._lock:
            if not self._exact[position]:
                self.correct(position, length, exact=False)

    def _touch(self) -> None:
        self._dirty = True
        self.mtime = time.time()
        self.changed.notify_all()

    def total(self) -> int:
        with self._lock:
            return self._sums.total()

    def start(self, position: int) -> int:
        with self._lock:
            return self._sums.prefix(position)

    def locate(self, offset: int) -> tuple[int, int]:
        """``(position, offset within that span)`` for a stream offset; position may be len().

        An offset at a span's start belongs to the first of the empty spans just before it:
        an object estimated at 0 bytes (a gzip whose trailer is not read yet) may hold data,
        and a read from there must not skip it.
        """
        with self._lock:
            position = self._sums.locate(offset)
            inner = offset - self._sums.prefix(position)
            while inner == 0 and position > 0 and self._sums.value(position - 1) == 0:
                position -= 1
            return position, inner

    def holder(self, offset: int) -> tuple[int, int]:
        """``(position, offset within that span)`` of the span holding the byte at ``offset``.

        Unlike :meth:`locate`, never an empty span: a byte lies in a span that has bytes.
        """
        with self._lock:
            position = self._sums.locate(offset)
            return position, offset - self._sums.prefix(position)

    # persistence ------------------------------------------------------------------

    @staticmethod
    def state_path(cache_dir: Path, bucket: str, prefix: str) -> Path:
        digest = hashlib.sha256(f"{bucket}/{prefix}".encode("utf-8", "surrogateescape")).hexdigest()
        return cache_dir / "streams" / f"{digest}.json"

    def load_saved_spans(self) -> SavedSpans:
        """As :meth:`load_saved`, by key and in columns, its keys interned with this index's.

        A remount holds these for the whole mount (to size and probe what it lists): as a
        ``dict`` of spans, about 450 bytes a key; this way, about 30 beside the key itself.
        """
        saved = SavedSpans(self._positions.store)
        for span in self.load_saved():
            saved.add(span)
        return saved

    def load_saved(self) -> list[Span]:
        """The spans a previous mount saved, in order (empty if none or unreadable)."""
        if self.state_file is None:
            return []
        try:
            saved = json.loads(self.state_file.read_text())
            return [Span(s["key"], s["etag"], int(s["length"]), bool(s["exact"])) for s in saved["spans"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            if not isinstance(error, FileNotFoundError):
                log.warning("ignoring unreadable stream index %s: %s", self.state_file, error)
            return []

    def save(self) -> None:
        """Write the index if it changed, atomically."""
        if self.state_file is None or not self.persist:
            return
        with self._lock:
            if not self._dirty:
                return
            columns = (self._positions.snapshot(), self._etags.copy(), array("q", self._sums.values()),
                       bytes(self._exact))
            self._dirty = False
        self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=self.state_file.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                _write_spans(handle, *columns)
            os.rename(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            del columns
        release_free_memory(len(self))  # the snapshot's copies


_SAVE_CHUNK = 1024


def _write_spans(handle: IO[str], keys: KeyPositions, etags: EtagColumn, lengths: array, exact: bytes) -> None:
    """Write ``{"spans": [{"key", "etag", "length", "exact"}, ...]}`` a chunk of spans at a time.

    The same JSON as one ``json.dump`` of the whole list, without a dict per span in memory
    at once: at a million keys those dicts alone took hundreds of megabytes.
    """
    handle.write('{"spans": [')
    decoded = keys.iter_keys()
    for start in range(0, len(keys), _SAVE_CHUNK):
        rows = (
            f'{{"key": {json.dumps(key)}, "etag": {json.dumps(etags[n])}, '
            f'"length": {lengths[n]}, "exact": {"true" if exact[n] else "false"}}}'
            for n, key in zip(range(start, min(start + _SAVE_CHUNK, len(keys))), decoded)
        )
        handle.write((", " if start else "") + ", ".join(rows))
    handle.write("]}")
