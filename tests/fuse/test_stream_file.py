"""MOUNT/stream: exact bytes, exact sizes from probes, random access, read-ahead, remount, bookmarks."""

from __future__ import annotations

import gzip
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import Mount, put_all, run, stat_size, stream_reference, wait_for

MIXED: dict[str, bytes] = {
    "logs/01-plain.log": b"plain one\nplain two\n",
    "logs/02-single.log.gz": gzip.compress(b"gzip one\ngzip two\ngzip three\n"),
    "logs/03-multi.gz": gzip.compress(b"member A\n") + gzip.compress(b"member B\n"),
    "logs/04-no-final-newline.log": b"first\nunterminated",
    "logs/05-empty.log": b"",
    "logs/06-after-empty.log.gz": gzip.compress(b"after the empty one\n"),
}


def full_gets(server: LocalS3Server) -> list:
    """GETs that were not tiny probes (a magic-byte head or a gzip trailer)."""
    return [r for r in server.counters.of_kind("get") if r.range not in ("bytes=0-1", "bytes=-4")]


def test_cat_stream_equals_reference(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, MIXED)
    mount = mount_one(prefix="logs/")
    expected = stream_reference(s3, bucket, sorted(MIXED))
    assert run(["cat", str(mount.path / "stream")]).stdout == expected
    assert stat_size(mount.path / "stream") == int(run(["sh", "-c", f"wc -c < '{mount.path}/stream'"]).stdout)
    assert stat_size(mount.path / "stream") == len(expected)


def test_size_is_exact_before_any_read_from_listing_and_trailers(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server
) -> None:
    rng = random.Random(3)
    objects = {}
    for number in range(60):
        lines = b"".join(f"object {number} GET /api/v1/items/{i} 200 {rng.randint(100, 999)} bytes\n".encode()
                         for i in range(rng.randint(20, 80)))
        objects[f"p/{number:03d}.log" + (".gz" if number % 2 else "")] = gzip.compress(lines) if number % 2 else lines
    for number in (10, 30):  # a tiny gzip decodes smaller than it is stored: no estimate may start above it
        objects[f"p/{number:03d}-tiny.log.gz"] = gzip.compress(b"x\n")
    put_all(s3, bucket, objects)
    expected = stream_reference(s3, bucket, sorted(objects))
    server.middleware.reset()
    server.middleware.latency = 0.02  # slow enough to watch the trailer probes land after the mount answers
    try:
        mount = mount_one(prefix="p/")
        sizes = [stat_size(mount.path / "stream")]
        while sizes[-1] != len(expected) and len(sizes) < 500:
            time.sleep(0.02)
            sizes.append(stat_size(mount.path / "stream"))
    finally:
        server.middleware.latency = 0.0
    assert sizes[-1] == len(expected)
    assert sizes == sorted(sizes)  # st_size only grows while the background probes land
    gets = server.counters.of_kind("get")
    trailers = [r.key for r in gets if r.range == "bytes=-4"]
    assert sorted(trailers) == sorted(key for key in objects if key.endswith(".gz"))  # one each, gzip names only
    assert not [r for r in gets if r.range == "bytes=0-1"]  # small plain objects are sized by the listing
    downloaded = {r.key for r in full_gets(server)}
    tiny = {key for key in objects if "tiny" in key}
    assert tiny <= downloaded  # a trailer under 1.5x the stored size looks multi-member: decoded to be sure
    assert downloaded - tiny <= set(sorted(objects)[-16:])  # else only the last objects, so tail -n is exact
    assert not {key for key in downloaded - tiny if key.endswith(".gz")}  # a single-member trailer is trusted


def test_cat_right_after_mounting_reads_gzip_objects_not_probed_yet(
    s3: Any, bucket: str, mount_one: Any, server: LocalS3Server
) -> None:
    rng = random.Random(8)
    objects = {f"z/{n:03d}.log.gz": gzip.compress(b"".join(f"{n} {i} {rng.random()}\n".encode() for i in range(400)))
               for n in range(60)}
    put_all(s3, bucket, objects)
    expected = stream_reference(s3, bucket, sorted(objects))
    server.middleware.latency = 0.05  # the trailer probes are still under way when cat starts
    try:
        mount = mount_one(prefix="z/")
        assert stat_size(mount.path / "stream") < len(expected)
        assert run(["cat", str(mount.path / "stream")]).stdout == expected
        assert run(["cat", str(mount.path / "stream")]).stdout == expected  # a new handle, from offset 0
    finally:
        server.middleware.latency = 0.0


