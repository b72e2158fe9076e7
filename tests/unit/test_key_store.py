"""The compact per-key structures (README, "Semantics and limits": memory per listed key): what they hold
comes back intact, and a key stays small.

RSS per key is measured by ``scripts/bench.py --only scale``, never asserted here; the bound
below is on Python allocations (tracemalloc) only, and generous.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest

from s3logfs.engine.catalog import Catalog, Entry
from s3logfs.engine.index import Span, StreamIndex
from s3logfs.engine.keystore import EtagColumn, KeyPositions, KeyStore
from s3logfs.engine.s3 import ObjectInfo
from s3logfs.fs.tree import FileNode, Tree

PREFIX = "AWSLogs/123456789012/elasticloadbalancing/"


def _alb_keys(count: int) -> list[str]:
    """ALB-style keys of about 150 characters under day folders, as the scale benchmark makes them."""
    rng = random.Random(count)
    keys = []
    for number in range(count):
        day, minute = divmod(number, 288)
        stamp = f"2026{1 + day // 28 % 12:02d}{1 + day % 28:02d}T{minute // 12:02d}{minute % 12 * 5:02d}Z"
        keys.append(f"{PREFIX}us-east-1/2026/{1 + day // 28 % 12:02d}/{1 + day % 28:02d}/123456789012_"
                    f"elasticloadbalancing_us-east-1_app.bench.50dc6c495c0c9188_{stamp}_10.0.{number % 10}.1_"
                    f"{rng.getrandbits(32):08x}.log.gz")
    return keys


def _catalog(tree: Tree) -> Catalog:
    """A catalog over the tree's key store, which hears of every key as the mount's view does."""
    stats = SimpleNamespace(set=lambda **_: None)
    fetcher = SimpleNamespace(client=SimpleNamespace(), bucket="b")
    catalog = Catalog(fetcher.client, fetcher, PREFIX, tree.keys, stats, poll_interval=0)  # type: ignore[arg-type]
    catalog.on_new_key(tree.add)
    return catalog


def test_key_store_gives_every_key_back() -> None:
    store = KeyStore("logs/")
    keys = ["logs/a", "logs/", "other/x", "", "logs/caf\u00e9 \U0001f600", "logs/bad-\udcff-byte", "logs/\ud800", "x" * 2000]
    ids = [store.intern(key) for key in keys]
    assert ids == list(range(len(keys)))
    assert [store.intern(key) for key in keys] == ids  # interned once
    assert [store.key(key_id) for key_id in ids] == keys
    assert [store.find(key) for key in keys] == ids
    assert store.find("logs/b") is None and store.find("a") is None and "other/x" in store
    many = [f"logs/{n}" for n in range(5000)]  # through several resizes of the table
    assert [store.intern(key) for key in many] == list(range(len(keys), len(keys) + 5000))
    assert all(store.find(key) == len(keys) + n for n, key in enumerate(many))
    assert list(store.iter_keys()) == keys + many and list(store.iter_keys(3, 40)) == (keys + many)[3:40]


def test_key_positions_keep_their_own_order_when_it_is_not_the_stores() -> None:
    store = KeyStore()
    first, second = KeyPositions(store), KeyPositions(store)
    for key in ("a", "b", "c"):
        first.append(key)
    assert second.get("a") is None and len(second) == 0
    for key in ("c", "d", "a"):  # other positions than the ids: the mappings are kept from here on
        second.append(key)
    assert [second.get(key) for key in "abcd"] == [2, None, 0, 1]
    assert list(second.iter_keys()) == ["c", "d", "a"] and list(first.iter_keys()) == ["a", "b", "c"]
    assert first.get("d") is None and first.get("c") == 2
    snapshot = second.snapshot()
    second.append("e")
    assert list(snapshot.iter_keys()) == ["c", "d", "a"] and second.key(3) == "e"


def test_etags_come_back_in_every_form() -> None:
    column = EtagColumn()
    etags = ["0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF", "abc-3", "", "é" * 32,
             "0123456789abcdef0123456789abcde "]
    for etag in etags:
        column.append(etag)
    assert [column[n] for n in range(len(etags))] == etags
    column[0], column[2] = "d41d8cd98f00b204e9800998ecf8427e-2", "ffffffffffffffffffffffffffffffff"
    assert column[0] == "d41d8cd98f00b204e9800998ecf8427e-2" and column[2] == "ffffffffffffffffffffffffffffffff"
    assert column.copy()[0] == column[0] and len(column) == len(etags)


def test_the_saved_index_keeps_its_format(tmp_path: Path) -> None:
    """A remount reads what an older version wrote, and the other way round: the JSON is the same."""
    state = tmp_path / "s.json"
    index = StreamIndex(state)
    spans = [Span('a "quoted" caf\u00e9 \udc80', "0123456789abcdef0123456789abcdef", 10, False),
             Span("b", "abc-3", 0, True), Span("c", "", 7, True)]
    spans += [Span(f"k{n}", f"{n:032x}", n, n % 3 == 0) for n in range(3000)]
    index.append(spans)
    index.correct(1, 5, True, "fedcba9876543210fedcba9876543210")
    index.save()
    expected = [{"key": s.key, "etag": s.etag, "length": s.length, "exact": s.exact} for s in index.spans]
    assert state.read_text() == json.dumps({"spans": expected})
    reloaded = StreamIndex(state).load_saved()
    assert [(s.key, s.etag, s.length, s.exact) for s in reloaded] == [tuple(row.values()) for row in expected]


def test_catalog_entries_are_views_of_one_place() -> None:
    tree = Tree(PREFIX, True, {"stream"}, first_ino=16)
    catalog = _catalog(tree)
    infos = [ObjectInfo(key, 100 + n, f"{n:032x}", 1.7e9 + n) for n, key in enumerate(_alb_keys(50))]
    catalog._add(infos, notify=False)
    assert len(catalog.entries) == 50 and [entry.key for entry in catalog.entries] == [info.key for info in infos]
    entry = catalog.by_key[infos[7].key]
    assert entry == catalog.entries[7] and entry.info == infos[7] and entry.size is None
    entry.size, entry.size_exact, entry.encoding = 12, True, "gzip"
    again = catalog.by_key.get(infos[7].key)
    assert isinstance(again, Entry) and (again.size, again.size_exact, again.encoding) == (12, True, "gzip")
    catalog._update(entry, ObjectInfo(infos[7].key, 5, "abc-2", 1.8e9), 1.0)  # replaced in place
    assert catalog.entries[7].info == ObjectInfo(infos[7].key, 5, "abc-2", 1.8e9) and catalog.entries[7].size is None
    assert catalog.by_key.get(PREFIX + "missing") is None and infos[3].key in catalog.by_key
    assert list(catalog.by_key) == [info.key for info in infos]
    node = tree.lookup(tree.path_of(infos[7].key) or "")
    assert isinstance(node, FileNode) and node.key == infos[7].key


@pytest.mark.slow  # 20,000 keys under tracemalloc
def test_a_listed_key_costs_few_bytes() -> None:
    """The catalog, the tree and the index of 20,000 ALB keys (about 150 characters each), the
    keys themselves included, stay far below the 1.6 KB a key they took as objects and dicts."""
    keys = _alb_keys(20_000)
    infos = [ObjectInfo(key, 1000 + n, f"{n:032x}", 1.7e9 + n) for n, key in enumerate(keys)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tree = Tree(PREFIX, True, {"stream"}, first_ino=16)
        catalog = _catalog(tree)
        for start in range(0, len(infos), 1000):
            catalog._add(infos[start : start + 1000], notify=False)
        index = StreamIndex(None, keys=tree.keys)
        index.append(Span(entry.key, entry.info.etag, entry.info.size, False) for entry in catalog.entries)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(index) == len(catalog.entries) == len(keys)
    assert used / len(keys) < 500, f"{used / len(keys):.0f} bytes a key"


def test_sorted_keys_of_the_index() -> None:
    index = StreamIndex(None)
    index.append(Span(key, "e", 1, False) for key in ("a", "b", "d"))
    assert list(index.sorted_keys()) == ["a", "b", "d"]
    index.append([Span("c", "e", 1, False), Span("", "e", 1, False)])  # found later, sorting before
    keys = index.sorted_keys()
    assert list(keys) == ["", "a", "b", "c", "d"] and keys[-1] == "d" and len(keys) == 5


def test_saved_spans_by_key(tmp_path: Path) -> None:
    index = StreamIndex(tmp_path / "s.json")
    index.append([Span("b", "0123456789abcdef0123456789abcdef", 3, True), Span("a", "x-2", 0, False)])
    index.save()
    saved = StreamIndex(tmp_path / "s.json").load_saved_spans()
    assert list(saved) == ["b", "a"] and len(saved) == 2 and "a" in saved and saved.get("c") is None
    assert saved["b"] == Span("b", "0123456789abcdef0123456789abcdef", 3, True)
    assert saved.get("a") == Span("a", "x-2", 0, False)
    assert len(StreamIndex(tmp_path / "none.json").load_saved_spans()) == 0
