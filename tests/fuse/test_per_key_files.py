"""The per-key files of a real mount, driven with real tools, against a real S3 server."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import gets_of, put_all, reference, run, stat_size, wait_for

CONTENTS: dict[str, bytes] = {
    "logs/plain.log": b"GET /a 200\nGET /b 404\n",
    "logs/single.log.gz": gzip.compress(b"single member line 1\nsingle member line 2\n"),
    "logs/multi.gz": gzip.compress(b"member one\n") + gzip.compress(b"member two\n") + gzip.compress(b"three\n"),
    "logs/empty.log": b"",
}
NAMES = {
    "logs/plain.log": "plain.log",
    "logs/single.log.gz": "single.log",
    "logs/multi.gz": "multi",
    "logs/empty.log": "empty.log",
}


SPECIAL = {"stream", ".bookmarks"}


def keyed_names(path: Path) -> list[str]:
    """The per-key names in a directory: everything but ``stream`` and ``.bookmarks``."""
    return sorted(set(os.listdir(path)) - SPECIAL)


def cat(path: Path) -> bytes:
    return run(["cat", str(path)]).stdout


def test_exact_content_and_sizes(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, CONTENTS)
    mount = mount_one(prefix="logs/")
    assert keyed_names(mount.path) == sorted(NAMES.values())
    for key, name in NAMES.items():
        expected = reference(s3, bucket, key)
        if key != "logs/multi.gz":  # the gzip trailer gives a multi-member object's last member only
            assert stat_size(mount.path / name) == len(expected), key
        assert cat(mount.path / name) == expected, key
        assert stat_size(mount.path / name) == len(expected), key


def test_large_gzip_streams_with_bounded_memory(s3: Any, bucket: str, mount_one: Any) -> None:
    from datetime import datetime, timezone

    from s3logfs.devtools.demo_data import large_gzip_object

    big = large_gzip_object(random.Random(7), datetime(2026, 11, 21, tzinfo=timezone.utc), 50_000_000, prefix="big/")
    s3.put_object(Bucket=bucket, Key=big.key, Body=big.body)
    expected_digest = hashlib.sha256(reference(s3, bucket, big.key)).hexdigest()
    assert len(big.content) >= 50_000_000
    del big
    mount = mount_one()
    files = [Path(root) / name for root, _, names in os.walk(mount.path) for name in names if name != "stream"]
    assert len(files) == 1
    digest = hashlib.sha256()
    with subprocess.Popen(["cat", str(files[0])], stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        total = 0
        while chunk := process.stdout.read(1 << 20):
            digest.update(chunk)
            total += len(chunk)
    assert digest.hexdigest() == expected_digest
    assert stat_size(files[0]) == total
    assert mount.pid is not None
    status = Path(f"/proc/{mount.pid}/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    assert peak_kb < 200 * 1024, f"daemon peak RSS {peak_kb} kB"


def test_second_read_is_served_from_cache(s3: Any, bucket: str, mount_one: Any, server: LocalS3Server) -> None:
    put_all(s3, bucket, CONTENTS)
    mount = mount_one(prefix="logs/")
    first = cat(mount.path / "single.log")
    gets_after_first = len(gets_of(server, "logs/single.log.gz"))
    assert gets_after_first >= 1
    assert cat(mount.path / "single.log") == first
    assert len(gets_of(server, "logs/single.log.gz")) == gets_after_first


def test_cache_layout_and_permissions(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, CONTENTS)
    mount = mount_one(prefix="logs/")
    content = cat(mount.path / "multi")
    digest = hashlib.sha256(f"{bucket}/logs/multi.gz".encode()).hexdigest()
    cache_file = mount.cache_dir / digest[:2] / digest
    assert cache_file.read_bytes() == content
    assert stat.S_IMODE(mount.cache_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    xattr = run(["getfattr", "--only-values", "-n", "user.s3logfs.cache_path", str(mount.path / "multi")]).stdout
    assert xattr.decode() == str(cache_file)


def test_replaced_object_is_fetched_again(s3: Any, bucket: str, mount_one: Any, server: LocalS3Server) -> None:
    s3.put_object(Bucket=bucket, Key="logs/app.log", Body=b"version one\n")
    mount = mount_one("--poll-interval", "1", prefix="logs/")
    assert cat(mount.path / "app.log") == b"version one\n"
    s3.put_object(Bucket=bucket, Key="logs/app.log", Body=gzip.compress(b"version two, longer\n"))
    gets_before = len(gets_of(server, "logs/app.log"))
    wait_for(lambda: cat(mount.path / "app.log") == b"version two, longer\n", timeout=15, interval=0.5)
    assert len(gets_of(server, "logs/app.log")) > gets_before
    assert stat_size(mount.path / "app.log") == len(b"version two, longer\n")


def xattrs(path: Path) -> dict[str, str]:
    output = run(["getfattr", "-d", "--absolute-names", "-e", "text", str(path)]).stdout.decode()
    values = {}
    for line in output.splitlines():
        if "=" in line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value.strip('"')
    return values


def test_xattrs_on_file_and_root(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, CONTENTS)
    later = {f"logs/z-{n:02d}.log.gz": gzip.compress(b"filler line\n" * 200) for n in range(20)}
    put_all(s3, bucket, later)  # the stream's last objects may be decoded at mount; plain.log is not among them
    mount = mount_one(prefix="logs/")
    head = s3.head_object(Bucket=bucket, Key="logs/single.log.gz")
    before = xattrs(mount.path / "single.log")
    assert before["user.s3.key"] == "logs/single.log.gz"
    assert before["user.s3.etag"] == head["ETag"].strip('"')
    assert before["user.s3.size"] == str(head["ContentLength"])
    assert before["user.s3.last_modified"].startswith(head["LastModified"].strftime("%Y-%m-%dT%H:%M:%S"))
    # objects before the stream's last few are not downloaded at mount time
    assert "user.s3logfs.cache_path" not in xattrs(mount.path / "plain.log")
    cat(mount.path / "plain.log")
    assert "user.s3logfs.cache_path" in xattrs(mount.path / "plain.log")
    root = xattrs(mount.path)
    assert root["user.s3logfs.source"] == f"s3://{bucket}/logs/"
    stats = run(["getfattr", "--only-values", "-n", "user.s3logfs.stats", str(mount.path)]).stdout
    import json

    counters = json.loads(stats)
    assert set(counters) >= {"keys", "bytes", "gets", "lists", "cache_hits", "cache_misses", "retries", "errors"}
    assert counters["keys"] == len(CONTENTS) + len(later)
    assert counters["gets"] >= 1 and counters["lists"] >= 1 and counters["cache_misses"] >= 1


def test_ls_l_shows_every_kind_of_entry(s3: Any, bucket: str, mount_one: Any) -> None:
    """``ls -laR`` over every kind of entry, the first listing of each directory through READDIRPLUS.

    The kernel builds each inode from the entry's type there, and a wrong one makes stat
    fail with EIO; sizes come from GETATTR (``attr_timeout=0``) and must be the content's.
    """
    put_all(s3, bucket, {**CONTENTS, "logs/sub/deeper.log": b"deep\n"})
    mount = mount_one("--poll-interval", "0", "--writable-bookmarks", prefix="logs/")
    run(["touch", str(mount.path / ".bookmarks" / "reader")])
    listed = run(["ls", "-laR", "--time-style=+%s", str(mount.path)], text=True).stdout
    rows: dict[Path, tuple[str, int]] = {}
    directory = mount.path
    for line in listed.splitlines():
        if line.endswith(":"):
            directory = Path(line[:-1])
            continue
        fields = line.split(None, 6)
        if len(fields) == 7 and fields[6] not in (".", ".."):  # not "total N" or a blank line
            rows[directory / fields[6]] = (fields[0][0], int(fields[4]))
    files = {"plain.log": 22, "single.log": 42, "empty.log": 0, "sub/deeper.log": 5}
    growing = {"stream", "multi"}  # sizes that change as the mount reads
    directories = {"sub"}
    assert set(rows) == {mount.path / name for name in [*files, *growing, *directories]}  # never .bookmarks
    cursors = run(["ls", "-la", str(mount.path / ".bookmarks")], text=True).stdout
    assert re.search(r"^-rw-r--r-- .* reader$", cursors, re.MULTILINE), cursors
    for name, size in files.items():
        assert rows[mount.path / name] == ("-", size) == ("-", len(cat(mount.path / name))), name
    for name in growing:
        assert rows[mount.path / name][0] == "-", name
    for name in directories:
        assert rows[mount.path / name][0] == "d", name


HOSTILE = {
    "h/a/../b": b"dot dot\n",
    "h/./x": b"dot\n",
    "h/a//b": b"double slash\n",
    "h/" + "n" * 300: b"long name\n",
    "h/new\nline": b"newline\n",
    "h/d": b"file d\n",
    "h/d/e": b"file d/e\n",
    "h/stream": b"not the stream\n",
    "h/100%": b"percent\n",
}


def test_hostile_names_are_reachable_and_contained(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, HOSTILE)
    mount = mount_one(prefix="h/")
    found: dict[str, Path] = {}
    for root, dirs, names in os.walk(mount.path):
        for name in names:
            path = Path(root) / name
            assert len(name.encode()) <= 255
            assert os.path.realpath(path).startswith(str(mount.path) + "/")
            key = run(["getfattr", "--only-values", "-n", "user.s3.key", str(path)], check=False).stdout
            if key:
                found[key.decode()] = path
    assert set(found) == set(HOSTILE)
    for key, path in found.items():
        assert cat(path) == HOSTILE[key], key


@pytest.mark.parametrize("mode", [[], ["--writable-bookmarks"]], ids=["read-only", "writable-bookmarks"])
def test_read_only(s3: Any, bucket: str, mount_one: Any, mode: list[str]) -> None:
    """Every data write fails with EROFS, whether or not bookmarks are writable."""
    put_all(s3, bucket, CONTENTS)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    mount = mount_one(*mode, prefix="logs/")
    attempts = [
        ["touch", str(mount.path / "plain.log")],
        ["touch", str(mount.path / "new-file")],
        ["rm", "-f", str(mount.path / "plain.log")],
        ["mkdir", str(mount.path / "newdir")],
        ["sh", "-c", f"echo x > '{mount.path / 'plain.log'}'"],
        ["sh", "-c", f"echo x >> '{mount.path / 'plain.log'}'"],
        ["mv", str(mount.path / "plain.log"), str(mount.path / "moved.log")],
    ]
    for command in attempts:
        result = run(command, check=False)
        assert result.returncode != 0, command
        assert b"Read-only file system" in result.stderr, (command, result.stderr)
    after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before
    assert cat(mount.path / "plain.log") == CONTENTS["logs/plain.log"]


def test_new_objects_appear_within_poll_interval(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, CONTENTS)
    mount = mount_one("--poll-interval", "1", prefix="logs/")
    s3.put_object(Bucket=bucket, Key="logs/zz-later.log", Body=b"later\n")
    wait_for(lambda: "zz-later.log" in os.listdir(mount.path), timeout=1 + 2)
    assert cat(mount.path / "zz-later.log") == b"later\n"


def test_prefix_without_slash_shows_matching_keys_of_its_directory(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, {
        "logs/production-2016-08-04-a": b"a\n",
        "logs/production-2016-08-04-b": b"b\n",
        "logs/production-2016-08-05-c": b"c\n",
        "other/x": b"x\n",
    })
    mount = mount_one(prefix="logs/production-2016-08-04")
    assert keyed_names(mount.path) == ["production-2016-08-04-a", "production-2016-08-04-b"]


def test_raw_shows_stored_bytes(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, CONTENTS)
    mount = mount_one("--raw", prefix="logs/")
    assert keyed_names(mount.path) == sorted(key.split("/")[1] for key in CONTENTS)
    assert cat(mount.path / "multi.gz") == CONTENTS["logs/multi.gz"]
    assert stat_size(mount.path / "multi.gz") == len(CONTENTS["logs/multi.gz"])


@pytest.mark.parametrize("reader", ["grep", "tail", "less"])
def test_everyday_tools_on_a_per_key_file(s3: Any, bucket: str, mount_one: Any, reader: str) -> None:
    lines = b"".join(f"line {i} status={200 if i % 7 else 500}\n".encode() for i in range(5000))
    s3.put_object(Bucket=bucket, Key="logs/app.log.gz", Body=gzip.compress(lines))
    mount = mount_one(prefix="logs/")
    path = str(mount.path / "app.log")
    if reader == "grep":
        expected = b"".join(line + b"\n" for line in lines.splitlines() if b"status=500" in line)
        assert run(["grep", "status=500", path]).stdout == expected
    elif reader == "tail":
        assert run(["tail", "-n", "3", path]).stdout == b"".join(lines.splitlines(keepends=True)[-3:])
    else:
        output = run(["less", "-E", "+G", path], env=dict(os.environ, TERM="dumb", LESS="")).stdout
        assert output.endswith(b"line 4999 status=200\n")


def test_mounting_costs_one_listing_and_foreign_xattrs_cost_nothing(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server
) -> None:
    put_all(s3, bucket, CONTENTS)
    server.middleware.reset()
    mount = mount_one("--poll-interval", "0", prefix="logs/")
    assert len(server.counters.of_kind("list")) == 1  # the access check's page is the listing
    # ls -l asks every file for security.selinux and ACLs; they are answered without a lookup
    result = run(["getfattr", "-n", "security.selinux", str(mount.path / "plain.log")], check=False)
    assert result.returncode != 0 and b"No such attribute" in result.stderr
    assert xattrs(mount.path / "plain.log")["user.s3.key"] == "logs/plain.log"
