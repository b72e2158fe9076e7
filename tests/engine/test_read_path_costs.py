"""The read path's costs, counted rather than timed: what a re-read, a sequential read and
``ls -l`` may cost in requests, opened cache files, read-ahead hand-overs and decoded keys.

Timings belong to ``scripts/bench.py --ab``; these tests guard the mechanisms a regression
would break (each was one: see docs/performance.md).
"""

from __future__ import annotations

import gzip
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3logfs.engine import Engine, SourceOptions
from s3logfs.engine.cache import DiskCache
from s3logfs.engine.keystore import KeyStore
from s3logfs.engine.s3 import S3Config
from s3logfs.engine.stream import StreamReader
from s3logfs.fs.view import LogFilesystem

from helpers import reference, served_view

OBJECTS = 40
PREFETCH = 8


@pytest.fixture(params=["gzip"])
def mounted(request: pytest.FixtureRequest, s3: Any, bucket: str, server: Any,
            tmp_path: Path) -> Iterator[tuple[LogFilesystem, Engine]]:
    """A view (the mount without FUSE) over ``OBJECTS`` objects, gzip or plain."""
    compressed = request.param == "gzip"
    for number in range(OBJECTS):
        lines = b"".join(b"object %d line %d\n" % (number, line) for line in range(50))
        s3.put_object(Bucket=bucket, Key=_key(number, compressed), Body=gzip.compress(lines) if compressed else lines)
    options = SourceOptions(bucket=bucket, prefix="logs/", s3=S3Config(endpoint_url=server.endpoint_url),
                            cache_dir=tmp_path / "cache", bookmarks_file=tmp_path / "config.ini", poll_interval=0,
                            prefetch=PREFETCH)
    with served_view(options) as (view, served):
        yield view, served


def _key(number: int, compressed: bool = True) -> str:
    return f"logs/2026-12-04-{number:04d}.log" + (".gz" if compressed else "")


def _read_stream(view: LogFilesystem, size: int = 4096) -> bytes:
    opened = view.open("/stream", os.O_RDONLY)
    chunks, offset = [], 0
    try:
        while chunk := view.read(opened.fh, size, offset):
            chunks.append(chunk)
            offset += len(chunk)
    finally:
        view.release(opened.fh)
    return b"".join(chunks)


def _expected(s3: Any, bucket: str) -> bytes:
    return b"".join(reference(s3, bucket, _key(number)) for number in range(OBJECTS))


def test_a_cached_re_read_opens_each_cache_file_once_and_asks_s3_nothing(
        mounted: tuple[LogFilesystem, Engine], s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    view, served = mounted
    expected = _expected(s3, bucket)
    assert _read_stream(view) == expected
    requests_before = served.stats.snapshot()
    opened: Counter[str] = Counter()
    real_open = DiskCache.open_content

    def counting_open(cache: DiskCache, cached: Any) -> int | None:
        opened[str(cached.path)] += 1
        return real_open(cache, cached)

    monkeypatch.setattr(DiskCache, "open_content", counting_open)
    assert _read_stream(view) == expected
    requests_after = served.stats.snapshot()
    assert len(opened) == OBJECTS and set(opened.values()) == {1}, opened
    for kind in ("gets", "lists", "heads"):
        assert requests_after.get(kind, 0) == requests_before.get(kind, 0), (kind, requests_before, requests_after)


def test_a_sequential_read_hands_each_object_to_the_read_ahead_about_once(
        mounted: tuple[LogFilesystem, Engine], s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-ahead window slides: each object opened adds one position, not ``prefetch``
    (a hand-over decodes a span and a key from the compact index)."""
    view, _ = mounted
    handed: Counter[int] = Counter()
    real_prefetch = StreamReader.prefetch_position

    def counting_prefetch(reader: StreamReader, position: int) -> None:
        handed[position] += 1
        real_prefetch(reader, position)

    monkeypatch.setattr(StreamReader, "prefetch_position", counting_prefetch)
    assert _read_stream(view) == _expected(s3, bucket)
    assert set(handed) == set(range(1, OBJECTS))
    assert max(handed.values()) == 1, handed


@pytest.mark.parametrize("mounted", ["plain"], indirect=True)
def test_ls_l_decodes_each_key_at_most_once(mounted: tuple[LogFilesystem, Engine],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``ls -l`` asks of the view: the directory with attributes (READDIRPLUS), then
    ``stat`` twice for each name. The names listed are kept at hand, and the catalog's
    entry is found by key id, so no key is decoded twice. (Plain objects: sizing a gzip
    object no probe has sized yet is a request to S3, which needs its key anyway.)
    Decodes by the mount's background threads are not counted."""
    view, _ = mounted
    decoded = 0
    me = threading.get_ident()
    real_encoded_at = KeyStore._encoded_at

    def counting_encoded_at(store: KeyStore, key_id: int) -> bytes:
        nonlocal decoded
        if threading.get_ident() != me:
            return real_encoded_at(store, key_id)
        decoded += 1
        return real_encoded_at(store, key_id)

    monkeypatch.setattr(KeyStore, "_encoded_at", counting_encoded_at)
    names = [entry.name for entry in view.list_dir("/", full=True) if entry.name not in (".", "..", "stream")]
    assert len(names) == OBJECTS
    for name in names:
        assert view.attrs(f"/{name}")["st_size"] > 0
        view.attrs(f"/{name}")
    assert decoded <= OBJECTS, f"{decoded} keys decoded for {OBJECTS} names"
