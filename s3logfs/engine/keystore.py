"""Compact per-key structures: a mount holds one entry per listed key, a million on a large prefix.

As Python objects a listed key cost about 1.8 KB: its ``str`` (200 bytes for 150 characters),
a path string or two, a node, an entry, a listing record and a span (each an object with its
header and ``__dict__``), boxed sizes and times, and a ``dict`` slot and an ``int`` in each
mapping by key. Here the keys are interned once, front-coded (:class:`KeyStore`); each layer
keeps its fields in typed arrays indexed by position, and maps keys to positions through
open-addressing tables of 4-byte positions (:class:`HashPositions`, :class:`KeyPositions`).
The layers hand out small view objects made on demand instead.
"""

from __future__ import annotations

import ctypes
import threading
from abc import abstractmethod
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")
_EMPTY = -1
_MIN_SLOTS = 8


class HashPositions:
    """An open-addressing hash table from a hash to positions in the caller's arrays.

    The table stores positions only (4 bytes each, at most half full), not keys or hashes:
    :meth:`find` asks the caller whether a position holds what is looked for, and a resize
    asks it for the hash of each position (which the callers keep, 4 bytes a key, so a resize
    decodes nothing). Positions are never removed. Adding is for one thread at a time (the
    owner's lock); :meth:`find` may run meanwhile.
    """

    def __init__(self, hash_at: Callable[[int], int]) -> None:
        self._hash_at = hash_at
        self._slots = array("i", [_EMPTY]) * _MIN_SLOTS
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, hashed: int, position: int) -> None:
        """Record ``position`` under ``hashed`` (the caller has checked it is not there yet)."""
        if 2 * (self._count + 1) > len(self._slots):
            self._grow()
        self._place(self._slots, hashed, position)
        self._count += 1

    def find(self, hashed: int, matches: Callable[[int], bool]) -> int | None:
        """The first position under ``hashed`` for which ``matches`` is true, or None."""
        slots = self._slots
        mask = len(slots) - 1
        slot = hashed & mask
        while True:
            position = slots[slot]
            if position == _EMPTY:
                return None
            if matches(position):
                return position
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        slots = array("i", [_EMPTY]) * (2 * len(self._slots))
        for position in self._slots:
            if position != _EMPTY:
                self._place(slots, self._hash_at(position), position)
        self._slots = slots

    @staticmethod
    def _place(slots: array, hashed: int, position: int) -> None:
        mask = len(slots) - 1
        slot = hashed & mask
        while slots[slot] != _EMPTY:
            slot = (slot + 1) & mask
        slots[slot] = position


_RESTART = 16
"""Every this many keys, a key is stored whole: decoding one costs at most this many steps."""
_MAX_SHARED = 0xFFFF
_HASH_BITS = 0x7FFFFFFF


class ItemView(Sequence[T]):
    """A read-only sequence whose items :meth:`_item` makes when asked for (index and slice as a list's).

    The layers hand these out instead of lists of per-key objects.
    """

    @abstractmethod
    def _item(self, index: int) -> T:
        """The item at ``index``, which is within bounds."""

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._item(each) for each in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._item(index)


