"""Fast unit tests of the layers below FUSE: codecs, names, the disk cache and the options.

No mount, no S3 server. Each test pins one claim of the module it covers (or of the README's
"The mount layout" and cache semantics) against an independent reference: :func:`gzip.decompress`,
:func:`urllib.parse.unquote`, a SHA-256 computed here, the file system itself.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import os
import random
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from s3logfs.config import Settings, common_options, file_options, parse_size, read_config_file
from s3logfs.engine import cache as cache_module
from s3logfs.engine.cache import DiskCache
from s3logfs.engine.codecs import GZIP, PLAIN, AutoDecoder, GzipDecoder, decode_chunks, detect, gzip_isize
from s3logfs.engine.fetcher import UNKNOWN, ObjectFetcher
from s3logfs.engine.index import Fenwick, Span, StreamIndex
from s3logfs.engine.s3 import ObjectInfo
from s3logfs.engine.stats import Stats
from s3logfs.errors import CodecError, UsageError
from s3logfs.fs.tree import NAME_MAX, DirNode, FileNode, Tree

# --------------------------------------------------------------------------------------------
# codecs


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def decode_all(data: bytes, size: int) -> bytes:
    return b"".join(decode_chunks(chunked(data, size)))


def log_lines(rng: random.Random, count: int) -> bytes:
    return b"".join(
        f"{rng.randrange(1 << 32):08x} GET /{rng.randrange(10**6)} {rng.choice((200, 404, 500))}\n".encode()
        for _ in range(count)
    )


@pytest.fixture(scope="module")
def multi_member() -> bytes:
    rng = random.Random(3)
    members = [gzip.compress(log_lines(rng, n)) for n in (300, 0, 1, 2000, 17)]
    members.append(gzip.compress(b"no final newline"))
    return b"".join(members)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 10, 17, 1000, 4093, 1 << 20])
def test_multi_member_gzip_is_decoded_whole_whatever_the_chunking(
    multi_member: bytes, chunk_size: int
) -> None:
    expected = gzip.decompress(multi_member)
    assert expected.endswith(b"no final newline")
    assert decode_all(multi_member, chunk_size) == expected


def test_irregular_chunks_decode_like_gzip_decompress(multi_member: bytes) -> None:
    rng = random.Random(11)
    for _ in range(20):
        pieces, position = [], 0
        while position < len(multi_member):
            size = rng.choice((1, 2, 5, 9, 64, 333, 2048))
            pieces.append(multi_member[position : position + size])
            position += size
        assert b"".join(decode_chunks(pieces)) == gzip.decompress(multi_member)


def test_plain_content_passes_through_unchanged() -> None:
    rng = random.Random(5)
    data = b"A" + rng.randbytes(5000) + gzip.compress(b"inside\n")  # gzip bytes later on stay as they are
    for size in (1, 2, 3, 4096):
        assert decode_all(data, size) == data


def test_empty_input_gives_empty_output() -> None:
    assert list(decode_chunks([])) == []
    assert list(decode_chunks([b"", b""])) == []
    decoder = AutoDecoder()
    assert decoder.decode(b"") == b""
    assert decoder.flush() == b""
    assert decoder.encoding == PLAIN


@pytest.mark.parametrize("data", [b"x", b"\x1f", b"ab"])
def test_objects_shorter_than_the_magic_are_plain(data: bytes) -> None:
    assert decode_all(data, 1) == data


def test_detection_goes_by_magic_bytes_not_by_name() -> None:
    body = b"127.0.0.1 GET / 200\n"
    packed = gzip.compress(body)
    assert detect(packed) == GZIP
    assert detect(body) == PLAIN
    assert detect(b"\x1f") == PLAIN
    for data, encoding in ((packed, GZIP), (body, PLAIN)):
        decoder = AutoDecoder()
        out = b"".join(decode_chunks(chunked(data, 1), decoder))
        assert out == body
        assert decoder.encoding == encoding


class StoredObjects:
    """Just enough of :class:`s3logfs.engine.s3.S3Client` for :class:`ObjectFetcher`: bytes by key."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bucket = "b"
        self.stats = Stats()
        self.bodies = bodies

    def iter_object(self, key: str, etag: str | None = None) -> Iterator[bytes]:
        yield from chunked(self.bodies[key], 5)

    def get_range(self, key: str, byte_range: str, etag: str | None = None) -> bytes:
        first, _, last = byte_range.partition("-")
        body = self.bodies[key]
        return body[-int(last) :] if not first else body[int(first) : int(last) + 1]


