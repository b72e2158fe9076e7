"""The mount's view: what each path is, its attributes, xattrs and content.

This layer knows nothing about FUSE. It answers in plain Python (dicts of ``st_*``
attributes, bytes, :class:`Handle` objects) and raises the typed errors of
:mod:`s3logfs.errors`; :mod:`s3logfs.fuse_ops` translates both ways.

Per-key files are pinned to an ETag when opened: ``open`` makes sure the decoded content
is in the disk cache (so the size is exact from then on) and reads come from that file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from .catalog import Catalog, Entry
from .errors import S3LogFSError
from .names import DirNode, FileNode

DIR_MODE = stat.S_IFDIR | 0o555
FILE_MODE = stat.S_IFREG | 0o444
XATTR_PREFIX = "user."
_NS = 1_000_000_000


class NotFound(S3LogFSError):
    errno = errno.ENOENT


class ReadOnly(S3LogFSError):
    errno = errno.EROFS


class NoAttribute(S3LogFSError):
    errno = errno.ENODATA


@dataclass
class Handle:
    """An open per-key file: a descriptor on its cached content."""

    fd: int
    entry: Entry


@dataclass(frozen=True)
class ViewOptions:
    """What the view needs from the mount options."""

    source: str
    revalidate_after: float
    uid: int
    gid: int


class LogFilesystem:
    """The tree of a mount, served from the catalog."""

    def __init__(self, catalog: Catalog, options: ViewOptions) -> None:
        self.catalog = catalog
        self.options = options
        self.started = datetime.now(timezone.utc).timestamp()
        self._handles: dict[int, Handle] = {}
        self._next_fh = 1
        self._lock = threading.Lock()

    def _entry_at(self, path: str) -> Entry:
        node = self.catalog.tree.lookup(path)
        if not isinstance(node, FileNode):
            raise NotFound(path)
        return self.catalog.by_key[node.key]

    def attrs(self, path: str) -> dict[str, int]:
        node = self.catalog.tree.lookup(path)
        if node is None:
            raise NotFound(path)
        if isinstance(node, FileNode):
            entry = self.catalog.by_key[node.key]
            size, _ = self.catalog.decoded_size(entry)
            return self._stat(FILE_MODE, node.ino, size, entry.info.last_modified)
        mtime = self.catalog.mtime if path == "/" else node.mtime
        return self._stat(DIR_MODE, node.ino, 0, mtime or self.started, nlink=2)

    def _stat(self, mode: int, ino: int, size: int, mtime: float, nlink: int = 1) -> dict[str, int]:
        mtime_ns = int(mtime * _NS)
        return {
            "st_mode": mode,
            "st_ino": ino,
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": 128 * 1024,
            "st_uid": self.options.uid,
            "st_gid": self.options.gid,
            "st_mtime": mtime_ns,
            "st_ctime": mtime_ns,
            "st_atime": mtime_ns,
        }

    def list_dir(self, path: str) -> list[tuple[str, int, int]]:
        """``(name, mode, inode)`` of each entry, ``.`` and ``..`` first.

        Inodes must be non-zero: with ``use_ino``, readdir(3) skips entries of inode 0.
        """
        node = self.catalog.tree.lookup(path)
        if not isinstance(node, DirNode):
            raise NotFound(path)
        listing = [(".", DIR_MODE, node.ino), ("..", DIR_MODE, node.parent_ino)]
        for name, child in list(node.children.items()):
            listing.append((name, FILE_MODE if isinstance(child, FileNode) else DIR_MODE, child.ino))
        return listing

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise ReadOnly(path)
        entry = self._entry_at(path)
        self.catalog.revalidate(entry, self.options.revalidate_after)
        cached = self.catalog.materialize(entry)
        fd = os.open(cached.path, os.O_RDONLY | os.O_CLOEXEC)
        with self._lock:
            fh = self._next_fh
            self._next_fh += 1
            self._handles[fh] = Handle(fd, entry)
        return fh

    def read(self, fh: int, size: int, offset: int) -> bytes:
        return os.pread(self._handles[fh].fd, size, offset)

    def release(self, fh: int) -> None:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is not None:
            os.close(handle.fd)

    def xattrs(self, path: str) -> dict[str, bytes]:
        if path == "/":
            return {
                "user.s3logfs.source": self.options.source.encode(),
                "user.s3logfs.stats": json.dumps(self.catalog.stats.snapshot(), sort_keys=True).encode(),
            }
        node = self.catalog.tree.lookup(path)
        if node is None:
            raise NotFound(path)
        if not isinstance(node, FileNode):
            return {}
        return self._entry_xattrs(self.catalog.by_key[node.key])

    def _entry_xattrs(self, entry: Entry) -> dict[str, bytes]:
        info = entry.info
        modified = datetime.fromtimestamp(info.last_modified, timezone.utc).isoformat().replace("+00:00", "Z")
        values = {
            "user.s3.key": info.key.encode("utf-8", "surrogateescape"),
            "user.s3.etag": info.etag.encode(),
            "user.s3.size": str(info.size).encode(),
            "user.s3.last_modified": modified.encode(),
        }
        cached = self.catalog.fetcher.cached(info)
        if cached is not None:
            values["user.s3logfs.cache_path"] = str(cached.path).encode()
        return values

    def xattr(self, path: str, name: str) -> bytes:
        value = self.xattrs(path).get(name)
        if value is None:
            raise NoAttribute(name)
        return value

    def close(self) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            os.close(handle.fd)
