"""Property tests (hypothesis) of the pure layers: names, the offset index, the gzip decoder.

Each property is checked against an independent reference: percent-decoding with
:func:`urllib.parse.unquote_to_bytes`, naive prefix sums, the concatenated content of the
objects, :func:`gzip.decompress`. Runs are kept small (``max_examples``) so the whole file
takes seconds; a failure prints the smallest example hypothesis found.
"""

from __future__ import annotations

import gzip
import itertools
import os
import posixpath
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3logfs.engine.cache import CachedObject
from s3logfs.engine.codecs import AutoDecoder, GzipDecoder, decode_chunks
from s3logfs.engine.index import Fenwick, Span, StreamIndex
from s3logfs.engine.stats import Stats
from s3logfs.engine.stream import ReadPosition, StreamReader
from s3logfs.fs.tree import NAME_MAX, DirNode, FileNode, Tree

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# names: the key-to-path mapping

_not_utf8 = st.binary(min_size=1, max_size=12).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
_segment = st.one_of(
    st.sampled_from(["", ".", "..", "stream", ".bookmarks", "a", "a.gz", ".gz", "%", "%2F", "%25", "%~", "\n", "\x7f"]),
    st.text(max_size=12),
    _not_utf8,
    st.text(alphabet="ab%./é", min_size=200, max_size=300),  # longer than NAME_MAX once encoded
)
keys = st.lists(_segment, min_size=1, max_size=5).map("/".join).filter(bool)
"""S3 keys, including ones whose bytes are not valid UTF-8 (surrogate-escaped, as the listing
and FUSE's path decoding carry them)."""


def _names(path: str) -> list[str]:
    assert path.startswith("/")
    return path[1:].split("/")


def _walk(node: DirNode) -> Iterator[DirNode | FileNode]:
    for child in node.children.values():
        yield child
        if isinstance(child, DirNode):
            yield from _walk(child)


@SETTINGS
@given(st.lists(keys, unique=True, max_size=25), st.booleans(), st.sampled_from(["", "logs/"]))
def test_paths_are_injective_reversible_and_contained(key_list: list[str], drop_gz: bool, prefix: str) -> None:
    tree = Tree(prefix, drop_gz, {"stream", ".bookmarks"}, first_ino=16)
    for key in key_list:
        tree.add(prefix + key, 1.7e9)
    paths = [tree.path_of(prefix + key) for key in key_list]
    assert len(set(paths)) == len(key_list)  # injective
    for key, path in zip(key_list, paths):
        assert path is not None
        node = tree.lookup(path)
        assert isinstance(node, FileNode) and node.key == prefix + key  # the path leads back to its key
        assert posixpath.normpath("/mnt" + path).startswith("/mnt/")  # never outside the mount
        if "%~" in path:  # shortened to NAME_MAX: reachable by lookup, not by decoding
            continue
        decoded = b"/".join(unquote_to_bytes(name) for name in _names(path)).decode("utf-8", "surrogateescape")
        assert decoded == key or (drop_gz and decoded + ".gz" == key), (key, path)
    for node in _walk(tree.root):
        assert node.name not in ("", ".", "..")
        assert "/" not in node.name and "\0" not in node.name
        assert len(node.name.encode("utf-8")) <= NAME_MAX  # strict UTF-8: the kernel gets these bytes


# --------------------------------------------------------------------------------------------
# the offset index


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 50), st.integers(0, 1000)), max_size=80))
def test_fenwick_agrees_with_naive_prefix_sums(operations: list[tuple[bool, int, int]]) -> None:
    tree, values = Fenwick(), list[int]()
    for is_append, where, value in operations:
        if is_append or not values:
            tree.append(value)
            values.append(value)
        else:
            tree.set(where % len(values), value)
            values[where % len(values)] = value
        assert [tree.prefix(count) for count in range(len(values) + 1)] == [sum(values[:n]) for n in range(len(values) + 1)]
        for offset in range(sum(values) + 2):
            position = tree.locate(offset)
            assert sum(values[:position]) <= offset
            assert position == len(values) or offset < sum(values[: position + 1])


