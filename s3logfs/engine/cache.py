"""The disk cache of decoded objects, shared by mounts and ``s3logfs cat``.

Layout (s3tail's): ``CACHE/<h[0:2]>/<h>`` holds the decoded content, where ``h`` is the
SHA-256 hex of ``bucket/key``. Beside it, ``<h>.meta`` is a small JSON record: bucket,
key, ETag, size, encoding, whether the content ends with a newline (so the stream never
opens an object to learn it), and the inode of the content file it describes.

Why the inode: content and record are each written to a temp file and renamed into
place, content first. The temp file is anonymous (``O_TMPFILE``) where Linux allows it
and gets a name only just before its rename, so a writer killed half way (``kill -9``)
leaves nothing behind; elsewhere it is a named ``.*.tmp`` file that eviction removes
once it is an hour old. Each record holds the inode of the file its writer wrote (from
``fstat``, never from the path, which another writer may have replaced since). A crash
or a concurrent writer between the two renames leaves a record whose inode does not
match the content file, and :meth:`DiskCache.lookup` treats that as a miss. No partial
or mismatched file is ever served, and no lock is needed between processes.

Eviction: an entry goes after ``max_age_hours`` without access (the record's mtime is
touched on use), and the least recently used entries go while the total exceeds
``max_bytes``. With ``max_bytes``, every process sharing the directory keeps the total in
``CACHE/.size`` under an exclusive lock on ``CACHE/.lock``: a new entry is renamed into place
only after older ones made room for it, so the limit holds while several mounts and ``cat``
write at once (an entry larger than the whole limit is the one exception, until the next
write). A reader that finds an entry gone between its lookup and its open fetches it again
(:meth:`DiskCache.open_content`); an open descriptor keeps the whole content.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError

log = logging.getLogger(__name__)

META_SUFFIX = ".meta"
TMP_SUFFIX = ".tmp"
_LOCK_FILE = ".lock"
_SIZE_FILE = ".size"
_TOUCH_EVERY = 60.0
"""Seconds between two mtime updates of one record: keeps hits free of metadata writes."""
_STALE_TMP_AGE = 3600.0
"""A temp file this old belongs to a dead writer."""
_ANONYMOUS_TEMP = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
"""Whether temp files can be anonymous: Linux's O_TMPFILE, named later through /proc."""
_RECORD_READ = 16384
"""Bytes per read of a record: its key (1 KiB at most, 6 KiB once JSON-escaped) fits one read."""


@dataclass(frozen=True)
class CachedObject:
    """Decoded content on disk, as the cache vouches for it."""

    path: Path
    size: int
    etag: str
    encoding: str
    ends_with_newline: bool
    """Whether the content's last byte is a newline (False when it is empty)."""
    ino: int = 0
    """The content file's inode: a descriptor opened on ``path`` is checked against it."""

    @property
    def stream_length(self) -> int:
        """The object's length in the stream: the stream adds a newline after content that lacks one.

        This is the one newline rule: every reader of the stream (the mount, ``cat``,
        ``LogStream``) and every bookmark counts the added newline as the object's last byte.
        """
        return self.size + int(self.size > 0 and not self.ends_with_newline)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "s3logfs"


def cache_hash(bucket: str, key: str) -> str:
    return hashlib.sha256(f"{bucket}/{key}".encode("utf-8", "surrogateescape")).hexdigest()


