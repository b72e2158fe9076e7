"""Cutting a record that is too large for one API record or event into pieces that fit."""

from __future__ import annotations


def split_utf8(data: bytes, limit: int) -> list[bytes]:
    """Cut UTF-8 ``data`` into pieces of at most ``limit`` bytes, at a newline when there is one.

    A piece ends before the last newline that fits, and that newline is dropped (the caller's
    record terminator or event boundary stands in for it), so joining the pieces with ``b"\\n"``
    gives ``data`` back when every cut was at a newline. A line longer than ``limit`` is cut at
    the last character boundary that fits, never inside a multi-byte character.
    """
    if limit < 4:
        raise ValueError("limit must hold at least one UTF-8 character")
    pieces: list[bytes] = []
    start = 0
    while len(data) - start > limit:
        end = start + limit
        newline = data.rfind(b"\n", start, end + 1)
        if newline > start:
            pieces.append(data[start:newline])
            start = newline + 1
            continue
        cut = end
        while cut > start and data[cut] & 0xC0 == 0x80:
            cut -= 1
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces
