"""The mount's view: what each path is, its attributes, xattrs and content.

This layer knows nothing about FUSE. It answers in plain Python (dicts of ``st_*``
attributes, bytes, :class:`Opened` records) and raises the typed errors of
:mod:`s3logfs.errors`; :mod:`s3logfs.fs.fuse_ops` translates both ways. It builds the
mount's :class:`~s3logfs.fs.tree.Tree` of paths and inodes from the engine's catalog.

* Per-key files are pinned to an ETag when opened: ``open`` makes sure the decoded
  content is in the disk cache (so the size is exact from then on) and reads come from
  that file. Reopening the same ETag keeps the kernel's page cache (``keep_cache``), so a
  second ``grep`` over a file never reaches this process.
* ``stream`` and the cursor files ``.bookmarks/NAME`` grow, so they are opened with
  ``direct_io``: every read reaches :class:`~s3logfs.engine.stream.StreamReader`. A cursor
  file follows the engine's cursor protocol (:mod:`s3logfs.engine.cursor`).
* The mount is read-only. The only writes are creating and removing cursor files, and
  setting or removing bookmark xattrs on ``stream``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from ..engine import Engine, dir_prefix
from ..engine.bookmarks import Place
from ..engine.catalog import Entry
from ..engine.cursor import StreamCursor
from ..errors import S3LogFSError
from .tree import BOOKMARKS_INO, FIRST_CURSOR_INO, ROOT_INO, STREAM_INO, DirNode, FileNode, Tree

DIR_MODE = stat.S_IFDIR | 0o555
FILE_MODE = stat.S_IFREG | 0o444
CURSOR_MODE = stat.S_IFREG | 0o644
BOOKMARKS_DIR_MODE = stat.S_IFDIR | 0o755
STREAM_PATH = "/stream"
BOOKMARKS_PATH = "/.bookmarks"
BOOKMARK_XATTR = "user.s3logfs.bookmark."
_NS = 1_000_000_000
USER_XATTR = "user."
"""The only namespace of extended attributes the mount holds."""
_STATS_XATTR = "user.s3logfs.stats"
_BLKSIZE = 1 << 20
"""The preferred I/O size reported in st_blksize: cat and stdio size their reads by it, and one
large FUSE read costs far less than eight small ones."""
_AFTER_LAST = 1 << 62
"""The directory offset after an entry listed last: past any position a child can have."""
_DIR_BLKSIZE = 4096
"""A directory's st_blksize. glibc sizes readdir's buffer by it (32 KiB to 1 MiB): with 1 MiB,
``ls`` got nothing until 5,000 names were listed, instead of working through each page."""


class DirEntry(NamedTuple):
    """One entry of a directory listing."""

    name: str
    attrs: dict[str, int]
    next_offset: int
    complete: bool = False
    """Whether ``attrs`` hold all that ``stat`` would say, not only the type and inode number."""


def _short(mode: int, ino: int) -> dict[str, int]:
    """The attributes a plain readdir passes on: the type and the inode number."""
    return {"st_mode": mode, "st_ino": ino}


def _fixed_entries(fixed: list[tuple[str, int, int]], start: int) -> Iterator[DirEntry]:
    """Entries known up front, ``(name, mode, inode)`` each, from position ``start`` on."""
    for position in range(start, len(fixed)):
        name, mode, ino = fixed[position]
        yield DirEntry(name, _short(mode, ino), position + 1)


class NotFound(S3LogFSError):
    errno = errno.ENOENT


class ReadOnly(S3LogFSError):
    errno = errno.EROFS


class NoAttribute(S3LogFSError):
    errno = errno.ENODATA


@dataclass(frozen=True)
class Opened:
    """What ``open`` gives the FUSE layer: a handle and how the kernel should cache it."""

    fh: int
    direct_io: bool
    keep_cache: bool = False
    flush_on_close: bool = False
    """Whether close(2) must reach :meth:`LogFilesystem.flush` (cursor files do); the others
    spare the kernel that round trip."""


@dataclass
class Handle:
    """An open file: a descriptor on a per-key file, or a cursor in the stream (named for a cursor file)."""

    entry: Entry | None = None
    fd: int = -1
    cursor: StreamCursor | None = None
    base: int = 0
    """The stream offset of the file's first byte: a cursor file starts at its bookmark."""


@dataclass(frozen=True)
class ViewOptions:
    """What the view needs from the mount options."""

    source: str
    revalidate_after: float
    uid: int
    gid: int