def test_a_read_at_an_empty_objects_offset_continues_with_the_next(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, {"e/a.log": b"one\n", "e/b.log": b"", "e/c.log": b"three\n"})
    mount = mount_one(prefix="e/")
    with open(mount.path / "stream", "rb", buffering=0) as stream:
        stream.seek(4)  # where b.log (empty) and c.log both start
        assert stream.read(100) == b"three\n"


@pytest.mark.slow  # 1,500 objects to put
def test_tail_reads_only_the_last_objects(s3: Any, bucket: str, mount_one: Any, server: LocalS3Server) -> None:
    contents = {f"many/{n:05d}.log": f"object {n} line {i}\n".encode() * 1 for n in range(1500) for i in range(1)}
    contents = {key: b"".join(f"{key} line {i}\n".encode() for i in range(5)) for key in contents}
    put_all(s3, bucket, contents)
    expected_tail = b"".join(stream_reference(s3, bucket, sorted(contents)[-10:]).splitlines(keepends=True)[-20:])
    server.middleware.reset()
    mount = mount_one(prefix="many/")  # counted from the mount on: it settles the last objects' sizes
    assert run(["tail", "-n", "20", str(mount.path / "stream")]).stdout == expected_tail
    downloaded = full_gets(server)
    assert {r.key for r in downloaded} <= set(sorted(contents)[-16:])
    assert len(server.counters.of_kind("get")) <= 16  # no probe of the 1,484 others: the listing sized them
    assert sum(r.body_bytes for r in downloaded) <= 16 * max(len(body) for body in contents.values())


def random_reads(path: Path, expected: bytes, rng: random.Random, count: int = 100) -> None:
    with open(path, "rb", buffering=0) as stream:
        for _ in range(count):
            offset = rng.randrange(len(expected))
            length = rng.randint(1, 70_000)
            stream.seek(offset)
            assert stream.read(length) == expected[offset : offset + length], offset


