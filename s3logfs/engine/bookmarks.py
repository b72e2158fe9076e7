"""Bookmarks: named places in a prefix's stream, kept in the config file's ``[bookmarks]`` section.

A bookmark is stored with the source it belongs to, as a place that stays valid across
remounts, cache dirs and time windows: an object key and a position inside that object.
A stream offset depends on the stream's order and window, so it is shown, never stored.

The values of ``[bookmarks]`` (``NAME = VALUE``) take these forms:

* ``s3://BUCKET/PREFIX KEY@BYTE``: resume at byte BYTE of KEY's decoded content. This is
  what the mount and ``s3logfs cat`` write.
* ``s3://BUCKET/PREFIX KEY:LINE`` and s3tail's bare ``KEY:LINE``: resume at line LINE+1 of
  the first key after KEY (an empty KEY: the first key). A bare one has no source: it
  applies to every source whose keys it can name (KEY below the source's prefix; a bare
  ``:N`` names none), and a reader that moves it keeps it bare, in s3tail's form, unless
  that form would be ``:N`` (its place is in the source's first key): then it gets the
  reader's source.
* ``OFFSET s3://BUCKET/PREFIX``: the offset form: an offset in a stream, which development builds
  stored before ``KEY@BYTE``. Still read,
  and replaced by the ``KEY@BYTE`` form the next time the bookmark moves.

In the sourced forms the source and the key are percent-encoded where they hold a space,
``%``, a control or a non-ASCII character, so every key fits on one line.

Several processes may update the file: every change takes an exclusive lock on
``<config>.lock``, edits only the line of that bookmark (comments and every other line
stay byte for byte) and replaces the file atomically. A change that would not alter the
value writes nothing.
"""

from __future__ import annotations

import bisect
import configparser
import errno
import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from ..errors import S3LogFSError, UsageError

if TYPE_CHECKING:  # annotations only: ``s3logfs bookmarks`` reads the store without the S3 layer (botocore)
    from .cache import CachedObject
    from .catalog import Catalog
    from .index import StreamIndex

SECTION = "bookmarks"
_NAME = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+=-]{0,199}$")
_OFFSET_FORM = re.compile(r"^(\d+)(?:\s+(s3://\S*))?$")
_SAFE = "/:@!$&'()*+,;=~[]{}<>|^`\"#?\\"
"""Characters a key keeps as they are in a stored value: all printable ASCII but space and ``%``."""


class BookmarkTaken(S3LogFSError):
    """The name belongs to another source's bookmark, which this source must not touch."""

    errno = errno.EEXIST


def _quote(text: str) -> str:
    return quote(text, safe=_SAFE, errors="surrogateescape")


def _unquote(text: str) -> str:
    return unquote(text, errors="surrogateescape")


@dataclass(frozen=True)
class Bookmark:
    """A parsed bookmark value.

    Exactly one of ``byte``, ``line`` and ``offset`` is set: ``KEY@BYTE``, s3tail's
    ``KEY:LINE`` (``key`` is then the key *before* the place), or a stream offset.
    """

    source: str | None = None
    key: str = ""
    byte: int | None = None
    line: int | None = None
    offset: int | None = None

    @classmethod
    def parse(cls, text: str) -> Bookmark:
        """A stored value, or what a user typed (``-b``, ``setfattr``): see the module docstring."""
        text = text.strip()
        offset_form = _OFFSET_FORM.match(text)
        if offset_form:
            return cls(source=offset_form.group(2), offset=int(offset_form.group(1)))
        if text.startswith("s3://"):
            source, _, place = text.partition(" ")
            if not place.strip():
                raise _malformed(text)
            return replace(cls._place(place.strip(), quoted=True), source=_unquote(source))
        return cls._place(text, quoted=False)

    @classmethod
    def _place(cls, text: str, quoted: bool) -> Bookmark:
        decode = _unquote if quoted else str
        key, colon, line = text.rpartition(":")
        if colon and line.isdigit() and line.isascii():
            return cls(key=decode(key), line=int(line))
        key, at, byte = text.rpartition("@")
        if at and byte.isdigit() and byte.isascii():
            return cls(key=decode(key), byte=int(byte))
        raise _malformed(text)

    def format(self) -> str:
        """The stored form. A bookmark without a source keeps s3tail's bare form."""
        if self.offset is not None:
            return f"{self.offset} {self.source}" if self.source else str(self.offset)
        if self.source is None:
            return f"{self.key}:{self.line}" if self.line is not None else f"{self.key}@{self.byte}"
        place = f"{_quote(self.key)}:{self.line}" if self.line is not None else f"{_quote(self.key)}@{self.byte}"
        return f"{_quote(self.source)} {place}"

    def describe(self) -> str:
        """The place, for people: ``KEY@BYTE``, ``KEY:LINE`` or an offset."""
        if self.offset is not None:
            return f"offset {self.offset}"
        return f"{self.key}:{self.line}" if self.line is not None else f"{self.key}@{self.byte}"

    def applies_to(self, source: str, prefix: str) -> bool:
        """Whether this bookmark belongs to the source ``source`` (whose key prefix is ``prefix``)."""
        if self.source is not None:
            return self.source == source
        if self.offset is not None or self.key == "":
            return False  # a bare offset, or s3tail's ":N", names no key: no source can claim it
        return self.key.startswith(prefix)


