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
one (:func:`~s3logfs.engine.cache.stream_length`), so every object ends a line and a
mark never falls inside a line that continues in the next object.
"""

from __future__ import annotations

from collections.abc import Iterator

from .bookmarks import Bookmark, Place, StreamBookmarks
from .stream import Cursor, StreamReader


class StreamCursor:
    """A reader's place in one stream, tied to a bookmark name (or to none)."""

    def __init__(self, reader: StreamReader, bookmarks: StreamBookmarks, place: Place, name: str | None) -> None:
        self._reader = reader
        self._bookmarks = bookmarks
        self.start = place
        self.name = name
        """The bookmark this cursor saves to; None for a place given as such (``-b KEY:LINE``)."""
        self.position = Cursor(next_offset=place.offset, position=place.position, inner=place.inner)
        self.mark: Bookmark = bookmarks.bookmark_for(place.position, place.inner)
        """Just past the last complete line taken: where the next run starts."""
        self._saved = self.mark

    @property
    def offset(self) -> int:
        """The stream offset where the next sequential read starts."""
        return self.position.next_offset

    def read(self, size: int, offset: int | None = None, read_ahead: bool = True) -> bytes:
        """Up to ``size`` bytes at ``offset`` (by default where the last read ended); the mark stays."""
        return self._reader.read(self.position, self.offset if offset is None else offset, size, read_ahead)

    def read_object(self, position: int, chunk_size: int) -> Iterator[bytes]:
        """Every byte the stream holds for the object at ``position``, in chunks of up to ``chunk_size``.

        The cursor then stands at the next object's start. An object that ``--skip-errors``
        leaves out holds no bytes. Nothing is read ahead: the caller chooses what to fetch next.
        """
        length = self._reader.exact_length(position)
        self.position.close()
        self.position.next_offset = self._reader.index.start(position)
        self.position.position, self.position.inner = position, 0
        while self.position.position == position and self.position.inner < length:
            data = self.read(min(chunk_size, length - self.position.inner), read_ahead=False)
            if not data:
                return
            yield data

    def took(self, data: bytes) -> None:
        """The consumer took all of ``data``, the last read: the mark moves past its last complete line."""
        self.took_until(data, len(data))

    def took_until(self, data: bytes, taken: int) -> None:
        """The consumer took the first ``taken`` bytes of ``data``, the last read."""
        newline = data.rfind(b"\n", 0, taken)
        if newline >= 0:
            self.mark = self._bookmarks.bookmark_for(*self._reader.place_before(self.position, len(data) - newline - 1))

    def mark_object(self, position: int, inner: int) -> None:
        """The consumer took the object at ``position`` up to ``inner`` (the end of a line in it)."""
        self.mark = self._bookmarks.bookmark_for(position, inner)

    def mark_offset(self, offset: int) -> None:
        """The consumer took the stream up to ``offset``, the end of a line read earlier."""
        self.mark = self._bookmarks.bookmark_at(offset)

    def save(self, create: bool = False) -> None:
        """Write the mark to the named bookmark, if it moved since the last save (or ``create``, if new).

        A bookmark removed while its reader was open stays removed, unless ``create``.
        """
        if self.name is None or (self.mark == self._saved and not create):
            return
        self._bookmarks.move(self.name, self.mark, create=create)
        self._saved = self.mark

    def as_s3tail(self) -> Bookmark:
        """The mark in s3tail's bare ``PREVIOUS_KEY:LINE`` form (what ``cat`` prints)."""
        return self._bookmarks.as_s3tail(self.mark)

    def close(self) -> None:
        self.position.close()