def test_objects_are_decoded_by_content_whatever_their_key(tmp_path: Path) -> None:
    text = b"127.0.0.1 GET / 200\n" * 20
    bodies = {"plain-named.log.gz": text, "gzip-named.log": gzip.compress(text), "no-suffix": gzip.compress(text)}
    fetcher = ObjectFetcher(StoredObjects(bodies), DiskCache(tmp_path / "cache"), Stats())  # type: ignore[arg-type]
    for key, body in bodies.items():
        encoding = PLAIN if key == "plain-named.log.gz" else GZIP
        info = ObjectInfo(key=key, size=len(body), etag=f"etag-{key}", last_modified=0.0)
        probe = fetcher.probe_size(info, sniff=True)  # not cached yet: from the first two bytes and the trailer
        assert (probe.size, probe.encoding) == (len(text), encoding), key
        cached = fetcher.materialize(info)
        assert cached.path.read_bytes() == text, key
        assert cached.encoding == encoding, key


class CountingObjects(StoredObjects):
    def __init__(self, bodies: dict[str, bytes]) -> None:
        super().__init__(bodies)
        self.ranges: list[tuple[str, str]] = []

    def get_range(self, key: str, byte_range: str, etag: str | None = None) -> bytes:
        self.ranges.append((key, byte_range))
        return super().get_range(key, byte_range, etag)


def test_sizing_from_the_listing_asks_only_gzip_named_keys_for_their_trailer(tmp_path: Path) -> None:
    text = b"127.0.0.1 GET / 200\n" * 20
    bodies = {"a.log.gz": gzip.compress(text), "plain-named.log.gz": text, "no-suffix": gzip.compress(text),
              "b.log": text}
    objects = CountingObjects(bodies)
    fetcher = ObjectFetcher(objects, DiskCache(tmp_path / "cache"), Stats())  # type: ignore[arg-type]
    probes = {key: fetcher.probe_size(ObjectInfo(key, len(body), f"e-{key}", 0.0)) for key, body in bodies.items()}
    assert (probes["a.log.gz"].size, probes["a.log.gz"].encoding) == (len(text), GZIP)
    # the last 4 bytes of text are no plausible ISIZE: the listing size stands, unconfirmed
    assert (probes["plain-named.log.gz"].size, probes["plain-named.log.gz"].encoding) == (len(text), UNKNOWN)
    assert (probes["no-suffix"].size, probes["no-suffix"].exact) == (len(bodies["no-suffix"]), False)
    assert (probes["b.log"].size, probes["b.log"].encoding) == (len(text), UNKNOWN)
    assert sorted(objects.ranges) == [("a.log.gz", "-4"), ("plain-named.log.gz", "-4")]


@pytest.mark.parametrize("cut", [1, 2, 3, 10, 20, -9, -8, -4, -1])
def test_truncated_gzip_raises(multi_member: bytes, cut: int) -> None:
    single = gzip.compress(b"some log line\n" * 50)
    data = single[:cut]
    if len(data) >= 2:  # a lone b"\x1f" is a one-byte plain object
        with pytest.raises(CodecError):
            decode_all(data, 7)
    with pytest.raises(CodecError):
        decode_all(multi_member + data, 4096)


@pytest.mark.parametrize("garbage", [b"x", b"garbage", b"\x00\x00junk", b"\x1f\x8bnot a gzip header"])
@pytest.mark.parametrize("chunk_size", [1, 3, 4096])
def test_garbage_after_a_member_raises(garbage: bytes, chunk_size: int) -> None:
    data = gzip.compress(b"line\n") + garbage
    with pytest.raises(CodecError):
        decode_all(data, chunk_size)


def test_corrupt_deflate_data_raises() -> None:
    data = bytearray(gzip.compress(log_lines(random.Random(2), 500)))
    for index in range(20, 60):
        data[index] ^= 0xFF
    with pytest.raises(CodecError):
        decode_all(bytes(data), 4096)


def test_bad_crc_raises() -> None:
    data = bytearray(gzip.compress(b"line\n" * 10))
    data[-8] ^= 0x01  # CRC32, the first half of the trailer
    with pytest.raises(CodecError):
        decode_all(bytes(data), 4096)


@pytest.mark.parametrize("padding", [1, 2, 3, 8, 511, 512])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4096])
def test_trailing_zero_padding_is_accepted(multi_member: bytes, padding: int, chunk_size: int) -> None:
    data = multi_member + b"\0" * padding
    assert decode_all(data, chunk_size) == gzip.decompress(multi_member)