_lengths = st.lists(st.integers(0, 40), min_size=1, max_size=30)


def _check_offsets(index: StreamIndex, lengths: list[int]) -> None:
    """Every offset maps to exactly one object and inner offset, as the lengths say."""
    assert index.total() == sum(lengths)
    owner = [(position, inner) for position, length in enumerate(lengths) for inner in range(length)]
    for offset, expected in enumerate(owner):
        assert index.holder(offset) == expected
        position, inner = index.locate(offset)
        if inner:
            assert (position, inner) == expected
        else:  # a span's start: the first of the empty spans just before it, or the span itself
            assert all(length == 0 for length in lengths[position : expected[0]]) and position <= expected[0]
    for position in range(len(lengths)):
        assert index.start(position) == sum(lengths[:position])


@SETTINGS
@given(_lengths, st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 40), st.booleans()), max_size=30),
       st.lists(_lengths, max_size=3))
def test_index_offsets_stay_consistent_under_corrections_and_appends(
    lengths: list[int], corrections: list[tuple[int, int, bool]], appended: list[list[int]]
) -> None:
    index = StreamIndex(None)
    index.append(Span(f"k{n}", "e", length, False) for n, length in enumerate(lengths))
    lengths = list(lengths)
    for where, length, exact in corrections:
        position = where % len(lengths)
        if index.spans[position].exact:
            index.estimate(position, length)  # ignored: an exact length is never undone by an estimate
        else:
            index.correct(position, length, exact)
            lengths[position] = length
        _check_offsets(index, lengths)
    for batch in appended:
        index.append(Span(f"k{len(lengths) + n}", "e", length, True) for n, length in enumerate(batch))
        lengths += batch
        _check_offsets(index, lengths)


@dataclass
class _Entry:
    key: str
    info: Any


@dataclass
class _Info:
    key: str
    etag: str = "e"
    size: int = 0


@dataclass
class _Catalog:
    """What :class:`StreamReader` asks of a catalog, over real files: no S3, no threads of its own."""

    directory: Path
    contents: dict[str, bytes]
    by_key: dict[str, _Entry] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)

    def add(self, key: str, content: bytes) -> None:
        self.contents[key] = content
        (self.directory / key).write_bytes(content)
        self.by_key[key] = _Entry(key, _Info(key, size=len(content)))

    bucket = "test"

    transforms = False

    def open_decoded(self, entry: _Entry, cached: CachedObject) -> tuple[CachedObject, int]:
        return cached, os.open(cached.path, os.O_RDONLY)

    def materialize(self, entry: _Entry) -> CachedObject:
        content = self.contents[entry.key]
        return CachedObject(self.directory / entry.key, len(content), "e", "plain", content.endswith(b"\n"))


def _stream_of(contents: list[bytes]) -> bytes:
    """The stream's reference: each object, with a newline after one that lacks it."""
    return b"".join(content + (b"\n" if content and not content.endswith(b"\n") else b"") for content in contents)


_contents = st.lists(st.binary(max_size=30).map(lambda data: data.replace(b"\0", b"")), min_size=1, max_size=12)
_events = st.lists(st.tuples(st.sampled_from(["read", "correct", "estimate", "append"]), st.integers(0, 10**6),
                             st.integers(1, 64), st.binary(max_size=30)), max_size=40)


