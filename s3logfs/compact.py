"""Compact per-key structures: a mount holds one entry per listed key, a million on a large prefix.

A Python ``dict`` from a key to its position costs about 50 bytes a key for its slots and
32 more for the position's ``int`` object, and every per-key object costs its header. The
structures here keep positions in typed arrays instead, and let the caller say how to
compare an entry (usually by a string that is stored once, elsewhere), so that a key costs
a few bytes beyond its own string.
"""

from __future__ import annotations

import ctypes
import threading
from array import array
from collections.abc import Callable

_EMPTY = -1
_MIN_SLOTS = 8


class HashPositions:
    """An open-addressing hash table from a hash to positions in the caller's arrays.

    The table stores positions only (4 bytes each, at most half full), not keys or hashes:
    :meth:`find` asks the caller whether a position holds what is looked for, and a resize
    asks it for the hash of each position (a ``str`` caches its hash, so that is cheap).
    Positions are never removed. Not thread-safe: the owner's lock guards it.
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


class KeyStore:
    """Keys interned to ids 0, 1, 2...: one copy of each key for the tree, the catalog and the index.

    A key is kept as UTF-8 bytes in one growing buffer, without the ``prefix`` every key of a
    mount starts with, and made into a ``str`` again when asked for. A listed key of 150
    characters costs about 150 bytes and an offset here, where a ``str`` costs 200 and each
    ``list`` or ``dict`` that holds it 8 to 80 more. Thread-safe.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._blob = bytearray()
        self._ends = array("q")
        self._whole: set[int] = set()
        """Ids of the keys stored whole, not under ``prefix`` (none in a mount, whose listing is under it)."""
        self._table = HashPositions(lambda key_id: hash(self.key(key_id)))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ends)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.find(key) is not None

    def key(self, key_id: int) -> str:
        start = self._ends[key_id - 1] if key_id else 0
        text = self._blob[start : self._ends[key_id]].decode("utf-8", "surrogatepass")
        return text if key_id in self._whole else self.prefix + text

    def find(self, key: str) -> int | None:
        """The id of ``key``, or None if it was never interned."""
        inside = key.startswith(self.prefix)
        needle = self._encoded(key, inside)
        blob, ends, whole = self._blob, self._ends, self._whole

        def matches(key_id: int) -> bool:
            start = ends[key_id - 1] if key_id else 0
            return blob[start : ends[key_id]] == needle and (key_id in whole) != inside

        return self._table.find(hash(key), matches)

    def intern(self, key: str) -> int:
        """The id of ``key``, added if new."""
        with self._lock:
            found = self.find(key)
            if found is not None:
                return found
            key_id = len(self._ends)
            inside = key.startswith(self.prefix)
            if not inside:
                self._whole.add(key_id)
            self._blob += self._encoded(key, inside)
            self._ends.append(len(self._blob))  # a reader gets an id only once its bytes are in
            self._table.add(hash(key), key_id)
            return key_id

    def _encoded(self, key: str, inside: bool) -> bytes:
        # surrogatepass: any str round-trips, including the surrogate escapes of bytes that are not UTF-8
        return key[len(self.prefix) :].encode("utf-8", "surrogatepass") if inside else key.encode(
            "utf-8", "surrogatepass")


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

    def keys(self) -> list[str]:
        """Every key, in order of position."""
        return [self.key(position) for position in range(self._count)]

    def get(self, key: str) -> int | None:
        key_id = self.store.find(key)
        if key_id is None:
            return None
        if self._ids is None:
            return key_id if key_id < self._count else None
        positions = self._positions
        position = positions[key_id] if key_id < len(positions) else _EMPTY
        return None if position == _EMPTY else position

    def append(self, key: str) -> int:
        """Add ``key`` (not present yet) at the next position, and return that position."""
        key_id = self.store.intern(key)
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