def test_gzip_isize_reads_the_last_four_bytes() -> None:
    content = log_lines(random.Random(9), 1000)
    packed = gzip.compress(content)
    assert gzip_isize(packed[-4:]) == len(content)
    assert gzip_isize(packed[-8:]) == len(content)
    assert gzip_isize((2**32 - 1).to_bytes(4, "little")) == 2**32 - 1
    assert gzip_isize(b"\x01\x02\x00\x00") == 0x0201
    with pytest.raises(CodecError):
        gzip_isize(b"\x01\x02\x03")


def test_gzip_decoder_alone_rejects_plain_input() -> None:
    decoder = GzipDecoder()
    with pytest.raises(CodecError):
        decoder.decode(b"plain text, not gzip")


# --------------------------------------------------------------------------------------------
# names

RESERVED = {"stream", ".bookmarks"}
NASTY_KEYS = [
    "/",
    "//",
    "///a",
    "a//b",
    "a/",
    "a//",
    ".",
    "..",
    "./x",
    "../x",
    "a/./b",
    "a/../b",
    "%",
    "100%",
    "%2F",
    "%2E%2E",
    "\n",
    "new\nline",
    "\x7f",
    "tab\tand\rcr",
    "\x01/\x1f",
    "é/日本語/ログ.log",
    "emoji-😀.log",
    "d",
    "d/e",
    "d/e/f",
    "stream",
    ".bookmarks",
    "sub/stream",
    "x.log",
    "x.log.gz",
    ".gz",
    "..gz",
    "...gz",
]
ALPHABET = ["a", "b", "Z", "0", ".", "-", "_", "/", "/", "/", "%", "\n", "\x7f", "\x00", " "]
ALPHABET += ["é", "日", "😀", "gz"]


def random_keys(count: int, seed: int = 20261121) -> list[str]:
    rng = random.Random(seed)
    keys = []
    for _ in range(count):
        length = rng.choice((1, 2, 3, 5, 8, 13, 40, 90, 140))
        keys.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    return keys


def long_keys() -> list[str]:
    return [
        "n" * 300,
        "n" * 300 + "/child",
        "dir/" + "é" * 200,
        "dir/" + "\n" * 120,
        "dir/" + "%" * 90,
        "dir/" + "a%" * 100,
        "dir/" + "x" * 199 + "\n" * 40,
        "dir/" + "x" * 198 + "\n" * 40,
        "dir/" + "x" * 197 + "\n" * 40,
        "dir/" + "😀" * 70,
        "dir/" + "y" * 256 + ".gz",
        "cut/" + "\n" * 100 + "/child",  # a file and a directory whose long names are all escapes
    ] + [f"cut/{'y' * lead}{fill * 100}" for lead in range(3) for fill in ("\n", "%", "é\x7f")]


def build_tree(keys: list[str], drop_gz: bool = False, dir_prefix: str = "") -> Tree:
    tree = Tree(dir_prefix, drop_gz, set(RESERVED), first_ino=16)
    mtime = 1.7e9
    for key in keys:
        tree.add(dir_prefix + key, mtime)
    return tree


def all_keys() -> list[str]:
    keys = list(dict.fromkeys(NASTY_KEYS + random_keys(1500) + long_keys()))
    return [key for key in keys if key]  # the empty key is the mount's directory itself


def components(path: str) -> list[str]:
    assert path.startswith("/")
    return path[1:].split("/")


def walk(node: DirNode) -> Iterator[DirNode | FileNode]:
    for child in node.children.values():
        yield child
        if isinstance(child, DirNode):
            yield from walk(child)


@pytest.mark.parametrize("dir_prefix", ["", "logs/"])
def test_percent_decoding_the_path_gives_the_key_back(dir_prefix: str) -> None:
    keys = all_keys()
    tree = build_tree(keys, dir_prefix=dir_prefix)
    checked = 0
    for key in keys:
        path = tree.path_of(dir_prefix + key)
        assert path is not None, key
        if "%~" in path:  # truncated to 255 bytes: reachable, but not reversible
            continue
        assert "/".join(unquote(name, errors="strict") for name in components(path)) == key
        checked += 1
    assert checked > len(keys) * 0.9


def test_no_name_is_dot_dotdot_empty_slashed_or_too_long() -> None:
    tree = build_tree(all_keys())
    nodes = list(walk(tree.root))
    assert len(nodes) > 1500
    for node in nodes:
        assert node.name not in ("", ".", "..")
        assert "/" not in node.name
        assert "\0" not in node.name
        assert len(node.name.encode()) <= NAME_MAX, node.name


