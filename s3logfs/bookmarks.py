"""Bookmarks: named places in a stream, kept in the config file's ``[bookmarks]`` section.

Two forms are stored, and both are accepted everywhere:

* s3tail's ``KEY:LINE``: resume at line LINE+1 of the first key (in key order) after
  KEY. An empty KEY means the first key. This is what ``s3logfs cat`` prints and what
  s3tail saved, so old bookmarks keep working.
* ``OFFSET s3://BUCKET/PREFIX``: a byte offset in the stream of that mount. This is what
  the mount stores (xattrs and cursor files), because only an offset in stream order
  also covers objects that arrived late with keys sorting early. Stream order is
  persisted with the cache, so offsets survive a remount with the same cache.

Several processes may update the file: every change takes an exclusive lock on
``<config>.lock`` and rewrites the file atomically.
"""

from __future__ import annotations

import bisect
import configparser
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog
from .errors import UsageError
from .index import StreamIndex

SECTION = "bookmarks"
_NAME = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+=-]{0,199}$")
_OFFSET = re.compile(r"^(\d+)(?:\s+(s3://\S*))?$")


@dataclass(frozen=True)
class Bookmark:
    """A parsed bookmark value: an offset (with its source) or s3tail's KEY:LINE."""

    offset: int | None = None
    source: str | None = None
    key: str | None = None
    line: int = 0

    @classmethod
    def parse(cls, text: str) -> Bookmark:
        text = text.strip()
        match = _OFFSET.match(text)
        if match:
            return cls(offset=int(match.group(1)), source=match.group(2))
        key, colon, line = text.rpartition(":")
        if colon and line.isdigit():
            return cls(key=key, line=int(line))
        raise UsageError(f"not a bookmark: {text!r} (expected an offset or KEY:LINE)")

    def format(self) -> str:
        if self.offset is not None:
            return f"{self.offset} {self.source}" if self.source else str(self.offset)
        return f"{self.key}:{self.line}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"bad bookmark name {name!r}: use letters, digits, '.', '_', '-', '@', '+'")
    return name


class BookmarkStore:
    """The ``[bookmarks]`` section of one config file."""

    def __init__(self, config_file: Path) -> None:
        self.path = config_file

    def _read(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        if self.path.exists():
            parser.read(self.path, encoding="utf-8")
        return parser

    def all(self) -> dict[str, Bookmark]:
        parser = self._read()
        if not parser.has_section(SECTION):
            return {}
        found = {}
        for name, value in parser.items(SECTION):
            try:
                found[name] = Bookmark.parse(value)
            except UsageError:
                continue  # someone else's entry: leave it alone
        return found

    def get(self, name: str) -> Bookmark | None:
        return self.all().get(name)

    def set(self, name: str, bookmark: Bookmark) -> None:
        with self._locked() as parser:
            if not parser.has_section(SECTION):
                parser.add_section(SECTION)
            parser.set(SECTION, check_name(name), bookmark.format())

    def remove(self, name: str) -> bool:
        with self._locked() as parser:
            return parser.has_section(SECTION) and parser.remove_option(SECTION, name)

    @contextmanager
    def _locked(self) -> Iterator[configparser.ConfigParser]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            parser = self._read()
            yield parser
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    parser.write(handle)
                if self.path.exists():
                    os.chmod(tmp, self.path.stat().st_mode & 0o777)
                os.rename(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


class StreamBookmarks:
    """The bookmarks of one mount's stream, resolved to offsets."""

    def __init__(self, store: BookmarkStore, source: str, catalog: Catalog, index: StreamIndex) -> None:
        self.store = store
        self.source = source
        self.catalog = catalog
        self.index = index

    def _mine(self, bookmark: Bookmark) -> bool:
        if bookmark.offset is not None:
            return bookmark.source in (None, self.source)
        return bookmark.key == "" or bookmark.key.startswith(self.catalog.tree.dir_prefix)

    def names(self) -> list[str]:
        return sorted(name for name, bookmark in self.store.all().items() if self._mine(bookmark))

    def offset(self, name: str) -> int | None:
        bookmark = self.store.get(name)
        if bookmark is None or not self._mine(bookmark):
            return None
        return self.resolve(bookmark)

    def resolve(self, bookmark: Bookmark) -> int:
        if bookmark.offset is not None:
            return bookmark.offset
        keys = sorted(self.catalog.by_key)
        following = bisect.bisect_right(keys, bookmark.key or "")
        if following == len(keys) or keys[following] not in self.index.position_of:
            return self.index.total()
        entry = self.catalog.by_key[keys[following]]
        cached = self.catalog.materialize(entry)
        inner = _start_of_line(cached.path, bookmark.line)
        return self.index.start(self.index.position_of[entry.key]) + inner

    def set(self, name: str, value: str) -> None:
        bookmark = Bookmark.parse(value)
        if bookmark.offset is not None and bookmark.source is None:
            bookmark = Bookmark(offset=bookmark.offset, source=self.source)
        self.store.set(check_name(name), bookmark)

    def set_offset(self, name: str, offset: int) -> None:
        self.store.set(check_name(name), Bookmark(offset=offset, source=self.source))

    def remove(self, name: str) -> bool:
        return self.store.remove(name)


def _start_of_line(path: Path, line: int) -> int:
    """Byte offset where line ``line + 1`` starts (the end of the file if it has fewer)."""
    position = 0
    remaining = line
    with open(path, "rb") as handle:
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