class KeyStore:
    """Keys interned to ids 0, 1, 2...: one copy of each key for the tree, the catalog and the index.

    A key is kept as UTF-8 bytes, without the ``prefix`` every key of a mount starts with, and
    front-coded: as the length it shares with the key before it, and the rest. A listing comes
    sorted, so neighbours share most of their bytes (an ALB key shares about 90 of its 130
    with the one before). Every ``_RESTART`` keys one is stored whole, so a key is decoded in
    at most that many steps, and made into a ``str`` when asked for. A 31-bit hash per key
    lets a lookup skip the keys that cannot match without decoding them. A key of 150
    characters costs about 60 bytes here, where a ``str`` costs 200 and each ``list`` or
    ``dict`` that holds it 8 to 80 more. Thread-safe.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._blob = bytearray()
        self._ends = array("q")
        self._shared = array("H")
        self._hashes = array("i")
        self._whole: set[int] = set()
        """Ids of the keys stored whole, not under ``prefix`` (none in a mount, whose listing is under it)."""
        self._last = b""
        self._table = HashPositions(lambda key_id: self._hashes[key_id])
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hashes)  # grown last: every other array holds this many

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.find(key) is not None

    def key(self, key_id: int) -> str:
        if not 0 <= key_id < len(self):
            raise IndexError(key_id)
        return self._text(key_id, self._encoded_at(key_id))

    def iter_keys(self, start: int = 0, stop: int | None = None) -> Iterator[str]:
        """The keys of ids ``start`` to ``stop``, decoded one after the other (a step each)."""
        stop = len(self) if stop is None else stop
        encoded = self._encoded_at(start) if start < stop else b""
        for key_id in range(start, stop):
            if key_id > start:
                encoded = encoded[: self._shared[key_id]] + self._suffix(key_id)
            yield self._text(key_id, encoded)

    def find(self, key: str) -> int | None:
        """The id of ``key``, or None if it was never interned."""
        inside = key.startswith(self.prefix)
        needle = self._encoded(key, inside)
        hashed = hash(key) & _HASH_BITS
        hashes, whole = self._hashes, self._whole

        def matches(key_id: int) -> bool:
            return (hashes[key_id] == hashed and self._encoded_at(key_id) == needle
                    and (key_id in whole) != inside)

        return self._table.find(hashed, matches)

    def intern(self, key: str) -> int:
        """The id of ``key``, added if new."""
        with self._lock:
            found = self.find(key)
            if found is not None:
                return found
            key_id = len(self)
            inside = key.startswith(self.prefix)
            if not inside:
                self._whole.add(key_id)
            encoded = self._encoded(key, inside)
            shared = 0 if key_id % _RESTART == 0 else _common_length(self._last, encoded)
            self._blob += encoded[shared:]
            self._ends.append(len(self._blob))
            self._shared.append(shared)
            self._last = encoded
            hashed = hash(key) & _HASH_BITS
            self._hashes.append(hashed)  # last but the table: a reader gets an id only once it decodes
            self._table.add(hashed, key_id)
            return key_id

    def _suffix(self, key_id: int) -> bytes:
        start = self._ends[key_id - 1] if key_id else 0
        return bytes(self._blob[start : self._ends[key_id]])

    def _encoded_at(self, key_id: int) -> bytes:
        """A key's bytes, gathered backwards: each key before it gives only the bytes still missing."""
        blob, ends, shared = self._blob, self._ends, self._shared
        start = ends[key_id - 1] if key_id else 0
        parts = [blob[start : ends[key_id]]]
        need = shared[key_id]
        while need:  # ends at the last restart at the latest, which shares nothing
            key_id -= 1
            own = shared[key_id]
            if own < need:
                start = ends[key_id - 1] if key_id else 0
                parts.append(blob[start : start + need - own])
                need = own
        return b"".join(reversed(parts))

    def _text(self, key_id: int, encoded: bytes) -> str:
        text = encoded.decode("utf-8", "surrogatepass")
        return text if key_id in self._whole else self.prefix + text

    def _encoded(self, key: str, inside: bool) -> bytes:
        # surrogatepass: any str round-trips, including the surrogate escapes of bytes that are not UTF-8
        return key[len(self.prefix) :].encode("utf-8", "surrogatepass") if inside else key.encode(
            "utf-8", "surrogatepass")


