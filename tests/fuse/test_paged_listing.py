"""Mounting a prefix of several listing pages: the mount answers after the first page.

The rest of the listing streams into the tree while ``ls`` already reads it; what a
reader sees must be exactly what a boto3 listing says, in key order. A listing that
breaks half way keeps the mount up with what came, and the poller lists on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server

from helpers import daemon_pid, reference, run, wait_for

PAGES_OF_KEYS = 2150  # three ListObjectsV2 pages
pytestmark = pytest.mark.slow  # the bucket takes 2,150 PUTs, and the listing is slowed on purpose


@pytest.fixture(scope="module")
def paged_bucket(server: LocalS3Server) -> str:
    s3 = server.client()
    name = "test-paged-listing"
    s3.create_bucket(Bucket=name)
    for number in range(PAGES_OF_KEYS):
        s3.put_object(Bucket=name, Key=f"logs/2026-11-22-{number:05d}", Body=f"line {number}\n".encode())
    return name


@pytest.fixture
def slow_listing(server: LocalS3Server) -> Iterator[None]:
    server.middleware.latency = 0.3  # each page takes a while: ls meets the listing half way
    yield
    server.middleware.latency = 0.0


def boto3_names(server: LocalS3Server, bucket: str, prefix: str) -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"][len(prefix):] for page in pages for item in page.get("Contents", [])]


def test_ls_during_the_listing_shows_every_key_in_order(
    server: LocalS3Server, paged_bucket: str, mount_factory: Any, slow_listing: None
) -> None:
    before = len(server.counters.of_kind("list"))
    server.middleware.latency = 1.0  # pages 2 and 3 take two seconds more: the mount answers first
    mount = mount_factory(paged_bucket, "logs/", "--poll-interval", "0")
    assert len(server.counters.of_kind("list")) - before < 3, "the mount waited for the whole listing"
    with os.scandir(mount.path) as entries:  # the first read of a directory is a READDIRPLUS
        next(entries)
        assert len(server.counters.of_kind("list")) - before < 3, "the directory read waited for the listing"
    names = run(["ls", "-U", str(mount.path)], text=True).stdout.split()  # -U: directory order, which is key order
    server.middleware.latency = 0.0
    assert len(server.counters.of_kind("list")) - before == 3  # every page once
    assert names == [*boto3_names(server, paged_bucket, "logs/"), "stream"]  # stream last: see _dir_entries
    long_listing = run(["ls", "-l", str(mount.path)], text=True).stdout.splitlines()
    assert len(long_listing) == 1 + 1 + PAGES_OF_KEYS  # "total", stream, every key
    last = mount.path / f"2026-11-22-{PAGES_OF_KEYS - 1:05d}"
    assert last.read_bytes() == reference(server.client(), paged_bucket, f"logs/2026-11-22-{PAGES_OF_KEYS - 1:05d}")
    assert (mount.path / "stream").read_bytes() == b"".join(f"line {n}\n".encode() for n in range(PAGES_OF_KEYS))


def test_stat_of_a_key_from_a_later_page_waits_for_it(
    server: LocalS3Server, paged_bucket: str, mount_factory: Any, slow_listing: None
) -> None:
    mount = mount_factory(paged_bucket, "logs/", "--poll-interval", "0")
    assert os.stat(mount.path / "2026-11-22-02149").st_size == len("line 2149\n")
    with pytest.raises(FileNotFoundError):
        os.stat(mount.path / "2026-11-22-99999")  # only once the whole listing says so


def test_a_listing_that_breaks_keeps_the_mount_and_the_poller_lists_on(
    server: LocalS3Server, paged_bucket: str, mount_factory: Any, slow_listing: None, faults: list[Fault]
) -> None:
    server.middleware.latency = 0.0
    fault = Fault(count=12, kind="list", status=500, skip=1)  # the access check's page passes; page 2 fails
    faults.append(fault)  # 12: more than every retry of the mount's listing
    mount = mount_factory(paged_bucket, "logs/", "--poll-interval", "1")
    wait_for(lambda: "listing stopped after 1000 objects" in mount.log(), timeout=60)
    assert run(["stat", "-c", "%s", str(mount.path / "stream")]).stdout.strip()  # the stream answers
    wait_for(lambda: fault.count == 0, timeout=60)
    names = wait_for(lambda: len(found := os.listdir(mount.path)) == 1 + PAGES_OF_KEYS and found, timeout=30)
    assert sorted(names) == sorted(["stream", *boto3_names(server, paged_bucket, "logs/")])
    expected = b"".join(f"line {n}\n".encode() for n in range(PAGES_OF_KEYS))
    wait_for(lambda: os.stat(mount.path / "stream").st_size == len(expected), timeout=60)
    assert (mount.path / "stream").read_bytes() == expected


def test_an_empty_prefix_gives_an_empty_stream(server: LocalS3Server, paged_bucket: str, mount_factory: Any) -> None:
    mount = mount_factory(paged_bucket, "nothing-here/", "--poll-interval", "0")
    assert run(["stat", "-c", "%s", str(mount.path / "stream")], timeout=20, text=True).stdout.strip() == "0"
    assert run(["cat", str(mount.path / "stream")], timeout=20).stdout == b""
    assert sorted(os.listdir(mount.path)) == ["stream"]


def test_unmount_while_listing_ends_the_daemon_cleanly(
    server: LocalS3Server, paged_bucket: str, mount_factory: Any, slow_listing: None
) -> None:
    server.middleware.latency = 1.0  # pages 2 and 3 are still coming when the mount goes
    mount = mount_factory(paged_bucket, "logs/", "--poll-interval", "1")
    assert daemon_pid(mount.path) is not None
    run(["fusermount", "-u", str(mount.path)])
    wait_for(lambda: daemon_pid(mount.path) is None, timeout=15)  # by itself: teardown would SIGKILL it
    assert "Traceback" not in mount.log() and "ERROR" not in mount.log(), mount.log()
