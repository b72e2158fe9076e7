"""Compact per-key structures: a mount holds one entry per listed key, a million on a large prefix.

A Python ``dict`` from a key to its position costs about 50 bytes a key for its slots and
32 more for the position's ``int`` object, and every per-key object costs its header. The
structures here keep positions in typed arrays instead, and let the caller say how to
compare an entry (usually by a string that is stored once, elsewhere), so that a key costs
a few bytes beyond its own string.
"""

from __future__ import annotations

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


class KeyPositions:
    """Positions of string keys kept in a list, in order of addition: a compact ``dict[str, int]``."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._table = HashPositions(lambda position: hash(self.keys[position]))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get(self, key: str) -> int | None:
        keys = self.keys
        return self._table.find(hash(key), lambda position: keys[position] == key)

    def append(self, key: str) -> int:
        """Add ``key`` (not present yet) at the next position, and return that position."""
        position = len(self.keys)
        self.keys.append(key)
        self._table.add(hash(key), position)
        return position


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
