"""FUSE operations: a thin translation between mfusepy and :class:`LogFilesystem`.

Each operation delegates in a line or two. :func:`_translated` turns the typed errors of
the lower layers into errno (one place, see :func:`s3logfs.errors.errno_for`), and logs
anything unexpected instead of letting mfusepy report it as EINVAL.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import mfusepy as fuse

from ..errors import S3LogFSError, errno_for
from .view import USER_XATTR, DirEntry, LogFilesystem, Opened

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_QUIET = {errno.ENOENT, errno.ENODATA, errno.EROFS}
_SERVED_XATTR_PREFIX = USER_XATTR.encode()


_threads_with_state: set[int] = set()


def _keep_thread_state() -> None:
    """Give the calling libfuse thread a Python thread state that outlives the callback.

    ctypes makes a fresh thread state for every callback from a thread Python did not
    start, and frees it on return: a new frame stack each time, so page faults on every
    FUSE operation (4 per file of ``ls -l``). Holding one extra ``PyGILState_Ensure``
    per thread keeps the state, as ctypes' own release then leaves it in place. libfuse
    3 keeps its workers (up to ``max_threads``, 10) for the whole mount, so this holds
    one small state per worker; a worker that libfuse retires leaves its state behind.
    """
    ident = threading.get_ident()
    if ident not in _threads_with_state:
        _threads_with_state.add(ident)
        ctypes.pythonapi.PyGILState_Ensure()


def _translated(method: F) -> F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _keep_thread_state()
        try:
            return method(*args, **kwargs)
        except fuse.FuseOSError:
            raise
        except Exception as error:  # every failure becomes an errno, never EINVAL by accident
            code = errno_for(error)
            if code not in _QUIET:
                # An expected failure (S3 away, a corrupt object) is one line; anything else is a bug: its traceback.
                log.error("%s%s failed: %s", method.__name__, args[1:2], error,
                          exc_info=not isinstance(error, S3LogFSError))
            raise fuse.FuseOSError(code) from error

    return wrapper  # type: ignore[return-value]


FUSE_READDIR_PLUS = 1 << 0
"""libfuse 3's readdir flag: the kernel asked for READDIRPLUS."""
FUSE_FILL_DIR_PLUS = 1 << 1
"""The filler flag saying an entry's attributes are complete."""


class ReaddirPlusFUSE(fuse.FUSE):
    """mfusepy's FUSE, answering READDIRPLUS with each entry's attributes.

    mfusepy 3.1 passes only the type and inode number, so the kernel looked every entry
    up again: ``ls -l`` cost a LOOKUP per file on top of its GETATTR and two GETXATTR.
    libfuse 2 has no READDIRPLUS; the GETXATTR shortcut serves both.
    """

    def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int) -> int:
        if not flags & FUSE_READDIR_PLUS or path is None:
            return super().readdir_fuse_3(path, buf, filler, offset, fip, flags)
        st = fuse.c_stat()
        entries = self.operations.readdir_plus(path.decode(self.encoding, self.errors), offset, fip.contents.fh)
        for entry in entries:
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            fuse.set_st_attrs(st, entry.attrs, use_ns=self.use_ns)
            # libfuse 3.14 counts a lookup of a complete entry before it knows the entry fits, so
            # each full buffer leaves one node it never frees: a few bytes per reply, in C.
            fill_flags = FUSE_FILL_DIR_PLUS if entry.complete else 0
            if filler(buf, entry.name.encode(self.encoding, self.errors), st, entry.next_offset, fill_flags) != 0:
                break
        return 0

    def getxattr(self, path: bytes, name: bytes, value: Any, size: int, *args: Any) -> int:
        """Names outside ``user.`` get ENODATA here: ``ls -l`` asks every file for two."""
        if not name.startswith(_SERVED_XATTR_PREFIX):
            _keep_thread_state()
            return -errno.ENODATA
        return super().getxattr(path, name, value, size, *args)


def _set_open_flags(fi: Any, opened: Opened) -> None:
    fi.fh, fi.direct_io, fi.keep_cache = opened.fh, opened.direct_io, opened.keep_cache
    if hasattr(fi, "noflush"):  # libfuse 3.11 and later; before, the kernel sends FLUSH on every close
        fi.noflush = not opened.flush_on_close


def _read_only(*_args: Any, **_kwargs: Any) -> int:
    raise fuse.FuseOSError(errno.EROFS)


class Operations(fuse.Operations):
    """The callbacks libfuse calls. ``raw_fi`` is on, so ``fi`` is the fuse_file_info."""

    use_ns = True

    def __init__(self, view: LogFilesystem, on_init: Callable[[], None], on_destroy: Callable[[], None]) -> None:
        self.view = view
        self._on_init = on_init
        self._on_destroy = on_destroy

    def init(self, path: str) -> None:
        self._on_init()

    def destroy(self, path: str) -> None:
        self._on_destroy()

    @_translated
    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        return self.view.attrs(path)

    @_translated
    def readdir_with_offset(self, path: str, offset: int, fh: int) -> Iterator[tuple[str, dict[str, int], int]]:
        """Entries from ``offset`` on; mfusepy stops pulling when the kernel's buffer is full."""
        return ((entry.name, entry.attrs, entry.next_offset) for entry in self.view.list_dir(path, offset))

    @_translated
    def readdir_plus(self, path: str, offset: int, fh: int) -> Iterator[DirEntry]:
        """As :meth:`readdir_with_offset`, with complete attributes where the view has them."""
        return self.view.list_dir(path, offset, full=True)

    @_translated
    def open(self, path: str, fi: Any) -> int:
        _set_open_flags(fi, self.view.open(path, fi.flags))
        return 0

    @_translated
    def create(self, path: str, mode: int, fi: Any) -> int:
        _set_open_flags(fi, self.view.create(path))
        return 0

    @_translated
    def unlink(self, path: str) -> int:
        self.view.unlink(path)
        return 0

    @_translated
    def utimens(self, path: str, times: Any = None) -> int:
        self.view.touch(path)
        return 0

    @_translated
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        return self.view.read(fi.fh, size, offset)

    @_translated
    def flush(self, path: str, fi: Any) -> int:
        self.view.flush(fi.fh)
        return 0

    @_translated
    def release(self, path: str, fi: Any) -> int:
        self.view.release(fi.fh)
        return 0

    @_translated
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self.view.xattr(path, name)

    @_translated
    def listxattr(self, path: str) -> list[str]:
        return list(self.view.xattrs(path))

    @_translated
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        self.view.set_xattr(path, name, value)
        return 0

    @_translated
    def removexattr(self, path: str, name: str) -> int:
        self.view.remove_xattr(path, name)
        return 0

    @_translated
    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    mkdir = mknod = rmdir = rename = link = symlink = truncate = chmod = chown = write = _read_only