def _malformed(text: str) -> UsageError:
    return UsageError(f"not a bookmark: {text!r} (expected an offset, KEY:LINE or KEY@BYTE)")


def check_name(name: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise UsageError(f"bad bookmark name {name!r}: use letters, digits, '.', '_', '-', '@', '+'")
    return name


Update = Callable[[Bookmark | None], Bookmark | None]
"""Given the stored bookmark (or None), the one to store (None removes it)."""


class BookmarkStore:
    """The ``[bookmarks]`` section of one config file."""

    def __init__(self, config_file: Path) -> None:
        self.path = config_file

    def all(self) -> dict[str, Bookmark]:
        """Every readable bookmark; values in no known form are left alone and skipped."""
        found = {}
        for name, value in _read_section(self.path).items():
            try:
                found[name] = Bookmark.parse(value)
            except UsageError:
                continue
        return found

    def unreadable(self) -> dict[str, str]:
        """The entries of ``[bookmarks]`` in no known form, name -> value: left alone, and reported."""
        found = {}
        for name, value in _read_section(self.path).items():
            if _parse_or_none(value) is None:
                found[name] = value
        return found

    def get(self, name: str) -> Bookmark | None:
        return self.all().get(check_name(name))

    def update(self, name: str, change: Update) -> Bookmark | None:
        """Apply ``change`` to bookmark ``name`` under the file lock; write only what changed."""
        check_name(name)
        with self._locked():
            text = _read_text(self.path)
            value = _section_items(text).get(name)
            current = _parse_or_none(value)
            if value is not None and current is None:
                raise BookmarkTaken(f"bookmark {name!r} holds a value s3logfs does not understand: {value!r}")
            wanted = change(current)
            new_value = wanted.format() if wanted is not None else None
            if new_value != (value.strip() if value is not None else None):
                self._write(_edit_section(text, name, new_value))
            return wanted

    def set(self, name: str, bookmark: Bookmark) -> None:
        self.update(name, lambda _current: bookmark)

    def remove(self, name: str) -> bool:
        removed = False

        def drop(current: Bookmark | None) -> None:
            nonlocal removed
            removed = current is not None

        self.update(name, drop)
        return removed

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, text: str) -> None:
        """Replace the file's text: atomically beside its real path, keeping a symlink, its mode
        and owner; a file with other hard links is rewritten in place, so they all see it."""
        target = Path(os.path.realpath(self.path))
        try:
            before = target.stat()
        except FileNotFoundError:
            before = None
        if before is not None and before.st_nlink > 1:
            with open(target, "r+", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.truncate()
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            os.chmod(tmp, before.st_mode & 0o7777 if before else 0o600)
            if before is not None and (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
                _keep_owner(tmp, before)
            os.rename(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _keep_owner(path: str, before: os.stat_result) -> None:
    try:
        os.chown(path, before.st_uid, before.st_gid)
    except PermissionError:  # only root may give a file away; the file is then ours, as any editor leaves it
        pass


def _parse_or_none(value: str | None) -> Bookmark | None:
    if value is None:
        return None
    try:
        return Bookmark.parse(value)
    except UsageError:
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _read_section(path: Path) -> dict[str, str]:
    return _section_items(_read_text(path))


def _section_items(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names keep their case
    try:
        parser.read_string(text)
    except configparser.Error as error:
        raise UsageError(f"cannot read the config file: {error}".replace("\n", " ")) from error
    return dict(parser.items(SECTION)) if parser.has_section(SECTION) else {}


_SECTION_HEADER = re.compile(r"^\[(?P<name>[^\]]+)\]")


def _edit_section(text: str, name: str, value: str | None) -> str:
    """``text`` with only bookmark ``name``'s line replaced, added or removed.

    configparser lets a later line win (a repeated name, or a repeated ``[bookmarks]``
    section), so the last such line is the one edited, and a new one goes in the last section.
    """
    lines = text.splitlines(keepends=True)
    sections = _section_bounds(lines)
    if not sections:
        if value is None:
            return text
        separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{separator}[{SECTION}]\n{name} = {value}\n"
    found = _last_option(lines, sections, name)
    if found is not None:
        first, stop = found
        lines[first:stop] = [] if value is None else [f"{name} = {value}\n"]
        return "".join(lines)
    if value is None:
        return text
    start, end = sections[-1]
    last = end
    while last > start + 1 and not lines[last - 1].strip():
        last -= 1
    if not lines[last - 1].endswith("\n"):
        lines[last - 1] += "\n"
    lines.insert(last, f"{name} = {value}\n")
    return "".join(lines)


def _last_option(lines: list[str], sections: list[tuple[int, int]], name: str) -> tuple[int, int] | None:
    """The lines (first, stop) of the last ``name = ...`` in the sections, continuation lines included."""
    option = re.compile(rf"^{re.escape(name)}\s*[=:]")
    found = None
    for start, end in sections:
        for number in range(start + 1, end):
            if option.match(lines[number]):
                stop = number + 1
                while stop < end and lines[stop][:1] in (" ", "\t") and lines[stop].strip():
                    stop += 1  # a continuation line of the same value
                found = (number, stop)
    return found


def _section_bounds(lines: list[str]) -> list[tuple[int, int]]:
    """Each ``[bookmarks]`` section: the index of its header and of the line after it."""
    headers = [(number, match.group("name")) for number, line in enumerate(lines)
               if (match := _SECTION_HEADER.match(line))]
    bounds = []
    for index, (number, header) in enumerate(headers):
        if header == SECTION:
            end = headers[index + 1][0] if index + 1 < len(headers) else len(lines)
            bounds.append((number, end))
    return bounds


@dataclass(frozen=True)
class Place:
    """Where a bookmark points in one stream: an offset, and the span and inner offset there."""

    offset: int
    position: int
    inner: int


class StreamBookmarks:
    """The bookmarks of one source, resolved against one stream.

    The mount (xattrs, cursor files) and ``s3logfs cat`` both use it, so they read and
    move the same bookmarks the same way.
    """

    def __init__(self, store: BookmarkStore, source: str, prefix: str, catalog: Catalog, index: StreamIndex,
                 exact_length: Callable[[int], int]) -> None:
        self.store = store
        self.source = source
        self.prefix = prefix
        self.catalog = catalog
        self.index = index
        self._exact_length = exact_length
        self._sorted_keys: Sequence[str] = ()
        self._lock = threading.Lock()

    def _mine(self, bookmark: Bookmark | None) -> bool:
        return bookmark is not None and bookmark.applies_to(self.source, self.prefix)

    def names(self) -> list[str]:
        return sorted(name for name, bookmark in self.store.all().items() if self._mine(bookmark))

    def get(self, name: str) -> Bookmark | None:
        bookmark = self.store.get(name)
        return bookmark if self._mine(bookmark) else None

    def place(self, name: str) -> Place | None:
        bookmark = self.get(name)
        return None if bookmark is None else self.resolve(bookmark)

    def offset(self, name: str) -> int | None:
        place = self.place(name)
        return None if place is None else place.offset

    # from a bookmark to a place in the stream --------------------------------------

    def resolve(self, bookmark: Bookmark) -> Place:
        """Where ``bookmark`` points in this stream (clamped to its end)."""
        if bookmark.offset is not None:  # the offset form: an offset in this stream, as it stands
            return self.at_offset(min(bookmark.offset, self.index.total()))
        if bookmark.line is not None:
            return self._after_key(bookmark.key, bookmark.line)
        assert bookmark.byte is not None
        position = self.index.position_of.get(bookmark.key)
        if position is None:  # not in this stream (another window, or deleted): the next key
            return self._after_key(bookmark.key, 0)
        return self._inside(position, bookmark.byte)

    def _inside(self, position: int, byte: int) -> Place:
        length = self.index.spans[position].length
        if byte > length and not self.index.spans[position].exact:
            length = self._exact_length(position)
        inner = min(byte, length)
        return Place(self.index.start(position) + inner, position, inner)

    def _after_key(self, key: str, line: int) -> Place:
        """s3tail's meaning: line ``line + 1`` of the first key after ``key``."""
        if key == "" and line == 0:
            return Place(0, 0, 0)  # the start of the stream, whatever its order
        keys = self._keys()
        following = bisect.bisect_right(keys, key)
        if following == len(keys):
            return self.at_offset(self.index.total())
        position = self.index.position_of[keys[following]]
        if line == 0:
            return Place(self.index.start(position), position, 0)
        self._exact_length(position)
        inner = self._in_object(keys[following], lambda _cached, fd: _start_of_line(fd, line))
        return self._inside(position, inner)

    def _in_object(self, key: str, count: Callable[[CachedObject, int], int]) -> int:
        """``count`` applied to ``key``'s decoded content and a descriptor on it, opened through the fetcher."""
        cached, fd = self.catalog.open_decoded(self.catalog.by_key[key])
        try:
            return count(cached, fd)
        finally:
            os.close(fd)

    def exact_through(self, offset: int) -> None:
        """Make every span up to ``offset`` exact: an offset means bytes really there, not estimates.

        This reads (and caches) the objects before ``offset`` that are still estimates, so
        an offset is the costly way to name a place; ``KEY@BYTE`` costs one object at most.
        """
        position = 0
        while position < len(self.index) and self.index.start(position) <= offset:
            if not self.index.spans[position].exact:
                self._exact_length(position)
            position += 1

    def at_offset(self, offset: int) -> Place:
        position, inner = self.index.locate(offset)
        return Place(offset, position, inner)

    def _keys(self) -> Sequence[str]:
        """The stream's keys, sorted; rebuilt only when the stream has grown."""
        with self._lock:
            if len(self._sorted_keys) != len(self.index):
                self._sorted_keys = self.index.sorted_keys()
            return self._sorted_keys

    def start_of(self, value: str | None) -> tuple[Place, str | None]:
        """Where a reader given ``-b VALUE`` (or ``bookmark=``) starts, and the bookmark name to save.

        VALUE is the name of a stored bookmark of this source, else a place (an offset,
        ``KEY:LINE``, ``KEY@BYTE``), else a new name: the stream's start, saved under it.
        """
        if value is None:
            return Place(0, 0, 0), None
        value = value.strip()
        if _NAME.match(value):
            stored = self.store.get(value)
            if stored is not None:
                if not self._mine(stored):
                    raise BookmarkTaken(f"bookmark {value!r} belongs to another source ({stored.source or 'none'})")
                return self.resolve(stored), value
        try:
            bookmark = Bookmark.parse(value)
        except UsageError:
            if _NAME.match(value):
                return Place(0, 0, 0), value
            raise
        return self.resolve(self._checked(bookmark)), None

    def _checked(self, bookmark: Bookmark) -> Bookmark:
        """A place a user gave: refused if another source's, or an offset past the stream's end.

        An offset means bytes really there, so the spans before it are made exact first.
        """
        if bookmark.source is not None and bookmark.source != self.source:
            raise UsageError(f"that bookmark belongs to {bookmark.source}, not {self.source}")
        if bookmark.offset is not None:
            self.exact_through(bookmark.offset)
            if bookmark.offset > self.index.total():
                raise UsageError(f"offset {bookmark.offset} is past the end of the stream ({self.index.total()})")
        return bookmark

    def previous_key(self, key: str) -> str:
        """The greatest key of this stream that sorts before ``key`` ("" if none): s3tail's marker."""
        keys = self._keys()
        before = bisect.bisect_left(keys, key)
        return keys[before - 1] if before > 0 else ""

    # from a place in the stream to a bookmark --------------------------------------

    def bookmark_for(self, position: int, inner: int) -> Bookmark:
        """The stable form of a place given as a span and an offset inside it."""
        if position >= len(self.index) or (position == 0 and inner == 0):
            return self.bookmark_at(self.index.total() if position else 0)
        return Bookmark(source=self.source, key=self.index.spans[position].key, byte=inner)

    def bookmark_at(self, offset: int) -> Bookmark:
        """The stable form of stream offset ``offset``: the key holding the byte before it."""
        if offset <= 0 or len(self.index) == 0:
            return Bookmark(source=self.source, key="", line=0)
        position, inner = self.index.holder(offset - 1)
        if position >= len(self.index):
            position = len(self.index) - 1
            inner = self.index.spans[position].length - 1
        return Bookmark(source=self.source, key=self.index.spans[position].key, byte=inner + 1)

    def as_s3tail(self, bookmark: Bookmark) -> Bookmark:
        """``bookmark`` in s3tail's bare ``PREVIOUS_KEY:LINE`` form (what ``cat`` prints)."""
        if bookmark.byte is None:
            return replace(bookmark, source=None)
        byte = bookmark.byte
        lines = self._in_object(bookmark.key, lambda cached, fd: _lines_before(cached, fd, byte))
        return Bookmark(key=self.previous_key(bookmark.key), line=lines)

    # changes -------------------------------------------------------------------------

    def _update(self, name: str, make: Callable[[Bookmark | None], Bookmark | None]) -> Bookmark | None:
        def change(current: Bookmark | None) -> Bookmark | None:
            if current is not None and not self._mine(current):
                raise BookmarkTaken(f"bookmark {name!r} belongs to another source ({current.source or 'none'})")
            return make(current)

        return self.store.update(name, change)

    def set_from_user(self, name: str, value: str) -> None:
        """``setfattr`` or ``-b``: an offset in this stream, ``KEY:LINE`` or ``KEY@BYTE``."""
        bookmark = self._checked(Bookmark.parse(value))
        if bookmark.offset is not None:
            bookmark = self.bookmark_at(bookmark.offset)
        self._update(name, lambda _current: replace(bookmark, source=self.source))

    def move(self, name: str, target: Bookmark, create: bool = False) -> None:
        """A reader consumed the stream up to ``target`` (from :meth:`bookmark_at`).

        A bookmark in s3tail's bare form stays bare (and so stays valid for every source
        that can name its key); any other is written in the ``KEY@BYTE`` form. A bookmark
        removed while its reader was open stays removed, unless ``create`` is set.
        """

        def moved(current: Bookmark | None) -> Bookmark | None:
            if current is None:
                return target if create else None
            if current.source is None:
                bare = self.as_s3tail(target)
                return bare if bare.key else target  # ":N" would name no source: this one's, then
            return target

        self._update(name, moved)

    def create(self, name: str) -> None:
        """A new bookmark at the start of the stream; an existing one of this source is kept."""
        self._update(name, lambda current: current or Bookmark(source=self.source, key="", line=0))

    def remove(self, name: str) -> bool:
        if self.get(name) is None:
            return False
        self._update(name, lambda _current: None)
        return True


def _start_of_line(fd: int, line: int) -> int:
    """Byte offset where line ``line + 1`` starts (the end of the content if it has fewer)."""
    position = 0
    remaining = line
    with os.fdopen(os.dup(fd), "rb") as handle:
        while remaining > 0 and (chunk := handle.read(1 << 20)):
            start = 0
            while remaining > 0:
                found = chunk.find(b"\n", start)
                if found < 0:
                    break
                remaining -= 1
                start = found + 1
            position += start if remaining == 0 else len(chunk)
    return position


def _lines_before(cached: CachedObject, fd: int, byte: int) -> int:
    """How many lines the first ``byte`` bytes of an object's stream content end, or begin.

    The stream's content is the decoded content, then the newline the stream adds where it
    lacks one (:attr:`CachedObject.stream_length`). A place inside a line counts that line
    as read: s3tail's ``KEY:LINE`` then resumes after it.
    """
    within = min(byte, cached.size)
    count = 0
    seen = 0
    last = b""
    with os.fdopen(os.dup(fd), "rb") as handle:
        while seen < within and (chunk := handle.read(min(1 << 20, within - seen))):
            count += chunk.count(b"\n")
            seen += len(chunk)
            last = chunk[-1:]
    added_newline = byte > cached.size and cached.stream_length > cached.size
    if added_newline or (seen and last != b"\n"):
        count += 1
    return count