def test_every_key_has_its_own_path_that_leads_back_to_it() -> None:
    keys = all_keys()
    tree = build_tree(keys, drop_gz=True)
    paths = {tree.path_of(key) for key in keys}
    assert len(paths) == len(keys)
    for key in keys:
        path = tree.path_of(key)
        assert path is not None
        node = tree.lookup(path)
        assert isinstance(node, FileNode) and node.key == key
        for depth in range(1, len(components(path))):
            parent = tree.lookup("/" + "/".join(components(path)[:depth]))
            assert isinstance(parent, DirNode), (key, path)


def test_truncated_names_keep_whole_escapes() -> None:
    tree = build_tree(long_keys())
    truncated = [node.name for node in walk(tree.root) if "%~" in node.name]
    assert len(truncated) >= 8
    for name in truncated:
        head, _, digest = name.rpartition("%~")
        assert re.fullmatch(r"[0-9a-f]{16}[0-9]*", digest), name
        assert re.fullmatch(r"(?:[^%]|%[0-9A-F]{2})*", head), f"escape cut in half: {name!r}"


def test_long_names_that_share_a_head_stay_distinct() -> None:
    keys = ["p/" + "x" * 300 + suffix for suffix in ("a", "b", "c")]
    tree = build_tree(keys)
    paths = [tree.path_of(key) for key in keys]
    assert len(set(paths)) == 3


def test_gz_suffix_is_dropped_and_the_first_keeps_the_short_name() -> None:
    tree = build_tree(["a/x.log.gz", "a/y.gz", "a/.gz", "a/z.log.gz", "a/z.log"], drop_gz=True)
    assert tree.path_of("a/x.log.gz") == "/a/x.log"
    assert tree.path_of("a/y.gz") == "/a/y"
    assert tree.path_of("a/.gz") == "/a/.gz"
    assert tree.path_of("a/z.log.gz") == "/a/z.log"
    assert tree.path_of("a/z.log") == "/a/%7A.log"  # taken: first plain character encoded

    tree = build_tree(["a/z.log", "a/z.log.gz"], drop_gz=True)
    assert tree.path_of("a/z.log") == "/a/z.log"
    assert tree.path_of("a/z.log.gz") == "/a/z.log.gz"  # the short name is taken: keeps .gz


def test_gz_suffix_is_kept_without_drop_gz() -> None:
    tree = build_tree(["a/x.log.gz"], drop_gz=False)
    assert tree.path_of("a/x.log.gz") == "/a/x.log.gz"


def test_dropping_gz_never_makes_dot_names() -> None:
    tree = build_tree(["..gz", "...gz", "a/..gz"], drop_gz=True)
    assert tree.path_of("..gz") == "/%2E"
    assert tree.path_of("...gz") == "/%2E%2E"
    assert tree.path_of("a/..gz") == "/a/%2E"


def test_reserved_root_names_are_renamed_only_at_the_root() -> None:
    tree = build_tree(["stream", ".bookmarks", "stream.gz", "sub/stream", "sub/.bookmarks"], drop_gz=True)
    assert tree.path_of("stream") == "/%73tream"
    assert tree.path_of(".bookmarks") == "/%2Ebookmarks"
    assert tree.path_of("stream.gz") == "/stream.gz"
    assert tree.path_of("sub/stream") == "/sub/stream"
    assert tree.path_of("sub/.bookmarks") == "/sub/.bookmarks"
    assert tree.lookup("/stream") is None
    assert tree.lookup("/.bookmarks") is None


def test_reserved_directory_names_are_renamed_too() -> None:
    tree = build_tree(["stream/a", ".bookmarks/b"])
    assert tree.path_of("stream/a") == "/%73tream/a"
    assert tree.path_of(".bookmarks/b") == "/%2Ebookmarks/b"


def test_file_and_directory_of_the_same_name() -> None:
    tree = build_tree(["d", "d/e"])
    assert tree.path_of("d") == "/d"
    assert tree.path_of("d/e") == "/%64/e"
    assert isinstance(tree.lookup("/d"), FileNode)
    assert isinstance(tree.lookup("/%64"), DirNode)

    tree = build_tree(["d/e", "d"])
    assert tree.path_of("d/e") == "/d/e"
    assert tree.path_of("d") == "/%64"
    assert isinstance(tree.lookup("/d"), DirNode)
    assert isinstance(tree.lookup("/%64"), FileNode)