class DiskCache:
    """A directory of decoded objects, safe to share between processes."""

    def __init__(
        self, root: Path, max_age_hours: float = 24.0, max_bytes: int | None = None, ephemeral: bool = False
    ) -> None:
        self.ephemeral = ephemeral
        self.root = root
        self._root_text = os.fspath(root)
        self.max_age = max_age_hours * 3600.0
        self.max_bytes = max_bytes
        check_cache_dir(self.root)
        _make_private_dir(self.root)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: Path, max_age_hours: float, max_bytes: int | None) -> DiskCache:
        """The cache at ``root``; with ``max_age_hours`` 0, a private one deleted on close."""
        if max_age_hours > 0:
            return cls(root, max_age_hours, max_bytes)
        return cls(Path(tempfile.mkdtemp(prefix="s3logfs-nocache-")), 0, max_bytes, ephemeral=True)

    def path_for(self, bucket: str, key: str) -> Path:
        return Path(self._content_path(bucket, key))

    def _content_path(self, bucket: str, key: str) -> str:
        """``CACHE/<h[0:2]>/<h>``, s3tail's layout, as a string (the lookups that miss need no ``Path``)."""
        digest = cache_hash(bucket, key)
        return f"{self._root_text}/{digest[:2]}/{digest}"

    def lookup(self, bucket: str, key: str, etag: str) -> CachedObject | None:
        """The cached content of ``key`` at ``etag``, or None.

        A miss costs one failed ``open``: ``ls -l`` of a new prefix looks up every key. The
        paths are strings until a hit needs a :class:`Path`.
        """
        content = self._content_path(bucket, key)
        meta_path = content + META_SUFFIX
        try:
            raw_record, record_mtime = _read_record(meta_path)
            meta = json.loads(raw_record)
            stat = os.stat(content)
        except (OSError, ValueError, RecursionError):
            return None
        path = Path(content)
        if not isinstance(meta, dict):
            return None
        if meta.get("etag") != etag or meta.get("ino") != stat.st_ino or meta.get("size") != stat.st_size:
            return None
        ends_with_newline = meta.get("ends_with_newline")
        if not isinstance(ends_with_newline, bool):  # a record written before the field existed
            ends_with_newline = _content_ends_with_newline(path, stat)
            if ends_with_newline is None:  # replaced or evicted meanwhile
                return None
        if time.time() - record_mtime > _TOUCH_EVERY:
            with contextlib.suppress(OSError):
                os.utime(meta_path)
        encoding = meta.get("encoding")
        return CachedObject(
            path, stat.st_size, etag, encoding if isinstance(encoding, str) else "plain", ends_with_newline,
            stat.st_ino,
        )

    def open_content(self, cached: CachedObject) -> int | None:
        """A read-only descriptor on ``cached``'s content; None if it was evicted or replaced since."""
        try:
            fd = os.open(cached.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        info = os.fstat(fd)
        if (cached.ino and info.st_ino != cached.ino) or info.st_size != cached.size:
            os.close(fd)
            return None
        return fd

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        """The content and record paths of ``key``."""
        path = self.path_for(bucket, key)
        return path, path.with_name(path.name + META_SUFFIX)

    @contextlib.contextmanager
    def writer(self, bucket: str, key: str, etag: str) -> Iterator[_Writer]:
        """Write an entry; it becomes visible only if the block finishes without error."""
        path, meta_path = self._paths(bucket, key)
        _make_private_dir(path.parent)
        with _atomic_file(path, self._room_for if self.max_bytes is not None else None) as handle:
            writer = _Writer(handle)
            yield writer
            handle.flush()
            stat = os.fstat(handle.fileno())  # not path.stat(): another writer may rename over it
        ends_with_newline = writer.last_byte == b"\n"
        record = {
            "bucket": bucket,
            "key": key,
            "etag": etag,
            "size": stat.st_size,
            "ino": stat.st_ino,
            "encoding": writer.encoding,
            "ends_with_newline": ends_with_newline,
        }
        _write_atomically(meta_path, json.dumps(record).encode())
        writer.result = CachedObject(path, stat.st_size, etag, writer.encoding, ends_with_newline, stat.st_ino)

    def entries(self) -> Iterator[tuple[Path, Path]]:
        """Every (content, record) pair present."""
        for meta_path in self.root.glob(f"??/*{META_SUFFIX}"):
            yield meta_path.with_name(meta_path.name[: -len(META_SUFFIX)]), meta_path

    def evict(self) -> int:
        """Drop expired entries, then LRU entries beyond the size limit. Returns entries dropped."""
        with self._lock, self._size_lock():
            dropped, total = self._evict_to(self.max_bytes)
            if self.max_bytes is not None:
                self._write_total(total)
            return dropped

    def _evict_to(self, limit: int | None) -> tuple[int, int]:
        """Drop stale temp files, expired entries, then LRU entries while the total exceeds
        ``limit``; returns the entries dropped and the total left.

        Content without its record (a writer between its two renames, or killed there) counts
        too, aged by its own mtime, so nothing escapes the limit.
        """
        now = time.time()
        dropped = self._drop_stale_temp_files(now)
        survivors: list[tuple[float, int, Path, Path]] = []
        for content, meta_path in self._contents():
            try:
                size = content.stat().st_size
                used = meta_path.stat().st_mtime if meta_path.exists() else content.stat().st_mtime
            except OSError:
                continue
            if not self.ephemeral and now - used > self.max_age:
                dropped += _remove(content, meta_path)
            else:
                survivors.append((used, size, content, meta_path))
        total = sum(size for _, size, _, _ in survivors)
        if limit is not None:
            for _, size, content, meta_path in sorted(survivors):
                if total <= limit:
                    break
                dropped += _remove(content, meta_path)
                total -= size
        return dropped, total

    def _contents(self) -> Iterator[tuple[Path, Path]]:
        """Every content file, with its record's path (which may be missing)."""
        for content in self.root.glob("??/*"):
            name = content.name
            if not name.startswith(".") and not name.endswith(META_SUFFIX):
                yield content, content.with_name(name + META_SUFFIX)

    @contextlib.contextmanager
    def _size_lock(self) -> Iterator[None]:
        """The lock every process takes to change ``CACHE/.size`` or to evict."""
        fd = os.open(self.root / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_total(self) -> int | None:
        try:
            return int((self.root / _SIZE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _write_total(self, total: int) -> None:
        try:
            (self.root / _SIZE_FILE).write_text(str(total))
        except OSError as error:
            log.warning("cannot record the cache's size: %s", error)

    @contextlib.contextmanager
    def _room_for(self, size: int) -> Iterator[None]:
        """Around the rename of ``size`` new bytes: evict until they fit, then count them."""
        with self._size_lock():
            total = self._read_total()
            assert self.max_bytes is not None
            if total is None or total + size > self.max_bytes:
                _, total = self._evict_to(max(0, self.max_bytes - size))
            yield
            self._write_total(total + size)

    def _drop_stale_temp_files(self, now: float) -> int:
        dropped = 0
        for tmp in self.root.glob(f"??/.*{TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > _STALE_TMP_AGE:
                    tmp.unlink()
                    dropped += 1
        return dropped

    def clear(self) -> int:
        """Remove every entry. Returns how many entries went."""
        dropped = 0
        with self._lock:
            for content, meta_path in list(self.entries()):
                dropped += _remove(content, meta_path)
            for tmp in self.root.glob(f"??/.*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
            (self.root / _SIZE_FILE).unlink(missing_ok=True)  # the next write with a limit counts afresh
        return dropped

    def close(self) -> None:
        if self.ephemeral:
            shutil.rmtree(self.root, ignore_errors=True)


class _Writer:
    """What :meth:`DiskCache.writer` yields: a file to write, and the encoding to record."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.encoding = "plain"
        self.last_byte = b""
        self.result: CachedObject | None = None

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        if data:
            self.last_byte = data[-1:]


def check_cache_dir(path: Path) -> None:
    """Refuse a cache directory that another user owns or that others can write to.

    Whoever can write there can plant content that the mount would serve as an object's
    (the cache trusts its records), so such a directory is never used, nor made private
    behind its owner's back. A directory that does not exist yet is created private.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise UsageError(f"cannot use cache directory {path}: {error.strerror}") from error
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"cache directory {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise UsageError(f"cache directory {path} belongs to another user (uid {info.st_uid}): "
                         "give a directory of your own with --cache-dir")
    if info.st_mode & 0o022:
        raise UsageError(f"cache directory {path} is writable by others (mode {stat.S_IMODE(info.st_mode):o}): "
                         f"run chmod go-w {path}, or give another --cache-dir")


def prepare_cache_dir(path: Path) -> None:
    """Check a cache directory and create it, private, if it is not there: fails as one line."""
    check_cache_dir(path)
    _make_private_dir(path)


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:  # /proc/nope, a read-only file system, a file in the way
        raise UsageError(f"cannot use cache directory {path}: {error.strerror or error}") from error
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def _write_atomically(path: Path, data: bytes) -> None:
    with _atomic_file(path) as handle:
        handle.write(data)


def _read_record(path: str) -> tuple[bytes, float]:
    """A record's bytes and mtime, in four system calls (``read_bytes`` and ``stat`` make eight)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mtime = os.fstat(fd).st_mtime
        chunks = [os.read(fd, _RECORD_READ)]
        while len(chunks[-1]) == _RECORD_READ:
            chunks.append(os.read(fd, _RECORD_READ))
        return b"".join(chunks), mtime
    finally:
        os.close(fd)


def _content_ends_with_newline(path: Path, expected: os.stat_result) -> bool | None:
    """Whether the content file still described by ``expected`` ends with a newline; None
    if another process has replaced or removed it since."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = os.fstat(fd)
        if (stat.st_ino, stat.st_size) != (expected.st_ino, expected.st_size):
            return None
        return stat.st_size > 0 and os.pread(fd, 1, stat.st_size - 1) == b"\n"
    except OSError:
        return None
    finally:
        os.close(fd)


RoomFor = Callable[[int], contextlib.AbstractContextManager[None]]
"""What an atomic file's publication runs inside, given its size (the cache's size limit)."""


@contextlib.contextmanager
def _atomic_file(path: Path, room_for: RoomFor | None = None) -> Iterator[BinaryIO]:
    """A file that appears at ``path``, whole, only if the block finishes without error."""
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            with room_for(os.fstat(handle.fileno()).st_size) if room_for else contextlib.nullcontext():
                _publish(handle.fileno(), tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _open_temp(path: Path) -> tuple[int, Path | None]:
    """A file to write beside ``path``: anonymous (no path) if possible, else a named temp file."""
    if _ANONYMOUS_TEMP:
        try:
            return os.open(path.parent, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600), None
        except OSError:  # a file system without O_TMPFILE support
            pass
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    return fd, Path(tmp_name)


def _publish(fd: int, tmp: Path | None, path: Path) -> None:
    """Rename the written file to ``path``; an anonymous one first gets a temp name."""
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{TMP_SUFFIX}")
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # with a dir_fd, os.link calls linkat(AT_SYMLINK_FOLLOW), which can name an O_TMPFILE file
            os.link(f"/proc/self/fd/{fd}", tmp.name, dst_dir_fd=dir_fd, follow_symlinks=True)
        finally:
            os.close(dir_fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove(content: Path, meta_path: Path) -> int:
    meta_path.unlink(missing_ok=True)
    content.unlink(missing_ok=True)
    return 1