@SETTINGS
@given(_contents, st.lists(st.integers(0, 40), min_size=12, max_size=12), _events, st.integers(0, 11))
def test_a_sequential_reader_never_sees_a_gap_or_a_repeat(
    tmp_path_factory: Any, contents: list[bytes], estimates: list[int], events: list[tuple[str, int, int, bytes]],
    first: int,
) -> None:
    """Lengths start as wrong estimates; between reads, spans (before the reader's place too) are
    corrected (exact), re-estimated and new objects appended. A reader that starts at an object
    (a cursor file at its bookmark) and reads on from where its last read ended gets the rest
    of the stream whole, however the offsets moved."""
    catalog = _Catalog(tmp_path_factory.mktemp("objects"), {})
    keys = []
    for number, content in enumerate(contents):
        keys.append(f"o{number}")
        catalog.add(keys[-1], content)
    index = StreamIndex(None)
    index.append(Span(key, "e", estimates[n], False) for n, key in enumerate(keys))
    reader = StreamReader(catalog, index, catalog.stats, prefetch=0)  # type: ignore[arg-type]
    reader.ready.set()
    first %= len(keys)
    offset = index.start(first)
    cursor, seen = ReadPosition(next_offset=offset, position=first), []
    try:
        for kind, where, size, data in [*events, *[("read", 0, 64, b"")] * 200]:
            position = where % len(index)
            if kind == "read":
                chunk = reader.read(cursor, offset, size)
                seen.append(chunk)
                offset += len(chunk)
            elif kind == "correct":
                reader.exact_length(position)
            elif kind == "estimate":
                index.estimate(position, size)
            else:
                keys.append(f"o{len(keys)}")
                catalog.add(keys[-1], data.replace(b"\0", b""))
                index.append([Span(keys[-1], "e", len(_stream_of([catalog.contents[keys[-1]]])), True)])
        assert b"".join(seen) == _stream_of([catalog.contents[key] for key in keys[first:]])
    finally:
        cursor.close()
        reader.close()


# --------------------------------------------------------------------------------------------
# the gzip decoder


@st.composite
def gzip_streams(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A payload split into members at arbitrary points, each compressed: (stored, payload)."""
    payload = draw(st.one_of(st.binary(max_size=3000), st.text(max_size=2000).map(str.encode)))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=6)))
    bounds = [0, *cuts, len(payload)]
    members = [payload[start:end] for start, end in itertools.pairwise(bounds)]
    level = draw(st.integers(0, 9))
    stored = b"".join(gzip.compress(member, compresslevel=level, mtime=0) for member in members)
    return stored, payload


def _chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    start, turn = 0, 0
    while start < len(data):
        size = sizes[turn % len(sizes)]
        yield data[start : start + size]
        start, turn = start + size, turn + 1


@SETTINGS
@given(gzip_streams(), st.lists(st.integers(1, 700), min_size=1, max_size=8), st.integers(0, 3))
def test_the_gzip_decoder_equals_gzip_decompress(stream: tuple[bytes, bytes], sizes: list[int], padding: int) -> None:
    stored, payload = stream
    stored += b"\0" * padding  # trailing zero padding, as some writers leave
    assert gzip.decompress(stored) == payload
    assert b"".join(decode_chunks(_chunks(stored, sizes), GzipDecoder())) == payload
    assert b"".join(decode_chunks(_chunks(stored, sizes), AutoDecoder())) == payload


@SETTINGS
@given(gzip_streams(), st.lists(st.integers(1, 700), min_size=1, max_size=8), st.data())
def test_the_gzip_decoder_fails_where_gzip_decompress_fails(
    stream: tuple[bytes, bytes], sizes: list[int], data: st.DataObject
) -> None:
    """A cut or a flipped byte: either both decoders give the payload, or both fail."""
    stored, _ = stream
    if data.draw(st.booleans()):
        broken = stored[: data.draw(st.integers(0, len(stored) - 1))]
    else:
        where = data.draw(st.integers(0, len(stored) - 1))
        broken = stored[:where] + bytes([stored[where] ^ data.draw(st.integers(1, 255))]) + stored[where + 1 :]
    try:
        expected: bytes | None = gzip.decompress(broken)
    except (OSError, EOFError, zlib.error):
        expected = None
    try:
        got: bytes | None = b"".join(decode_chunks(_chunks(broken, sizes), GzipDecoder()))
    except Exception as error:  # noqa: BLE001 - any failure counts as one, it must be a CodecError
        assert type(error).__name__ == "CodecError", repr(error)
        got = None
    if broken:
        assert got == expected, (len(stored), len(broken))