def test_names_never_change_when_keys_are_added_later() -> None:
    first = all_keys()[:800]
    later = ["d", "d/e", "stream", "x.log", "x.log.gz"] + all_keys()[800:]
    later += [key + "/child" for key in first[:200]] + [key + ".gz" for key in first[:200]]
    known = set(first)
    later = [key for key in dict.fromkeys(later) if key not in known]  # the catalog adds each key once
    tree = build_tree(first, drop_gz=True)
    before = {key: tree.path_of(key) for key in first}
    nodes = {key: tree.lookup(path) for key, path in before.items() if path is not None}
    for key in later:
        tree.add(key, 1.8e9)
    for key, path in before.items():
        assert tree.path_of(key) == path, key
        assert path is not None and tree.lookup(path) == nodes[key]


# --------------------------------------------------------------------------------------------
# cache


@pytest.fixture(params=["anonymous", "named"])
def cache_root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory, written with O_TMPFILE temp files and with the named fallback."""
    if request.param == "named":
        monkeypatch.setattr(cache_module, "_ANONYMOUS_TEMP", False)
    elif not cache_module._ANONYMOUS_TEMP:
        pytest.skip("no O_TMPFILE on this system")
    return tmp_path / "cache"


def put(cache: DiskCache, key: str, data: bytes, etag: str = "etag-1", bucket: str = "b") -> Path:
    with cache.writer(bucket, key, etag) as out:
        for piece in chunked(data, 1000):
            out.write(piece)
    assert out.result is not None
    return out.result.path


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_layout_is_sha256_of_bucket_slash_key(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    key = "logs/2016/08/04/a b\né.log.gz"
    path = put(cache, key, b"content\n", bucket="my-bucket")
    digest = hashlib.sha256(f"my-bucket/{key}".encode()).hexdigest()
    assert path == cache_root / digest[:2] / digest
    assert path.read_bytes() == b"content\n"
    hit = cache.lookup("my-bucket", key, "etag-1")
    assert hit is not None and hit.path == path and hit.size == len(b"content\n")
    assert cache.lookup("other-bucket", key, "etag-1") is None
    assert {p.name for p in files_under(cache_root)} == {digest, digest + ".meta"}


def test_lookup_with_another_etag_misses(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    put(cache, "k", b"data", etag="etag-1")
    assert cache.lookup("b", "k", "etag-2") is None
    assert cache.lookup("b", "k", "etag-1") is not None
    put(cache, "k", b"new data", etag="etag-2")
    assert cache.lookup("b", "k", "etag-1") is None
    hit = cache.lookup("b", "k", "etag-2")
    assert hit is not None and hit.path.read_bytes() == b"new data"


@pytest.mark.parametrize(
    ("data", "ends_with_newline"),
    [(b"line\n", True), (b"no newline", False), (b"", False), (b"a\nb", False), (b"ab\ncd", False)],
)
def test_an_entry_says_whether_it_ends_with_a_newline(cache_root: Path, data: bytes, ends_with_newline: bool) -> None:
    """The stream adds a newline after an object without one; the record says so, whether
    the entry was just written or is looked up again."""
    cache = DiskCache(cache_root)
    with cache.writer("b", "k", "etag-1") as out:
        for piece in chunked(data, 3):
            out.write(piece)
        out.write(b"")  # an empty chunk, as a decoder's flush gives, changes nothing
    assert out.result is not None and out.result.ends_with_newline is ends_with_newline
    hit = cache.lookup("b", "k", "etag-1")
    assert hit is not None and hit.ends_with_newline is ends_with_newline
    meta = meta_of(cache, "k")
    assert json.loads(meta.read_bytes())["ends_with_newline"] is ends_with_newline


@pytest.mark.parametrize("field", ["missing", "not a boolean"])
@pytest.mark.parametrize("data", [b"line\n", b"no newline", b""])
def test_a_record_without_a_usable_newline_field_is_read_from_the_content(
    cache_root: Path, data: bytes, field: str
) -> None:
    """Records written before the field existed have none; a field of another type is not trusted."""
    cache = DiskCache(cache_root)
    put(cache, "k", data)
    meta = meta_of(cache, "k")
    record = json.loads(meta.read_bytes())
    if field == "missing":
        del record["ends_with_newline"]
    else:
        record["ends_with_newline"] = "false"
    meta.write_bytes(json.dumps(record).encode())
    hit = DiskCache(cache_root).lookup("b", "k", "etag-1")
    assert hit is not None and hit.ends_with_newline is data.endswith(b"\n")


@pytest.mark.parametrize("length", ["as written", "one read exactly", "three reads"])
def test_a_record_of_any_length_is_read_whole(cache_root: Path, length: str) -> None:
    """A record is read 16 KiB at a time; one that fills a read exactly, or needs several, still hits."""
    cache = DiskCache(cache_root)
    put(cache, "k", b"data\n")
    meta = meta_of(cache, "k")
    text = meta.read_bytes()
    wanted = {"as written": len(text), "one read exactly": 16384, "three reads": 2 * 16384 + 7}[length]
    meta.write_bytes(text[:-1] + b" " * (wanted - len(text)) + b"}")
    assert len(meta.read_bytes()) == wanted
    hit = DiskCache(cache_root).lookup("b", "k", "etag-1")
    assert hit is not None and hit.ends_with_newline and hit.size == 5


@pytest.mark.parametrize("record", [b"null", b"[]", b'"text"', b"[" * 100000 + b"]" * 100000])
def test_a_record_that_is_not_a_json_object_is_a_miss(cache_root: Path, record: bytes) -> None:
    cache = DiskCache(cache_root)
    put(cache, "k", b"data")
    meta_of(cache, "k").write_bytes(record)
    assert DiskCache(cache_root).lookup("b", "k", "etag-1") is None


def test_a_failed_writer_leaves_nothing(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    with pytest.raises(RuntimeError), cache.writer("b", "k", "etag-1") as out:
        out.write(b"half of it")
        raise RuntimeError("download failed")
    assert files_under(cache_root) == []
    assert cache.lookup("b", "k", "etag-1") is None


def test_an_unfinished_write_has_no_name_when_temp_files_are_anonymous(tmp_path: Path) -> None:
    if not cache_module._ANONYMOUS_TEMP:
        pytest.skip("no O_TMPFILE on this system")
    cache = DiskCache(tmp_path / "cache")
    with cache.writer("b", "k", "etag-1") as out:
        out.write(b"half of it")
        assert files_under(tmp_path / "cache") == []  # a kill -9 now would leave nothing
    assert cache.lookup("b", "k", "etag-1") is not None


def test_a_failed_rewrite_keeps_the_old_entry(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    put(cache, "k", b"old", etag="etag-1")
    with pytest.raises(RuntimeError), cache.writer("b", "k", "etag-2") as out:
        out.write(b"partial new")
        raise RuntimeError("download failed")
    hit = cache.lookup("b", "k", "etag-1")
    assert hit is not None and hit.path.read_bytes() == b"old"
    assert not [p for p in files_under(cache_root) if p.name.endswith(".tmp")]


def test_a_record_that_does_not_match_the_content_file_is_a_miss(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    path = put(cache, "k", b"first writer", etag="etag-1")
    assert cache.lookup("b", "k", "etag-1") is not None
    impostor = path.with_name("impostor")
    impostor.write_bytes(b"other writer")  # same size, another inode
    os.rename(impostor, path)
    assert path.stat().st_size == len(b"first writer")
    assert cache.lookup("b", "k", "etag-1") is None


def test_a_content_file_of_another_size_is_a_miss(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    path = put(cache, "k", b"0123456789", etag="etag-1")
    with open(path, "ab") as handle:
        handle.write(b"more")
    assert cache.lookup("b", "k", "etag-1") is None


def test_a_missing_or_corrupt_record_is_a_miss(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    path = put(cache, "k", b"data", etag="etag-1")
    meta = path.with_name(path.name + ".meta")
    meta.write_bytes(b"{not json")
    assert cache.lookup("b", "k", "etag-1") is None
    meta.unlink()
    assert cache.lookup("b", "k", "etag-1") is None


def test_modes_are_private(cache_root: Path) -> None:
    old_umask = os.umask(0)
    try:
        cache_root.mkdir(mode=0o755)
        cache = DiskCache(cache_root)
        path = put(cache, "k", b"data")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(cache_root.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name(path.name + ".meta").stat().st_mode) == 0o600


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def meta_of(cache: DiskCache, key: str) -> Path:
    path = cache.path_for("b", key)
    return path.with_name(path.name + ".meta")


def test_evict_drops_entries_unused_for_max_age(cache_root: Path) -> None:
    cache = DiskCache(cache_root, max_age_hours=1)
    for key in ("old", "recent", "fresh"):
        put(cache, key, b"x" * 100)
    age(meta_of(cache, "old"), 3600 + 120)
    age(meta_of(cache, "recent"), 3600 - 120)
    assert cache.evict() == 1
    assert cache.lookup("b", "old", "etag-1") is None
    assert not cache.path_for("b", "old").exists()
    assert not meta_of(cache, "old").exists()
    assert cache.lookup("b", "recent", "etag-1") is not None
    assert cache.lookup("b", "fresh", "etag-1") is not None


def test_a_lookup_counts_as_a_use(cache_root: Path) -> None:
    cache = DiskCache(cache_root, max_age_hours=1)
    put(cache, "used", b"x")
    age(meta_of(cache, "used"), 3600 + 120)
    assert cache.lookup("b", "used", "etag-1") is not None
    assert cache.evict() == 0
    assert cache.lookup("b", "used", "etag-1") is not None


def test_evict_drops_least_recently_used_beyond_max_bytes(cache_root: Path) -> None:
    cache = DiskCache(cache_root, max_age_hours=24)
    for number, key in enumerate(("a", "b", "c")):
        put(cache, key, bytes([65 + number]) * 100)
    cache.max_bytes = 250  # set after writing: with a limit, writes themselves evict
    age(meta_of(cache, "a"), 600)
    age(meta_of(cache, "b"), 1800)  # least recently used
    age(meta_of(cache, "c"), 300)
    assert cache.evict() == 1
    assert cache.lookup("b", "b", "etag-1") is None
    assert cache.lookup("b", "a", "etag-1") is not None
    assert cache.lookup("b", "c", "etag-1") is not None
    cache.max_bytes = 100
    age(meta_of(cache, "a"), 600)
    age(meta_of(cache, "c"), 300)
    assert cache.evict() == 1
    assert cache.lookup("b", "a", "etag-1") is None
    assert cache.lookup("b", "c", "etag-1") is not None


def test_evict_removes_temp_files_older_than_an_hour(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    path = put(cache, "k", b"data")
    stale = path.parent / f".{path.name}.abc123.tmp"
    stale.write_bytes(b"left by a dead writer")
    age(stale, 3600 + 60)
    live = path.parent / f".{path.name}.def456.tmp"
    live.write_bytes(b"being written")
    cache.evict()
    assert not stale.exists()
    assert live.exists()
    assert cache.lookup("b", "k", "etag-1") is not None


def test_clear_removes_everything(cache_root: Path) -> None:
    cache = DiskCache(cache_root)
    for key in ("a", "b"):
        put(cache, key, b"data")
    assert cache.clear() == 2
    assert files_under(cache_root) == []


WRITER_SIZE = 64 * 1024
WRITER_ROUNDS = 300


def writer_content(number: int) -> bytes:
    return bytes([65 + number]) * WRITER_SIZE


def _race_writer(root: str, number: int, barrier: Any, anonymous_temp: bool) -> None:
    cache_module._ANONYMOUS_TEMP = anonymous_temp  # the mode the parent's fixture chose
    cache = DiskCache(Path(root))
    content = writer_content(number)
    for _ in range(WRITER_ROUNDS):
        barrier.wait(timeout=60)
        with cache.writer("b", "shared-key", f"etag-{number}") as out:
            for piece in chunked(content, 4096):
                out.write(piece)
        barrier.wait(timeout=60)


def test_concurrent_writers_of_one_key_never_mix(cache_root: Path) -> None:
    """Two processes cache two versions of one key at once: a lookup of either ETag misses or
    gives that writer's whole content, never the other's and never a mix."""
    cache = DiskCache(cache_root)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    anonymous = cache_module._ANONYMOUS_TEMP
    writers = [
        context.Process(target=_race_writer, args=(str(cache_root), number, barrier, anonymous))
        for number in range(2)
    ]
    for process in writers:
        process.start()
    hits = 0
    try:
        for _ in range(WRITER_ROUNDS):
            barrier.wait(timeout=60)  # both start writing
            barrier.wait(timeout=60)  # both are done
            for number in range(2):
                hit = cache.lookup("b", "shared-key", f"etag-{number}")
                if hit is None:
                    continue
                content = hit.path.read_bytes()
                assert content == writer_content(number), f"etag-{number} gave {content[:1]!r} * {len(content)}"
                assert hit.size == len(content)
                hits += 1
    except BaseException:
        barrier.abort()  # release the writers now rather than at their timeout
        raise
    finally:
        for process in writers:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in writers] == [0, 0]
    assert hits > 0
    assert not [p for p in files_under(cache_root) if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1024", 1024),
        ("10K", 10 << 10),
        ("10k", 10 << 10),
        ("10KB", 10 << 10),
        ("500M", 500 << 20),
        ("500MiB", 500 << 20),
        ("2G", 2 << 30),
        (" 2 g ", 2 << 30),
        ("1.5GiB", 3 << 29),
        ("1T", 1 << 40),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "-1", "5X", "1..5M", "M", "2 GB B"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_settings_precedence_command_line_then_file_then_default() -> None:
    config = {"cache_hours": "7", "region": "eu-west-1"}
    assert Settings({"cache_hours": 5.0}, config).get("cache_hours", 24.0, float) == 5.0
    assert Settings({"cache_hours": 0.0}, config).get("cache_hours", 24.0, float) == 0.0
    assert Settings({"cache_hours": None}, config).get("cache_hours", 24.0, float) == 7.0
    assert Settings({}, {}).get("cache_hours", 24.0, float) == 24.0
    assert Settings({"region": None}, config).get("region") == "eu-west-1"
    assert Settings({}, {"raw": "yes"}).get("raw", False, bool) is True
    assert Settings({}, {"raw": "off"}).get("raw", False, bool) is False
    with pytest.raises(UsageError):
        Settings({}, {"cache_hours": "many"}).get("cache_hours", 24.0, float)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3logfsrc"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("spelling", ["cache-hours", "cache_hours"])
def test_options_section_reads_dashes_and_underscores(tmp_path: Path, spelling: str) -> None:
    text = f"[options]\n{spelling} = 7\ncache-max-size = 2G\n\n[bookmarks]\nweb = k:3\n"
    path = write_config(tmp_path, text)
    options = file_options(read_config_file(path))
    assert options["cache_hours"] == "7"
    common = common_options(Settings({}, options), path)
    assert common.cache_hours == 7.0
    assert common.cache_max_size == 2 << 30
    cli = {"cache_hours": 3.0, "cache_max_size": "1M"}
    common = common_options(Settings(cli, options), path)
    assert common.cache_hours == 3.0
    assert common.cache_max_size == 1 << 20


def test_defaults_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = write_config(tmp_path, "[bookmarks]\nweb = k:3\n")
    common = common_options(Settings({}, file_options(read_config_file(path))), path)
    assert common.cache_hours == 24.0
    assert common.cache_max_size is None
    assert common.cache_dir == tmp_path / "xdg" / "s3logfs"
    assert common.log_level == "WARNING"


def test_an_absent_config_file_is_an_empty_config(tmp_path: Path) -> None:
    parser = read_config_file(tmp_path / "absent")
    assert parser.sections() == []
    assert file_options(parser) == {}


def test_an_unreadable_config_file_is_a_usage_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "cache-hours = 7\n")  # no section header
    with pytest.raises(UsageError):
        read_config_file(path)


def test_fenwick_matches_prefix_sums_through_appends_and_updates() -> None:
    rng = random.Random(5)
    tree, values = Fenwick(), []
    for _ in range(300):
        if values and rng.random() < 0.4:
            position = rng.randrange(len(values))
            values[position] = rng.randint(0, 50)
            tree.set(position, values[position])
        else:
            values.append(rng.randint(0, 50))
            tree.append(values[-1])
        count = rng.randint(0, len(values))
        assert tree.prefix(count) == sum(values[:count])
        offset = rng.randint(0, sum(values) + 3)
        expected = next((p for p in range(len(values)) if sum(values[: p + 1]) > offset), len(values))
        assert tree.locate(offset) == expected, (values, offset)


def test_stream_index_estimates_never_undo_an_exact_length(tmp_path: Path) -> None:
    index = StreamIndex(tmp_path / "streams" / "s.json")
    index.append([Span("a", "e1", 10, False), Span("b", "e2", 20, False), Span("c", "e3", 5, False)])
    index.correct(1, 25, exact=True)
    index.estimate(1, 40)  # a trailer probe that lands after a reader decoded the object
    index.estimate(2, 7)
    assert [(s.length, s.exact) for s in index.spans] == [(10, False), (25, True), (7, False)]
    assert index.total() == 42 and index.locate(34) == (1, 24) and index.locate(35) == (2, 0)
    index.save()
    reloaded = StreamIndex(tmp_path / "streams" / "s.json").load_saved()
    assert [(s.key, s.length, s.exact) for s in reloaded] == [("a", 10, False), ("b", 25, True), ("c", 7, False)]
    index.append([Span("d", "e4", 0, False), Span("e", "e5", 0, False), Span("f", "e6", 3, False)])
    assert index.locate(42) == (3, 0)  # not (5, 0): objects estimated empty may hold data
    assert index.locate(44) == (5, 2)


@pytest.mark.parametrize(
    "text", ["2026-11-22T00:58:39.000Z", "2026-11-22T00:58:39Z", "Sun, 22 Nov 2026 00:58:39 GMT", "1700000000"]
)
def test_fast_timestamp_parser_agrees_with_botocore(text: str) -> None:
    from botocore.utils import parse_timestamp

    from s3logfs.engine.listing_parser import parse_timestamp as _parse_timestamp

    assert _parse_timestamp(text) == parse_timestamp(text)