def random_objects(rng: random.Random, prefix: str, multi_member: bool) -> dict[str, bytes]:
    """Plain and gzip objects; single-member gzip is named ``.gz`` (as AWS names it), multi-member is not
    (as CloudWatch Logs deliveries through Firehose are)."""
    objects = {}
    for number in range(40):
        lines = b"".join(f"{number}:{i}:{'x' * rng.randint(0, 300)}\n".encode() for i in range(rng.randint(0, 200)))
        if number % 3:
            body = lines
        elif multi_member:
            body = gzip.compress(lines[: len(lines) // 2]) + gzip.compress(lines[len(lines) // 2 :])
        else:
            body = gzip.compress(lines)
        named_gzip = not multi_member and number % 3 == 0
        objects[f"{prefix}{number:03d}" + (".log.gz" if named_gzip else "")] = body
    return objects


def test_random_offsets_match_reference_before_any_sequential_read(s3: Any, bucket: str, mount_one: Any) -> None:
    rng = random.Random(11)
    objects = random_objects(rng, "r/", multi_member=False)
    put_all(s3, bucket, objects)
    mount = mount_one(prefix="r/")
    expected = stream_reference(s3, bucket, sorted(objects))
    wait_for(lambda: stat_size(mount.path / "stream") == len(expected), timeout=15)  # trailers probed
    random_reads(mount.path / "stream", expected, rng)
    assert (mount.path / "stream").read_bytes() == expected


def test_random_offsets_after_multi_member_corrections(s3: Any, bucket: str, mount_one: Any) -> None:
    """Multi-member sizes are known only once decoded; after one pass every offset is exact."""
    rng = random.Random(12)
    objects = random_objects(rng, "m/", multi_member=True)
    put_all(s3, bucket, objects)
    mount = mount_one(prefix="m/")
    expected = stream_reference(s3, bucket, sorted(objects))
    assert (mount.path / "stream").read_bytes() == expected
    random_reads(mount.path / "stream", expected, rng)


@pytest.mark.slow  # 200 reads at 30 ms each
def test_sequential_read_prefetches_in_parallel(s3: Any, bucket: str, mount_one: Any, server: LocalS3Server) -> None:
    contents = {f"small/{n:04d}.log": f"small object {n}\n".encode() * 50 for n in range(200)}
    put_all(s3, bucket, contents)
    expected = stream_reference(s3, bucket, sorted(contents))
    mount = mount_one("--prefetch", "8", prefix="small/")
    run(["stat", str(mount.path / "stream")])
    server.middleware.reset()
    server.middleware.latency = 0.03  # as real S3 answers: round trips, not CPU, dominate
    try:
        assert run(["cat", str(mount.path / "stream")]).stdout == expected
    finally:
        server.middleware.latency = 0.0
    assert server.counters.max_in_flight >= 4


def offsets_of(mount: Mount) -> dict[str, int]:
    found = {}
    for name in os.listdir(mount.path):
        if name in ("stream", ".bookmarks"):
            continue
        key = run(["getfattr", "--only-values", "-n", "user.s3.key", str(mount.path / name)]).stdout.decode()
        found[key] = int(run(["getfattr", "--only-values", "-n", "user.s3logfs.offset", str(mount.path / name)]).stdout)
    return found


def test_remount_keeps_offsets(s3: Any, bucket: str, mount_factory: Any, tmp_path: Path) -> None:
    put_all(s3, bucket, MIXED)
    first = mount_factory(bucket, "logs/", "--poll-interval", "1")
    content = (first.path / "stream").read_bytes()
    s3.put_object(Bucket=bucket, Key="logs/00-late-but-early.log", Body=b"late\n")

    wait_for(lambda: (first.path / "stream").stat().st_size > len(content), timeout=3 + 2)
    before = offsets_of(first)
    run(["fusermount", "-u", str(first.path)])
    second = mount_factory(bucket, "logs/", cache_dir=first.cache_dir)
    assert offsets_of(second) == before
    assert before["logs/00-late-but-early.log"] == len(content)
    assert (second.path / "stream").read_bytes() == content + b"late\n"


def bookmark(mount: Mount, name: str) -> int:
    return int(run(["getfattr", "--only-values", "-n", f"user.s3logfs.bookmark.{name}", str(mount.path / "stream")]).stdout)


def set_bookmark(mount: Mount, name: str, value: str) -> None:
    run(["setfattr", "-n", f"user.s3logfs.bookmark.{name}", "-v", value, str(mount.path / "stream")])


def test_bookmark_offsets_and_s3tail_form(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, MIXED)
    mount = mount_one("--writable-bookmarks", prefix="logs/")
    expected = stream_reference(s3, bucket, sorted(MIXED))
    set_bookmark(mount, "here", "25")
    assert bookmark(mount, "here") == 25
    listed = run(["getfattr", "-d", "-m", "user.s3logfs.bookmark", str(mount.path / "stream")]).stdout.decode()
    assert "user.s3logfs.bookmark.here" in listed
    # s3tail: KEY:LINE resumes at line LINE+1 of the first key after KEY
    set_bookmark(mount, "s3tail", "logs/01-plain.log:2")
    after_plain = len(stream_reference(s3, bucket, ["logs/01-plain.log"]))
    second_line = after_plain + len(b"gzip one\ngzip two\n")
    assert bookmark(mount, "s3tail") == second_line
    offset = bookmark(mount, "s3tail")
    resumed = run(["tail", "-c", f"+{offset + 1}", str(mount.path / "stream")]).stdout
    assert resumed == expected[offset:]
    assert resumed.startswith(b"gzip three\n")
    run(["setfattr", "-x", "user.s3logfs.bookmark.here", str(mount.path / "stream")])
    missing = run(["getfattr", "-n", "user.s3logfs.bookmark.here", str(mount.path / "stream")], check=False)
    assert missing.returncode != 0
    bad = run(["setfattr", "-n", "user.s3logfs.bookmark.bad", "-v", "not-a-bookmark", str(mount.path / "stream")],
              check=False)
    assert bad.returncode != 0


def test_cursor_file_shows_only_what_is_new(s3: Any, bucket: str, mount_one: Any) -> None:
    put_all(s3, bucket, {"c/1.log": b"one\n", "c/2.log": b"two\n"})
    mount = mount_one("--poll-interval", "1", "--writable-bookmarks", prefix="c/")
    cursor = mount.path / ".bookmarks" / "reader"
    run(["touch", str(cursor)])
    assert "reader" in os.listdir(mount.path / ".bookmarks")
    assert run(["cat", str(cursor)]).stdout == b"one\ntwo\n"
    assert run(["cat", str(cursor)]).stdout == b""
    s3.put_object(Bucket=bucket, Key="c/3.log", Body=b"three\n")
    s3.put_object(Bucket=bucket, Key="c/0.log", Body=b"zero, late\n")

    wait_for(lambda: (mount.path / "stream").stat().st_size == len(b"one\ntwo\nthree\nzero, late\n"), timeout=3 + 2)
    new = run(["cat", str(cursor)]).stdout  # one poll may find both: then they come in key order
    assert sorted(new.splitlines(keepends=True)) == [b"three\n", b"zero, late\n"]
    assert run(["cat", str(cursor)]).stdout == b""
    run(["rm", str(cursor)])
    assert "reader" not in os.listdir(mount.path / ".bookmarks")
    assert not cursor.exists()


def test_bookmarks_persist_across_remount(s3: Any, bucket: str, mount_factory: Any) -> None:
    put_all(s3, bucket, MIXED)
    first = mount_factory(bucket, "logs/", "--writable-bookmarks")
    set_bookmark(first, "kept", "17")
    run(["touch", str(first.path / ".bookmarks" / "cursor")])
    run(["head", "-c", "30", str(first.path / ".bookmarks" / "cursor")])
    run(["fusermount", "-u", str(first.path)])
    assert "kept" in first.config_file.read_text()
    second = mount_factory(bucket, "logs/", cache_dir=first.cache_dir)
    assert bookmark(second, "kept") == 17
    assert "cursor" in os.listdir(second.path / ".bookmarks")
    expected = stream_reference(s3, bucket, sorted(MIXED))
    resumed_at = bookmark(second, "cursor")
    assert 0 < resumed_at <= 30 and expected[resumed_at - 1 : resumed_at] == b"\n"
    assert run(["cat", str(second.path / ".bookmarks" / "cursor")]).stdout == expected[resumed_at:]


@pytest.mark.parametrize("tool", ["grep", "less"])
def test_grep_and_less_on_stream(s3: Any, bucket: str, mount_one: Any, tool: str) -> None:
    put_all(s3, bucket, MIXED)
    mount = mount_one(prefix="logs/")
    expected = stream_reference(s3, bucket, sorted(MIXED))
    path = str(mount.path / "stream")
    if tool == "grep":
        matches = b"".join(line for line in expected.splitlines(keepends=True) if b"member" in line)
        assert run(["grep", "member", path]).stdout == matches
    else:
        output = run(["less", "-E", "+G", path], env=dict(os.environ, TERM="dumb", LESS="")).stdout
        assert output.endswith(b"after the empty one\n")


def test_cursor_bookmark_moves_when_the_reader_closes(s3: Any, bucket: str, mount_one: Any) -> None:
    """close(2) moves the bookmark, even while another descriptor keeps the file open.

    The kernel sends RELEASE only once the last descriptor is gone, and after close(2)
    has returned; FLUSH comes with every close and is waited for. Here the shell keeps
    fd 3 open, so only FLUSH can move the bookmark before the second ``cat``.
    """
    put_all(s3, bucket, {"c/1.log": b"one\n", "c/2.log": b"two\n"})
    mount = mount_one("--writable-bookmarks", prefix="c/")
    cursor = mount.path / ".bookmarks" / "reader"
    run(["touch", str(cursor)])
    both = run(["sh", "-c", f"exec 3< '{cursor}'; cat <&3; echo ---; cat '{cursor}'"]).stdout
    assert both == b"one\ntwo\n---\n"
    assert bookmark(mount, "reader") == len(b"one\ntwo\n")