@dataclass
class _Handles:
    table: dict[int, Handle] = field(default_factory=dict)
    next_fh: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, handle: Handle) -> int:
        with self.lock:
            fh = self.next_fh
            self.next_fh += 1
            self.table[fh] = handle
            return fh

    def get(self, fh: int) -> Handle | None:
        return self.table.get(fh)

    def pop(self, fh: int) -> Handle | None:
        with self.lock:
            return self.table.pop(fh, None)


class LogFilesystem:
    """The tree of a mount: per-key files, ``stream`` and ``.bookmarks/``."""

    def __init__(self, engine: Engine, options: ViewOptions) -> None:
        """Before the engine lists anything: the tree hears of every key as it enters the catalog."""
        self.catalog = engine.catalog
        self.reader = engine.reader
        self.bookmarks = engine.bookmarks
        self.stats = engine.stats
        self.options = options
        self.tree = Tree(dir_prefix(engine.options.prefix), drop_gz=not engine.options.raw, keys=engine.catalog.keys)
        self.catalog.on_new_key(self.tree.add)
        self.started = datetime.now(timezone.utc).timestamp()
        self._handles = _Handles()
        self._cursor_inos: dict[str, int] = {}
        self._opened_etags: dict[int, str] = {}
        """The ETag each per-key file had when last opened: pages the kernel kept from an open
        of the same ETag are still right (``keep_cache``); a new ETag drops them."""

    # attributes -------------------------------------------------------------------

    def attrs(self, path: str) -> dict[str, int]:
        if path == STREAM_PATH:
            return self._stat(FILE_MODE, STREAM_INO, self.reader.size(), self.reader.index.mtime)
        if path == BOOKMARKS_PATH:
            return self._stat(BOOKMARKS_DIR_MODE, BOOKMARKS_INO, 0, self.started, nlink=2)
        if path.startswith(BOOKMARKS_PATH + "/"):
            name, place = self._cursor(path)
            size = max(0, self.reader.size() - place.offset)
            return self._stat(CURSOR_MODE, self._cursor_ino(name), size, self.reader.index.mtime)
        node = self._lookup(path)
        if node is None:
            raise NotFound(path)
        return self._node_attrs(node, is_root=path == "/")

    def _node_attrs(self, node: DirNode | FileNode, is_root: bool = False) -> dict[str, int]:
        if isinstance(node, FileNode):
            entry = self.catalog.entry_of_key_id(node.key_id, node.known_key)
            size, _ = self.catalog.decoded_size(entry)
            return self._file_attrs(node, entry, size)
        mtime = self.catalog.mtime if is_root else node.mtime
        return self._stat(DIR_MODE, node.ino, 0, mtime or self.started, nlink=2)

    def _file_attrs(self, node: FileNode, entry: Entry, size: int) -> dict[str, int]:
        return self._stat(FILE_MODE, node.ino, size, entry.last_modified)

    def _stat(self, mode: int, ino: int, size: int, mtime: float, nlink: int = 1) -> dict[str, int]:
        mtime_ns = int(mtime * _NS)
        return {
            "st_mode": mode,
            "st_ino": ino,
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": _DIR_BLKSIZE if stat.S_ISDIR(mode) else _BLKSIZE,
            "st_uid": self.options.uid,
            "st_gid": self.options.gid,
            "st_mtime": mtime_ns,
            "st_ctime": mtime_ns,
            "st_atime": mtime_ns,
        }

    def _cursor(self, path: str) -> tuple[str, Place]:
        """The bookmark of cursor file ``path``, and where it points; only this source's exist."""
        name = path[len(BOOKMARKS_PATH) + 1 :]
        self.reader.ready.wait()
        place = self.bookmarks.place(name) if "/" not in name else None
        if place is None:
            raise NotFound(path)
        return name, place

    def _cursor_ino(self, name: str) -> int:
        return self._cursor_inos.setdefault(name, FIRST_CURSOR_INO + len(self._cursor_inos))

    # directories ------------------------------------------------------------------

    def list_dir(self, path: str, start: int = 0, full: bool = False) -> Iterator[DirEntry]:
        """The entries from offset ``start`` on, ``.`` and ``..`` first.

        With ``full`` (for readdirplus, which spares the kernel a lookup per entry), a
        child's attributes are complete where that costs no wait and no request; ``stream``
        (listed last in the root) and cursor files keep the short form, as their size waits
        for the listing. Offsets are positions in the directory, stable because entries are
        only ever added, at the end. While the mount-time listing loads, the iterator waits
        for the next page instead of ending, so ``ls`` works through a large prefix as it
        arrives. Inodes must be non-zero: with ``use_ino``, readdir(3) skips inode 0.
        """
        if path == BOOKMARKS_PATH:
            fixed = [(".", BOOKMARKS_DIR_MODE, BOOKMARKS_INO), ("..", DIR_MODE, ROOT_INO)]
            fixed += [(name, CURSOR_MODE, self._cursor_ino(name)) for name in self.bookmarks.names()]
            return _fixed_entries(fixed, start)
        node = self._lookup(path)
        if not isinstance(node, DirNode):
            raise NotFound(path)
        fixed = [(".", DIR_MODE, node.ino), ("..", DIR_MODE, node.parent_ino)]
        if path != "/":
            return self._dir_entries(node, fixed, start, full)
        # .bookmarks is reachable by its path but never listed: crawlers (grep -r, find, updatedb,
        # backups) would otherwise read every cursor file, and each read moves a bookmark.
        return self._dir_entries(node, fixed, start, full, last=("stream", FILE_MODE, STREAM_INO))

    def _dir_entries(self, node: DirNode, fixed: list[tuple[str, int, int]], start: int, full: bool,
                     last: tuple[str, int, int] | None = None) -> Iterator[DirEntry]:
        """``fixed``, the children as they are listed, then ``last`` once the listing is in.

        The root lists ``stream`` last: ``ls -l`` stats each entry as it reads it, and the
        size of ``stream`` waits for the whole listing, so listed first it kept ``ls -l``
        from working through the keys while the listing loads.
        """
        if start >= _AFTER_LAST:
            return
        yield from _fixed_entries(fixed, start)
        position = max(start, len(fixed))
        while True:
            loading = not self.catalog.loaded.is_set()
            seen = len(self.catalog.entries)
            while position - len(fixed) < len(node.order):  # by index: a call reads only what fits
                child = node.order[position - len(fixed)]
                position += 1
                yield self._child_entry(child, position, full)
            if not loading:
                if last is not None:
                    yield DirEntry(last[0], _short(last[1], last[2]), _AFTER_LAST)
                return
            if position > start:  # hand over what there is; an empty answer would mean the end
                return
            self.catalog.wait_for_more(seen)

    def _child_entry(self, child: DirNode | FileNode, next_offset: int, full: bool) -> DirEntry:
        if isinstance(child, DirNode):
            if full:
                return DirEntry(child.name, self._node_attrs(child), next_offset, complete=True)
            return DirEntry(child.name, _short(DIR_MODE, child.ino), next_offset)
        if full:
            entry = self.catalog.entry_of_key_id(child.key_id, child.known_key)
            size = self.catalog.local_size(entry)
            if size is not None:
                return DirEntry(child.name, self._file_attrs(child, entry, size), next_offset, complete=True)
        return DirEntry(child.name, _short(FILE_MODE, child.ino), next_offset)

    def _lookup(self, path: str) -> DirNode | FileNode | None:
        """The node at ``path``; a path not listed yet is looked up again once the listing is in.

        Only a name that is not there, or not listed yet, waits, and at most until the
        mount-time listing ends.
        """
        node = self.tree.lookup(path)
        if node is None and not self.catalog.loaded.is_set():
            self.catalog.loaded.wait()
            node = self.tree.lookup(path)
        return node

    # content ----------------------------------------------------------------------

    def open(self, path: str, flags: int) -> Opened:
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND)
        if writes and not (path.startswith(BOOKMARKS_PATH + "/") and not flags & (os.O_TRUNC | os.O_APPEND)):
            raise ReadOnly(path)
        if path == STREAM_PATH:
            cursor = StreamCursor(self.reader, self.bookmarks, Place(0, 0, 0), name=None)
            return Opened(self._handles.add(Handle(cursor=cursor)), direct_io=True)
        if path.startswith(BOOKMARKS_PATH + "/"):
            name, place = self._cursor(path)
            handle = Handle(cursor=StreamCursor(self.reader, self.bookmarks, place, name), base=place.offset)
            return Opened(self._handles.add(handle), direct_io=True, flush_on_close=True)
        node = self._lookup(path)
        if not isinstance(node, FileNode):
            raise NotFound(path)
        entry = self.catalog.entry_of_key_id(node.key_id, node.known_key)
        self.catalog.revalidate(entry, self.options.revalidate_after)
        cached, fd = self.catalog.open_decoded(entry)
        keep_cache = self._opened_etags.get(node.ino) == cached.etag
        self._opened_etags[node.ino] = cached.etag
        return Opened(self._handles.add(Handle(entry=entry, fd=fd)), direct_io=False, keep_cache=keep_cache)

    def create(self, path: str) -> Opened:
        """Only cursor files can be created: a new bookmark at the start of the stream.

        A name that another source's bookmark holds is refused (EEXIST), never taken over.
        """
        if not path.startswith(BOOKMARKS_PATH + "/") or "/" in path[len(BOOKMARKS_PATH) + 1 :]:
            raise ReadOnly(path)
        self.bookmarks.create(path[len(BOOKMARKS_PATH) + 1 :])
        return self.open(path, os.O_RDONLY)

    def read(self, fh: int, size: int, offset: int) -> bytes:
        handle = self._handles.table[fh]
        if handle.cursor is None:
            return os.pread(handle.fd, size, offset)
        data = handle.cursor.read(size, handle.base + offset)
        if handle.cursor.name is not None:  # what read() returned, the kernel handed over
            handle.cursor.took(data)
        return data

    def flush(self, fh: int) -> None:
        """close(2) on a cursor file moves its bookmark.

        Here and not only in :meth:`release`: the kernel sends RELEASE after close(2)
        has returned, so a ``cat`` run right after another could still see the old
        bookmark. FLUSH is answered before close(2) returns.
        """
        handle = self._handles.get(fh)
        if handle is not None and handle.cursor is not None:
            handle.cursor.save()

    def release(self, fh: int) -> None:
        handle = self._handles.pop(fh)
        if handle is None:
            return
        if handle.cursor is not None:  # a bookmark set by hand after a close is not undone here
            handle.cursor.close()
            handle.cursor.save()
        elif handle.fd >= 0:
            os.close(handle.fd)

    def unlink(self, path: str) -> None:
        if not path.startswith(BOOKMARKS_PATH + "/"):
            raise ReadOnly(path)
        name, _ = self._cursor(path)
        self.bookmarks.remove(name)

    def touch(self, path: str) -> None:
        """utimens: allowed (and ignored) on cursor files, so that ``touch`` works."""
        if not path.startswith(BOOKMARKS_PATH + "/"):
            raise ReadOnly(path)
        self._cursor(path)

    # extended attributes ----------------------------------------------------------

    def xattrs(self, path: str) -> dict[str, bytes]:
        if path == "/":
            return {
                "user.s3logfs.source": self.options.source.encode(),
                _STATS_XATTR: json.dumps(self.stats.snapshot(), sort_keys=True).encode(),
            }
        if path == STREAM_PATH:
            names = self.bookmarks.names()
            return {BOOKMARK_XATTR + name: b"" for name in names}
        if path == BOOKMARKS_PATH or path.startswith(BOOKMARKS_PATH + "/"):
            return {}
        node = self._lookup(path)
        if not isinstance(node, FileNode):
            if node is None:
                raise NotFound(path)
            return {}
        return self._entry_xattrs(self.catalog.entry_of_key_id(node.key_id, node.known_key))

    def _entry_xattrs(self, entry: Entry) -> dict[str, bytes]:
        info = entry.info
        modified = datetime.fromtimestamp(info.last_modified, timezone.utc).isoformat().replace("+00:00", "Z")
        values = {
            "user.s3.key": info.key.encode("utf-8", "surrogateescape"),
            "user.s3.etag": info.etag.encode(),
            "user.s3.size": str(info.size).encode(),
            "user.s3.last_modified": modified.encode(),
        }
        position = self.reader.index.position_of.get(info.key)
        if position is not None:
            values["user.s3logfs.offset"] = str(self.reader.index.start(position)).encode()
        cached = self.catalog.cached(entry)
        if cached is not None:
            values["user.s3logfs.cache_path"] = str(cached.path).encode()
        return values

    def xattr(self, path: str, name: str) -> bytes:
        if not name.startswith(USER_XATTR):
            raise NoAttribute(name)
        if path == STREAM_PATH and name.startswith(BOOKMARK_XATTR):
            self.reader.ready.wait()
            offset = self.bookmarks.offset(name[len(BOOKMARK_XATTR) :])
            if offset is None:
                raise NoAttribute(name)
            return str(offset).encode()
        if path == "/" and name == _STATS_XATTR:
            self.catalog.loaded.wait()  # counters of the whole mount-time listing, not of its first pages
        value = self.xattrs(path).get(name)
        if value is None:
            raise NoAttribute(name)
        return value

    def set_xattr(self, path: str, name: str, value: bytes) -> None:
        if path != STREAM_PATH or not name.startswith(BOOKMARK_XATTR):
            raise ReadOnly(path)
        self.reader.ready.wait()
        self.bookmarks.set_from_user(name[len(BOOKMARK_XATTR) :], value.decode("utf-8", "replace"))

    def remove_xattr(self, path: str, name: str) -> None:
        if path != STREAM_PATH or not name.startswith(BOOKMARK_XATTR):
            raise ReadOnly(path)
        if not self.bookmarks.remove(name[len(BOOKMARK_XATTR) :]):
            raise NoAttribute(name)

    def close(self) -> None:
        for fh in list(self._handles.table):
            self.release(fh)
