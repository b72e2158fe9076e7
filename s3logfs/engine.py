"""The engine: every layer below the front ends, wired for one bucket prefix.

Data flows one way: S3 (:mod:`~s3logfs.s3`) to the disk cache (:mod:`~s3logfs.cache`,
through :mod:`~s3logfs.objects` and the codecs) to the catalog and index to the stream
reader, and bookmarks on top. The mount (:mod:`s3logfs.mount`, FUSE) and the FUSE-free
front ends (``s3logfs cat`` in :mod:`s3logfs.cat`, and :class:`s3logfs.LogStream`) build
the same engine with :func:`build_engine`; nothing here imports the FUSE binding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .bookmarks import BookmarkStore, StreamBookmarks
from .cache import DiskCache, check_cache_dir
from .catalog import Catalog
from .config import CatOptions, MountOptions
from .index import StreamIndex
from .names import Tree
from .objects import ObjectFetcher
from .records import cache_subdir
from .s3 import S3Client, Stats
from .stream import StreamReader

RESERVED_ROOT_NAMES = frozenset({"stream", ".bookmarks"})
"""Root names of the mount's own entries: a key of that name gets another name (see :mod:`s3logfs.names`)."""


SourceOptions = MountOptions | CatOptions
"""What the engine is built from: ``mount``'s options, or ``cat``'s and ``LogStream``'s (frozen
dataclasses, whose fields a protocol of plain attributes would wrongly ask to be settable)."""


@dataclass
class Engine:
    """Everything below the FUSE layer, wired for one bucket prefix."""

    client: S3Client
    cache: DiskCache
    fetcher: ObjectFetcher
    catalog: Catalog
    reader: StreamReader
    bookmarks: StreamBookmarks

    def load(self) -> None:
        """List the prefix; the stream keeps the order a previous mount saved with this cache."""
        self.catalog.subscribe(self.reader.on_added)
        self.catalog.load(self.reader.saved_order())

    def start_reading(self, follow: bool) -> None:
        """For the front ends without FUSE: list the prefix, wait for the stream, start the poller if following."""
        self.load()
        self.reader.ready.wait()
        if follow:
            self.catalog.start()

    def close(self) -> None:
        self.catalog.stop()
        self.reader.close()
        self.cache.close()


def dir_prefix(prefix: str) -> str:
    """The directory a prefix lists: ``logs/prod-2016`` shows the keys of ``logs/``."""
    return prefix[: prefix.rfind("/") + 1]


def cache_root(cache_dir: Path, raw: bool, records: str) -> Path:
    """Where a source's decoded objects go: stored bytes (``--raw``) and each ``--records`` mode apart."""
    if raw:
        return cache_dir / "raw"
    records_dir = cache_subdir(records)
    return cache_dir / records_dir if records_dir is not None else cache_dir


def build_engine(options: SourceOptions, client: S3Client | None = None, size_ahead: bool = True) -> Engine:
    """The layers for one source, wired; nothing runs until :meth:`Engine.load`.

    ``size_ahead`` is for the mount, whose readers seek (see :class:`StreamReader`).
    """
    common = options.common
    client = client or S3Client(options.bucket, common.s3, Stats())
    cache_dir = cache_root(common.cache_dir, options.raw, options.records)
    check_cache_dir(common.cache_dir)  # the parent of a --raw or --records cache too
    cache = DiskCache.open(cache_dir, common.cache_hours, common.cache_max_size)
    fetcher = ObjectFetcher(client, cache, decode=not options.raw, records=options.records)
    tree = Tree(dir_prefix(options.prefix), not options.raw, set(RESERVED_ROOT_NAMES), first_ino=16)
    catalog = Catalog(fetcher, options.prefix, tree, options.poll_interval, window=options.window)
    state_file = None if cache.ephemeral else StreamIndex.state_path(cache.root, options.bucket, options.prefix)
    index = StreamIndex(state_file, persist=options.window is None, keys=tree.keys)  # a window's offsets are its own
    reader = StreamReader(catalog, index, options.prefetch, skip_errors=options.skip_errors, size_ahead=size_ahead)
    store = BookmarkStore(common.config_file)
    bookmarks = StreamBookmarks(store, options.source, options.prefix, catalog, index, reader.exact_length)
    return Engine(client, cache, fetcher, catalog, reader, bookmarks)
