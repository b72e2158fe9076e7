"""Bookmarks belong to their source, survive any remount, and crawlers never move a cursor."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pytest

from s3logfs.engine.bookmarks import Bookmark, BookmarkStore

from helpers import Mount, put_all, run, stream_reference, wait_for

LOGS = {
    "logs/2026-11-01-00-00-00-A": b"a one\na two\n",
    "logs/2026-11-01-00-05-00-B": gzip.compress(b"b one\nb two\nb three\n"),
    "logs/2026-11-01-00-10-00-C": b"c one\n",
}


def xattr_names(mount: Mount) -> list[str]:
    listed = run(["getfattr", "-d", "-m", "user.s3logfs.bookmark", str(mount.path / "stream")], check=False)
    return [line.split("=")[0] for line in listed.stdout.decode().splitlines() if line.startswith("user.")]


def set_bookmark(mount: Mount, name: str, value: str) -> None:
    run(["setfattr", "-n", f"user.s3logfs.bookmark.{name}", "-v", value, str(mount.path / "stream")])


def offset_of(mount: Mount, name: str) -> int:
    return int(run(["getfattr", "--only-values", "-n", f"user.s3logfs.bookmark.{name}",
                    str(mount.path / "stream")]).stdout)


@pytest.fixture
def two_buckets(s3: Any, bucket: str) -> tuple[str, str]:
    other = f"{bucket}-other"
    s3.create_bucket(Bucket=other)
    put_all(s3, bucket, LOGS)
    put_all(s3, other, {"logs/2026-11-02-00-00-00-Z": b"other bucket\n"})
    return bucket, other


def test_a_bookmark_belongs_to_its_source(two_buckets: tuple[str, str], mount_factory: Any) -> None:
    mine, other = two_buckets
    first = mount_factory(mine, "logs/", "--writable-bookmarks")
    second = mount_factory(other, "logs/", "--writable-bookmarks")
    assert first.config_file == second.config_file  # one config file for both mounts
    set_bookmark(first, "by-offset", "6")
    set_bookmark(first, "by-line", "logs/2026-11-01-00-00-00-A:1")
    run(["touch", str(first.path / ".bookmarks" / "cursor")])
    assert set(xattr_names(first)) == {f"user.s3logfs.bookmark.{n}" for n in ("by-offset", "by-line", "cursor")}
    assert xattr_names(second) == []
    assert os.listdir(second.path / ".bookmarks") == []
    assert not (second.path / ".bookmarks" / "cursor").exists()
    stored = first.config_file.read_bytes()
    assert f"s3://{mine}/logs/".encode() in stored

    run(["grep", "-r", ".", str(second.path)])
    run(["cat", str(second.path / "stream")])
    assert first.config_file.read_bytes() == stored

    taken = run(["touch", str(second.path / ".bookmarks" / "cursor")], check=False)
    assert taken.returncode != 0 and b"exists" in taken.stderr  # never taken over by another source
    refused = run(["setfattr", "-n", "user.s3logfs.bookmark.by-line", "-v", "0", str(second.path / "stream")],
                  check=False)
    assert refused.returncode != 0
    assert first.config_file.read_bytes() == stored
    assert offset_of(first, "by-offset") == 6
    assert offset_of(first, "by-line") == len(b"a one\na two\nb one\n")  # line 2 of the key after A


def test_offsets_are_stored_as_a_key_and_a_byte(s3: Any, bucket: str, mount_factory: Any) -> None:
    put_all(s3, bucket, LOGS)
    mount = mount_factory(bucket, "logs/", "--writable-bookmarks")
    expected = stream_reference(s3, bucket, sorted(LOGS))
    at = len(b"a one\na two\nb one\n")
    set_bookmark(mount, "there", str(at))
    stored = BookmarkStore(mount.config_file).get("there")
    assert stored == Bookmark(source=f"s3://{bucket}/logs/", key="logs/2026-11-01-00-05-00-B", byte=len(b"b one\n"))
    assert run(["tail", "-c", f"+{offset_of(mount, 'there') + 1}", str(mount.path / "stream")]).stdout == expected[at:]
    total = len(expected)
    for bad in (str(total + 1), "not-a-bookmark", "12abc", "s3://elsewhere/x k@1"):
        refused = run(["setfattr", "-n", "user.s3logfs.bookmark.bad", "-v", bad, str(mount.path / "stream")],
                      check=False)
        assert refused.returncode != 0 and b"Invalid argument" in refused.stderr, bad
    set_bookmark(mount, "end", str(total))
    assert offset_of(mount, "end") == total


def test_a_cursor_survives_a_remount_with_a_new_cache(s3: Any, bucket: str, mount_factory: Any,
                                                      tmp_path: Path) -> None:
    put_all(s3, bucket, LOGS)
    first = mount_factory(bucket, "logs/", "--writable-bookmarks")
    cursor = first.path / ".bookmarks" / "daily"
    run(["touch", str(cursor)])
    assert run(["cat", str(cursor)]).stdout == stream_reference(s3, bucket, sorted(LOGS))
    run(["fusermount", "-u", str(first.path)])

    second = mount_factory(bucket, "logs/", "--poll-interval", "1", cache_dir=tmp_path / "fresh-cache")
    cursor = second.path / ".bookmarks" / "daily"
    assert run(["cat", str(cursor)]).stdout == b""
    s3.put_object(Bucket=bucket, Key="logs/2026-11-01-00-15-00-D", Body=gzip.compress(b"d new\n"))
    wait_for(lambda: os.stat(cursor).st_size > 0, timeout=1 + 2)
    assert run(["cat", str(cursor)]).stdout == b"d new\n"
    assert run(["cat", str(cursor)]).stdout == b""


def test_crawlers_never_see_or_move_a_cursor(s3: Any, bucket: str, mount_factory: Any) -> None:
    put_all(s3, bucket, LOGS)
    mount = mount_factory(bucket, "logs/", "--writable-bookmarks")
    run(["touch", str(mount.path / ".bookmarks" / "cron")])
    before = mount.config_file.read_bytes()
    assert ".bookmarks" not in os.listdir(mount.path)
    found = run(["find", str(mount.path)], text=True).stdout
    assert ".bookmarks" not in found and "cron" not in found
    listed = run(["ls", "-laR", str(mount.path)], text=True).stdout
    assert ".bookmarks" not in listed
    grep = run(["grep", "-r", "-c", "one", str(mount.path)], text=True).stdout
    assert ".bookmarks" not in grep and "stream:" in grep
    assert mount.config_file.read_bytes() == before
    assert os.listdir(mount.path / ".bookmarks") == ["cron"]  # reachable by its path
    per_key = run(["grep", "-r", "--exclude=stream", "one", str(mount.path)], text=True).stdout
    assert len(per_key.splitlines()) == 3  # each matching line once, from its own file


def test_an_s3tail_bookmark_stays_in_s3tail_form(s3: Any, bucket: str, mount_factory: Any) -> None:
    """A bare KEY:LINE (as s3tail wrote it) applies where its key can be named, and stays bare."""
    put_all(s3, bucket, LOGS)
    mount = mount_factory(bucket, "logs/")
    mount.config_file.write_text("# mine\n[bookmarks]\n; s3tail's\nold = logs/2026-11-01-00-00-00-A:1\n")
    cursor = mount.path / ".bookmarks" / "old"
    assert run(["cat", str(cursor)]).stdout == b"b two\nb three\nc one\n"
    # read to the end of C: line 2 of the key after B, in s3tail's form; every other line as it was
    assert mount.config_file.read_text() == "# mine\n[bookmarks]\n; s3tail's\nold = logs/2026-11-01-00-05-00-B:1\n"
    other_prefix = mount_factory(bucket, "elsewhere/")
    assert os.listdir(other_prefix.path / ".bookmarks") == []


def test_mount_shows_read_only_with_its_full_source(s3: Any, bucket: str, mount_factory: Any) -> None:
    put_all(s3, bucket, LOGS)
    mount = mount_factory(bucket, "logs/2026-11")
    with open("/proc/mounts", encoding="utf-8") as mounts:
        line = next(line for line in mounts if line.split()[1] == str(mount.path))
    source, _, kind, options = line.split()[:4]
    assert source == f"s3://{bucket}/logs/2026-11"
    assert kind == "fuse.s3logfs"
    assert "ro" in options.split(",")
    refused = run(["setfattr", "-n", "user.s3logfs.bookmark.x", "-v", "0", str(mount.path / "stream")], check=False)
    assert b"Read-only file system" in refused.stderr
