"""The FUSE layer alone: what READDIRPLUS and GETXATTR hand the kernel, without a mount.

No mount, but libfuse is loaded (mfusepy loads it on import), so this lives with the FUSE tests,
and the import happens in a fixture: collecting this file touches nothing of FUSE.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from s3logfs.fs.view import DIR_MODE, FILE_MODE, DirEntry

MTIME_NS = 1_763_000_000_123_456_789
ENTRIES = [
    DirEntry(".", {"st_mode": DIR_MODE, "st_ino": 5}, 1),
    DirEntry("stream", {"st_mode": FILE_MODE, "st_ino": 2}, 2),
    DirEntry("a.log", {"st_mode": FILE_MODE, "st_ino": 9, "st_size": 123, "st_mtime": MTIME_NS}, 3, complete=True),
    DirEntry("b.log.gz", {"st_mode": FILE_MODE, "st_ino": 10}, 4),
    DirEntry("c.log", {"st_mode": FILE_MODE, "st_ino": 11, "st_size": 7, "st_mtime": MTIME_NS}, 5, complete=True),
]


class ListingOperations:
    def readdir_plus(self, path: str, offset: int, fh: int) -> Iterator[DirEntry]:
        assert (path, fh) == ("/logs", 7)
        return (entry for entry in ENTRIES if entry.next_offset > offset)


@pytest.fixture(scope="module")
def fuse_ops() -> ModuleType:
    """:mod:`s3logfs.fs.fuse_ops`, loaded as a mount loads it: libfuse 3 where it is installed."""
    from s3logfs.fs.daemon import check_fuse

    check_fuse()
    from s3logfs.fs import fuse_ops  # imports mfusepy, which loads libfuse

    return fuse_ops


def unmounted_fuse(fuse_ops: ModuleType) -> Any:
    """A ReaddirPlusFUSE with what its callbacks read, but no mount (``__init__`` mounts)."""
    fs = object.__new__(fuse_ops.ReaddirPlusFUSE)
    fs.operations, fs.encoding, fs.errors, fs.use_ns = ListingOperations(), "utf-8", "surrogateescape", True
    return fs


def read_plus(fuse_ops: ModuleType, fs: Any, offset: int,
              room: int) -> list[tuple[bytes, int, int, int, int, int, int]]:
    """One READDIRPLUS with room for ``room`` entries, as libfuse's filler would take them."""
    filled: list[tuple[bytes, int, int, int, int, int, int]] = []

    def filler(buf: Any, name: bytes, st: Any, next_offset: int, flags: int) -> int:
        if len(filled) == room:
            return 1  # the buffer is full
        mtime = st.st_mtimespec.tv_sec * 10**9 + st.st_mtimespec.tv_nsec
        filled.append((name, st.st_mode, st.st_ino, st.st_size, mtime, next_offset, flags))
        return 0

    fip = SimpleNamespace(contents=SimpleNamespace(fh=7))
    assert fs.readdir_fuse_3(b"/logs", None, filler, offset, fip, fuse_ops.FUSE_READDIR_PLUS) == 0
    return filled


def test_readdirplus_marks_only_complete_entries_and_resumes_at_the_offset(fuse_ops: ModuleType) -> None:
    fs = unmounted_fuse(fuse_ops)
    plus = fuse_ops.FUSE_FILL_DIR_PLUS
    assert read_plus(fuse_ops, fs, 0, room=4) == [
        (b".", DIR_MODE, 5, 0, 0, 1, 0),
        (b"stream", FILE_MODE, 2, 0, 0, 2, 0),  # short: the kernel looks it up itself
        (b"a.log", FILE_MODE, 9, 123, MTIME_NS, 3, plus),
        (b"b.log.gz", FILE_MODE, 10, 0, 0, 4, 0),  # nothing of a.log's attributes is left over
    ]
    assert read_plus(fuse_ops, fs, 4, room=4) == [(b"c.log", FILE_MODE, 11, 7, MTIME_NS, 5, plus)]


def test_xattrs_outside_user_are_answered_without_the_view(fuse_ops: ModuleType) -> None:
    fs = unmounted_fuse(fuse_ops)  # its operations have no getxattr: reaching them would raise
    assert fs.getxattr(b"/logs/a.log", b"security.selinux", None, 0) == -errno.ENODATA
    assert fs.getxattr(b"/logs/a.log", b"system.posix_acl_access", None, 0) == -errno.ENODATA
