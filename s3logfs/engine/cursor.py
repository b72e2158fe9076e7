"""The cursor protocol: open at a bookmark, read, mark at the last complete line, save.

Every reader that resumes from a bookmark goes through :class:`StreamCursor`: the mount's
cursor files (``.bookmarks/NAME``), ``s3logfs cat -b`` and :class:`s3logfs.LogStream`. So
they agree on where a bookmark points, on what counts as consumed, and on when the
bookmark is written.

* **Open.** A cursor starts at a :class:`~s3logfs.engine.bookmarks.Place` (an offset,
  and the span and inner offset there), so a correction of an earlier estimate between
  opening and the first read cannot move where reading begins.
* **Read.** Reads go through the stream reader, sequentially from the cursor's place or
  at an offset the caller names.
* **Mark.** Only what the consumer took counts: the caller says so with :meth:`took`
  (the whole of the last read) or :meth:`took_until` (a place inside it). The mark is the
  end of the last complete line taken, counted back from where the cursor stands,
  through the spans it has just read: those are exact, so a correction elsewhere in
  the stream cannot move it (a stream offset would move).
* **Save.** :meth:`save` writes the mark to the named bookmark only when it moved since
  the last save, so a bookmark set by hand meanwhile is not undone by a reader that read
  nothing more.

The newline rule is the stream's: an object that does not end in a newline is followed by
one (:attr:`~s3logfs.engine.cache.CachedObject.stream_length`), so every object ends a line
and a mark never falls inside a line that continues in the next object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .bookmarks import Bookmark, Place, StreamBookmarks
from .stream import ReadPosition, StreamReader


class StreamCursor:
    """A reader's place in one stream, tied to a bookmark name (or to none)."""

    def __init__(self, reader: StreamReader, bookmarks: StreamBookmarks, place: Place, name: str | None) -> None:
        self._reader = reader
        self._bookmarks = bookmarks
        self.start = place
        self.name = name
        """The bookmark this cursor saves to; None for a place given as such (``-b KEY:LINE``)."""
        self.read_position = ReadPosition(next_offset=place.offset, position=place.position, inner=place.inner)
        self._mark = bookmarks.bookmark_for(place.position, place.inner)
        self._pending: tuple[int, int] | None = None
        """The mark as a span and an inner offset, made a :class:`Bookmark` only when asked for:
        a reader that marks every line (``LogStream``) must not pay for a bookmark per line."""
        self._saved = self._mark

    @property
    def mark(self) -> Bookmark:
        """Just past the last complete line taken: where the next run starts."""
        if self._pending is not None:
            self._mark = self._bookmarks.bookmark_for(*self._pending)
            self._pending = None
        return self._mark

    @mark.setter
    def mark(self, bookmark: Bookmark) -> None:
        self._mark, self._pending = bookmark, None

    @property
    def offset(self) -> int:
        """The stream offset where the next sequential read starts."""
        return self.read_position.next_offset

    def read(self, size: int, offset: int | None = None, read_ahead: bool = True) -> bytes:
        """Up to ``size`` bytes at ``offset`` (by default where the last read ended); the mark stays."""
        return self._reader.read(self.read_position, self.offset if offset is None else offset, size, read_ahead)

    def read_object(self, position: int, chunk_size: int) -> Iterator[bytes]:
        """Every byte the stream holds for the object at ``position``, in chunks of up to ``chunk_size``.

        Only that object's bytes, from one version of it, pinned by a descriptor: the newline
        the stream adds comes last. An object that ``--skip-errors`` leaves out holds none.
        Nothing is read ahead: the caller chooses what to fetch next.
        """
        opened = self._reader.open_object(position)
        if opened is None:
            return
        cached, fd = opened
        try:
            done = 0
            while done < cached.size and (data := os.pread(fd, min(chunk_size, cached.size - done), done)):
                done += len(data)
                yield data
            if cached.stream_length > cached.size:
                yield b"\n"
        finally:
            os.close(fd)

    def took(self, data: bytes) -> None:
        """The consumer took all of ``data``, the last read: the mark moves past its last complete line."""
        self.took_until(data, len(data))

    def took_until(self, data: bytes, taken: int) -> None:
        """The consumer took the first ``taken`` bytes of ``data``, the last read."""
        newline = data.rfind(b"\n", 0, taken)
        if newline >= 0:
            self._pending = self._reader.place_before(self.read_position, len(data) - newline - 1)

    def mark_object(self, position: int, inner: int) -> None:
        """The consumer took the object at ``position`` up to ``inner`` (the end of a line in it)."""
        self._pending = (position, inner)

    def mark_offset(self, offset: int) -> None:
        """The consumer took the stream up to ``offset``, the end of a line read earlier."""
        self.mark = self._bookmarks.bookmark_at(offset)

    def save(self, create: bool = False) -> None:
        """Write the mark to the named bookmark, if it moved since the last save (or ``create``, if new).

        A bookmark removed while its reader was open stays removed, unless ``create``.
        """
        mark = self.mark
        if self.name is None or (mark == self._saved and not create):
            return
        self._bookmarks.move(self.name, mark, create=create)
        self._saved = mark

    def as_s3tail(self) -> Bookmark:
        """The mark in s3tail's bare ``PREVIOUS_KEY:LINE`` form (what ``cat`` prints)."""
        return self._bookmarks.as_s3tail(self.mark)

    def close(self) -> None:
        self.read_position.close()