def _common_length(first: bytes, second: bytes) -> int:
    """How many leading bytes two strings share (at most ``_MAX_SHARED``), by bisection of slices."""
    low, high = 0, min(len(first), len(second), _MAX_SHARED)
    while low < high:
        middle = (low + high + 1) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class KeyPositions:
    """A component's positions of keys interned in a shared :class:`KeyStore`: a compact ``dict[str, int]``.

    In a mount the tree, the catalog and the index meet the keys in the same order, so a
    key's position is its id and nothing is stored. Only once a key comes at another
    position than its id (a component used on its own, or an index that skipped a batch)
    are the two mappings kept, as ``int`` arrays: position -> id and id -> position.
    """

    def __init__(self, store: KeyStore | None = None) -> None:
        self.store = store if store is not None else KeyStore()
        self._count = 0
        self._positions = array("i")
        """Indexed by key id: the position, or ``_EMPTY``; filled once ``_ids`` is."""
        self._ids: array | None = None
        """Position -> key id; None while every position is its key's id."""

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def key_id(self, position: int) -> int:
        if not 0 <= position < self._count:
            raise IndexError(position)
        ids = self._ids
        return position if ids is None else ids[position]

    def key(self, position: int) -> str:
        return self.store.key(self.key_id(position))

    def snapshot(self) -> KeyPositions:
        """A copy for reading keys by position, which later additions do not change."""
        copied = KeyPositions(self.store)
        copied._count = self._count
        if self._ids is not None:
            copied._ids = array("i", self._ids[: self._count])
        return copied

    def iter_keys(self) -> Iterator[str]:
        """Every key, in order of position: decoded one after the other while positions are ids."""
        count, ids = self._count, self._ids
        if ids is None:
            return self.store.iter_keys(0, count)
        return (self.store.key(key_id) for key_id in ids[:count])

    def get(self, key: str) -> int | None:
        key_id = self.store.find(key)
        return None if key_id is None else self.position_of_id(key_id)

    def append(self, key: str) -> int:
        """Add ``key`` (not present yet) at the next position, and return that position."""
        return self.append_id(self.store.intern(key))

    def new_key_id(self, key: str) -> int | None:
        """``key``'s id, interned if need be, for :meth:`append_id`; None if it has a position here.

        One lookup where a check and an :meth:`append` take two: the owner can fill its other
        columns in between, and a reader never finds the key before they are filled.
        """
        key_id = self.store.intern(key)
        return None if self.position_of_id(key_id) is not None else key_id

    def add(self, key: str) -> int | None:
        """Add ``key`` at the next position and return it; None if ``key`` has a position already."""
        key_id = self.store.intern(key)
        if self.position_of_id(key_id) is not None:
            return None
        return self.append_id(key_id)

    def position_of_id(self, key_id: int) -> int | None:
        """The position of the key of ``key_id`` here, or None."""
        if self._ids is None:
            return key_id if key_id < self._count else None
        positions = self._positions
        position = positions[key_id] if key_id < len(positions) else _EMPTY
        return None if position == _EMPTY else position

    def append_id(self, key_id: int) -> int:
        """Give the key of ``key_id`` (from :meth:`new_key_id`) the next position, and return it."""
        position = self._count
        if self._ids is None and key_id != position:
            self._keep_mappings()
        if self._ids is not None:
            missing = key_id + 1 - len(self._positions)
            if missing > 0:
                self._positions.extend(array("i", [_EMPTY]) * missing)
            self._ids.append(key_id)
            self._positions[key_id] = position
        self._count += 1  # last: readers see a position once it is complete
        return position

    def _keep_mappings(self) -> None:
        self._positions = array("i", range(self._count))
        self._ids = array("i", range(self._count))  # after the positions: it tells readers to use them


_ETAG_BYTES = 16


class EtagColumn:
    """ETags by position: 16 raw bytes for the usual form (an MD5 in lowercase hex), a string
    only for the others (a multipart upload's ``HEX-N``, or anything else a server sends).

    A 32-character ``str`` costs 81 bytes; the hex form is made again when asked for.
    """

    def __init__(self) -> None:
        self._raw = bytearray()
        self._odd: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._raw) // _ETAG_BYTES

    def __getitem__(self, position: int) -> str:
        odd = self._odd.get(position)
        if odd is not None:
            return odd
        start = position * _ETAG_BYTES
        return self._raw[start : start + _ETAG_BYTES].hex()

    def __setitem__(self, position: int, etag: str) -> None:
        packed = _pack_etag(etag)
        start = position * _ETAG_BYTES
        if packed is None:
            self._odd[position] = etag  # first: a reader without the owner's lock sees old or new, never zeros
            self._raw[start : start + _ETAG_BYTES] = bytes(_ETAG_BYTES)
        else:
            self._raw[start : start + _ETAG_BYTES] = packed
            self._odd.pop(position, None)

    def copy(self) -> EtagColumn:
        copied = EtagColumn()
        copied._raw, copied._odd = bytearray(self._raw), dict(self._odd)
        return copied

    def append(self, etag: str) -> None:
        packed = _pack_etag(etag)
        if packed is None:
            self._odd[len(self)] = etag
        self._raw += packed if packed is not None else bytes(_ETAG_BYTES)


def _pack_etag(etag: str) -> bytes | None:
    """The 16 bytes an ETag's hex stands for, if the hex form gives exactly ``etag`` back."""
    if len(etag) != 2 * _ETAG_BYTES:
        return None
    try:
        packed = bytes.fromhex(etag)
    except ValueError:
        return None
    return packed if packed.hex() == etag else None


_TRIM_MIN_KEYS = 10_000
"""Below this many keys, what a batch leaves behind is too little to be worth a trim."""


def release_free_memory(keys: int) -> None:
    """Give freed heap memory back to the system after work on ``keys`` keys (glibc only).

    Growing the per-key arrays, a listing's parsed pages and the index's saves leave free
    holes in the C heap, which glibc keeps: at 100,000 keys, about 100 bytes a key of RSS
    that nothing uses. ``malloc_trim(0)`` returns the free pages of every arena. Elsewhere
    (musl, macOS) it does not exist, and this does nothing.
    """
    if keys < _TRIM_MIN_KEYS or _malloc_trim is None:
        return
    _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (AttributeError, OSError):
        return None


_malloc_trim = _find_malloc_trim()
