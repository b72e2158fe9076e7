"""``s3logfs cat`` and ``s3logfs bookmarks`` beside a mount of the same prefix: the same bytes, one bookmark."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from s3logfs.devtools.localserver import LocalS3Server

from helpers import bookmark_line, run, s3logfs_command, wait_for


def test_cat_prints_the_stream(cat: Any, logs: bytes, mount_factory: Any, bucket: str) -> None:
    """s3tail's README: ``s3tail s3://bucket/prefix``; the same bytes as the mount's stream."""
    result = cat()
    assert result.stdout == logs
    assert bookmark_line(result) == "logs/2016-08-04-00-25-10-C:1"  # after D's only line
    mount = mount_factory(bucket, "logs/")
    assert run(["cat", str(mount.path / "stream")]).stdout == result.stdout
    assert cat(prefix="logs/2016-08-04-00-2").stdout == logs[len(b"a1\na2\na3\n"):-len(b"d1\n")]


def test_cat_and_a_mount_share_one_bookmark(cat: Any, logs: bytes, s3: Any, bucket: str,
                                            mount_factory: Any, tmp_path: Path) -> None:
    mount = mount_factory(bucket, "logs/", "--poll-interval", "1")
    config = ["-c", str(mount.config_file)]
    assert cat("-b", "shared", *config).stdout == logs  # cat first: it creates the bookmark
    cursor = mount.path / ".bookmarks" / "shared"
    assert run(["cat", str(cursor)]).stdout == b""  # the mount resumes where cat stopped
    s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-35-10-E", Body=b"e1\n")
    wait_for(lambda: os.stat(cursor).st_size > 0, timeout=1 + 2)
    assert run(["cat", str(cursor)]).stdout == b"e1\n"  # then the mount reads
    assert cat("-b", "shared", *config).stdout == b""  # and cat resumes where the mount stopped
    s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-40-10-F", Body=b"f1\n")
    assert cat("-b", "shared", *config).stdout == b"f1\n"
    wait_for(lambda: os.stat(mount.path / "stream").st_size == len(logs) + 6, timeout=1 + 2)
    assert run(["cat", str(cursor)]).stdout == b""


def test_bookmarks_command(server: LocalS3Server, bucket: str, logs: bytes, mount_factory: Any, cat: Any,
                           tmp_path: Path) -> None:
    mount = mount_factory(bucket, "logs/")
    config = ["-c", str(mount.config_file)]
    run(s3logfs_command("bookmarks", "set", "by-mount", str(mount.path), "logs/2016-08-04-00-15-10-A:1", *config))
    run(s3logfs_command("bookmarks", "set", "by-url", f"s3://{bucket}/logs/", "logs/2016-08-04-00-25-10-C@3",
                        *config))
    assert run(s3logfs_command("bookmarks", "get", "by-url", *config), text=True).stdout == \
        f"s3://{bucket}/logs/ logs/2016-08-04-00-25-10-C@3\n"
    assert sorted(os.listdir(mount.path / ".bookmarks")) == ["by-mount", "by-url"]
    assert run(["cat", str(mount.path / ".bookmarks" / "by-url")]).stdout == b"c2 unterminated\nd1\n"
    assert cat("-b", "by-mount", *config).stdout == b"b2\nb3 second member\nc1\nc2 unterminated\nd1\n"
    run(s3logfs_command("bookmarks", "rm", "by-mount", *config))
    assert os.listdir(mount.path / ".bookmarks") == ["by-url"]
    missing = run(s3logfs_command("bookmarks", "rm", "by-mount", *config), check=False)
    assert missing.returncode == 1 and missing.stderr.decode().count("\n") == 1
    offset = run(s3logfs_command("bookmarks", "set", "x", f"{bucket}/logs/", "12", *config), check=False)
    assert offset.returncode == 1 and b"KEY:LINE" in offset.stderr
