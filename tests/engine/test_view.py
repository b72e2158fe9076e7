"""The mount's view driven directly, with no FUSE: paths, attributes, xattrs, content and cursor files.

:class:`LogFilesystem` knows nothing of the kernel, so what it answers is checked here against the
local S3 server and an independent reference (boto3 plus ``gzip.decompress``); the FUSE tests
check only what the kernel adds.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3logfs.engine import Engine, SourceOptions
from s3logfs.engine.s3 import S3Config
from s3logfs.errors import errno_for
from s3logfs.fs.tree import STREAM_INO
from s3logfs.fs.view import LogFilesystem

from helpers import reference, served_view

OBJECTS = {
    "logs/2026/12/01/a.log": b"a1\na2\n",
    "logs/2026/12/01/b.log.gz": gzip.compress(b"b1\nb2\nb3\n"),
    "logs/2026/12/02/c.log": b"c1\nc2 unterminated",
    "logs/stream": b"a key named like the stream file\n",
}


def _stream_reference(s3: Any, bucket: str) -> bytes:
    parts = [reference(s3, bucket, key) for key in sorted(OBJECTS)]
    return b"".join(part + (b"" if part.endswith(b"\n") else b"\n") for part in parts)


@pytest.fixture
def view(s3: Any, bucket: str, server: Any, tmp_path: Path) -> Iterator[tuple[LogFilesystem, Engine]]:
    for key, body in OBJECTS.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    options = SourceOptions(bucket=bucket, prefix="logs/", s3=S3Config(endpoint_url=server.endpoint_url),
                            cache_dir=tmp_path / "cache", bookmarks_file=tmp_path / "config.ini", poll_interval=0)
    with served_view(options) as (view, served):
        yield view, served


def _read_all(filesystem: LogFilesystem, path: str, size: int = 7) -> bytes:
    opened = filesystem.open(path, os.O_RDONLY)
    chunks, offset = [], 0
    try:
        while chunk := filesystem.read(opened.fh, size, offset):
            chunks.append(chunk)
            offset += len(chunk)
    finally:
        filesystem.flush(opened.fh)
        filesystem.release(opened.fh)
    return b"".join(chunks)


def test_the_tree_mirrors_the_keys_with_stream_listed_last(view: tuple[LogFilesystem, Engine]) -> None:
    filesystem, _ = view
    assert [entry.name for entry in filesystem.list_dir("/")] == [".", "..", "2026", "%73tream", "stream"]
    assert [entry.name for entry in filesystem.list_dir("/2026/12/01")] == [".", "..", "a.log", "b.log"]
    assert filesystem.attrs("/stream")["st_ino"] == STREAM_INO
    assert stat.S_ISDIR(filesystem.attrs("/2026/12")["st_mode"])
    with pytest.raises(Exception) as missing:
        filesystem.attrs("/2026/nope")
    assert errno_for(missing.value) == errno.ENOENT


def test_per_key_files_and_the_stream_match_the_reference(view: tuple[LogFilesystem, Engine], s3: Any,
                                                           bucket: str) -> None:
    filesystem, _ = view
    for path, key in (("/2026/12/01/b.log", "logs/2026/12/01/b.log.gz"), ("/2026/12/02/c.log", "logs/2026/12/02/c.log"),
                      ("/%73tream", "logs/stream")):
        assert _read_all(filesystem, path) == reference(s3, bucket, key), path
        assert filesystem.attrs(path)["st_size"] == len(reference(s3, bucket, key))
    expected = _stream_reference(s3, bucket)
    assert _read_all(filesystem, "/stream") == expected
    assert filesystem.attrs("/stream")["st_size"] == len(expected)


def test_xattrs_name_the_object_and_count_the_requests(view: tuple[LogFilesystem, Engine], bucket: str) -> None:
    filesystem, _ = view
    values = filesystem.xattrs("/2026/12/01/b.log")
    assert values["user.s3.key"] == b"logs/2026/12/01/b.log.gz"
    assert int(values["user.s3logfs.offset"]) == len(b"a1\na2\n")
    assert filesystem.xattr("/", "user.s3logfs.source") == f"s3://{bucket}/logs/".encode()
    stats = json.loads(filesystem.xattr("/", "user.s3logfs.stats"))
    assert stats["keys"] == len(OBJECTS) and stats["lists"] >= 1
    with pytest.raises(Exception) as foreign:
        filesystem.xattr("/", "security.selinux")
    assert errno_for(foreign.value) == errno.ENODATA


def test_a_cursor_file_reads_from_its_bookmark_and_moves_it_on_flush(view: tuple[LogFilesystem, Engine], s3: Any,
                                                                     bucket: str) -> None:
    filesystem, served = view
    expected = _stream_reference(s3, bucket)
    filesystem.create("/.bookmarks/reader")
    assert _read_all(filesystem, "/.bookmarks/reader") == expected
    assert served.bookmarks.offset("reader") == len(expected)
    assert _read_all(filesystem, "/.bookmarks/reader") == b""  # a second run sees only what is new
    assert [entry.name for entry in filesystem.list_dir("/.bookmarks")] == [".", "..", "reader"]
    filesystem.unlink("/.bookmarks/reader")
    assert served.bookmarks.get("reader") is None


def test_a_cursor_file_marks_only_complete_lines(view: tuple[LogFilesystem, Engine], s3: Any, bucket: str) -> None:
    filesystem, served = view
    filesystem.create("/.bookmarks/partial")
    opened = filesystem.open("/.bookmarks/partial", os.O_RDONLY)
    data = filesystem.read(opened.fh, 5, 0)  # "a1\na2": one complete line and a part
    filesystem.flush(opened.fh)
    filesystem.release(opened.fh)
    assert data == b"a1\na2"
    assert served.bookmarks.offset("partial") == 3
    assert _read_all(filesystem, "/.bookmarks/partial") == _stream_reference(s3, bucket)[3:]


def test_writes_are_refused_outside_bookmarks(view: tuple[LogFilesystem, Engine]) -> None:
    filesystem, _ = view
    for call in (lambda: filesystem.open("/stream", os.O_WRONLY), lambda: filesystem.unlink("/2026/12/01/a.log"),
                 lambda: filesystem.set_xattr("/2026/12/01/a.log", "user.x", b"1")):
        with pytest.raises(Exception) as refused:
            call()
        assert errno_for(refused.value) == errno.EROFS
