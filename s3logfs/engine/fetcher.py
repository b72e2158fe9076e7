"""Objects: from S3 through the codecs into the disk cache, once per object.

:class:`ObjectFetcher` answers two questions about an object:

* :meth:`~ObjectFetcher.materialize`: where is its decoded content on disk? It fetches
  and decodes the object into the cache on a miss. Concurrent callers for one object
  share one download (single flight), so a reader and the read-ahead never fetch twice.
* :meth:`~ObjectFetcher.probe_size`: how big is it decoded, without downloading it? Exact
  when cached. Otherwise the listing's stored size for objects whose key does not say
  gzip (no request at all, so mounting 10,000 plain objects costs only the listing), and
  the gzip ISIZE trailer (one 4-byte ranged GET) for keys ending ``.gz``: exact for
  single-member gzip, and a lower bound for multi-member gzip.

With ``--records`` (``records`` other than ``none``) the cached content is the records'
lines, which no listing or trailer can size: every probe is then an estimate until the
object is decoded, and the cache is a separate directory per mode (see
:func:`s3logfs.engine.records.cache_subdir`).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ..errors import CodecError, S3Error
from .cache import CachedObject, DiskCache
from .codecs import GZIP, PLAIN, detect, gzip_isize, object_decoder
from .records import NONE
from .s3 import ObjectInfo, S3Client
from .stats import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeProbe:
    """A decoded size and whether it is exact."""

    size: int
    exact: bool
    encoding: str


class ObjectFetcher:
    """Fetch, decode and cache objects of one bucket."""

    def __init__(self, client: S3Client, cache: DiskCache, stats: Stats, decode: bool = True,
                 records: str = NONE) -> None:
        self.client = client
        self.stats = stats
        self.cache = cache
        self.decode = decode
        self.records = records if decode else NONE
        self._inflight: dict[tuple[str, str], Future[CachedObject]] = {}
        self._lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self.client.bucket

    @property
    def transforms(self) -> bool:
        """Whether decoded content is records' lines, which no probe can size exactly."""
        return self.records != NONE

    def cache_path(self, key: str) -> Path:
        """Where ``key``'s decoded content is (or would be) cached."""
        return self.cache.path_for(self.bucket, key)

    def cached(self, info: ObjectInfo) -> CachedObject | None:
        return self.cache.lookup(self.bucket, info.key, info.etag)

    def materialize(self, info: ObjectInfo) -> CachedObject:
        """The decoded content of ``info`` on disk, fetched at most once at a time."""
        hit = self.cached(info)
        if hit is not None:
            self.stats.add(cache_hits=1)
            return hit
        with self._lock:
            future = self._inflight.get((info.key, info.etag))
            leader = future is None
            if future is None:
                future = Future()
                self._inflight[(info.key, info.etag)] = future
        if not leader:
            return future.result()
        try:
            result = self._download(info)
            future.set_result(result)
            return result
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            with self._lock:
                del self._inflight[(info.key, info.etag)]

    def open(self, info: ObjectInfo, cached: CachedObject) -> tuple[CachedObject, int]:
        """A read-only descriptor on ``cached``, the content of ``info``, fetching it again if
        another process evicted (or replaced) it since it was looked up."""
        for _ in range(_OPEN_ATTEMPTS):
            fd = self.cache.open_content(cached)
            if fd is not None:
                return cached, fd
            log.info("s3://%s/%s left the cache before it was opened; fetching it again", self.bucket, info.key)
            cached = self.materialize(info)
        raise S3Error(f"s3://{self.bucket}/{info.key} keeps leaving the cache before it can be read "
                      "(is --cache-max-size smaller than the objects read at once?)")

    def _download(self, info: ObjectInfo) -> CachedObject:
        self.stats.add(cache_misses=1)
        decoder = object_decoder(self.decode, self.records)
        try:
            with self.cache.writer(self.bucket, info.key, info.etag) as out:
                for chunk in self.client.iter_object(info.key, info.etag or None):
                    out.write(decoder.decode(chunk))
                out.write(decoder.flush())
                out.encoding = getattr(decoder, "encoding", None) or "plain"
        except CodecError as error:
            self.stats.add(errors=1)
            log.error("cannot decode s3://%s/%s: %s", self.bucket, info.key, error)
            raise CodecError(f"{error} in s3://{self.bucket}/{info.key}") from error
        assert out.result is not None
        self._count_unparsed(info, getattr(decoder, "unparsed", 0))
        log.debug("cached s3://%s/%s (%d bytes decoded)", self.bucket, info.key, out.result.size)
        return out.result

    def _count_unparsed(self, info: ObjectInfo, unparsed: int) -> None:
        """Count records passed through unparsed, once per download (a cache hit parses nothing)."""
        if unparsed:
            self.stats.add(records_unparsed=unparsed)
            log.warning("%d record(s) of s3://%s/%s could not be parsed as %s; passed through as they are",
                        unparsed, self.bucket, info.key, self.records)

    def probe_size(self, info: ObjectInfo, sniff: bool = False) -> SizeProbe:
        """The decoded size of ``info`` from at most two tiny requests; see the module docstring.

        Without ``sniff``, only keys named like gzip cost a request (the ISIZE trailer);
        any other object is taken as plain at its stored size, unconfirmed. With ``sniff``,
        the first two bytes decide, whatever the name.
        """
        local = self.local_size(info, sniff)
        if local is not None:
            return local
        if sniff and detect(self.client.get_range(info.key, "0-1", info.etag or None)) != GZIP:
            return SizeProbe(info.size, not self.transforms, PLAIN)
        if info.size < 18:  # smaller than an empty gzip member: corrupt, reading will say so
            return SizeProbe(0, False, GZIP)
        isize = gzip_isize(self.client.get_range(info.key, "-4", info.etag or None))
        if isize > MAX_INFLATE_RATIO * info.size:  # no gzip inflates that much: a plain file named .gz
            return SizeProbe(info.size, False, UNKNOWN)
        return SizeProbe(isize, False, GZIP)

    def local_size(self, info: ObjectInfo, sniff: bool = False) -> SizeProbe | None:
        """What :meth:`probe_size` says without a request (from the cache or the listing), or None."""
        hit = self.cached(info)
        if hit is not None:
            return SizeProbe(hit.size, True, hit.encoding)
        if info.size == 0 or not self.decode or (info.size < 2 and not self.transforms):
            return SizeProbe(info.size, True, PLAIN)
        if not sniff and not looks_gzip_named(info.key):
            return SizeProbe(info.size, False, UNKNOWN)
        return None


_OPEN_ATTEMPTS = 5
MAX_INFLATE_RATIO = 1032
"""Deflate's largest possible expansion: an ISIZE above this times the stored size is not gzip."""
UNKNOWN = "unknown"
"""The encoding of an object sized from its listing alone."""
_GZIP_SUFFIXES = (".gz", ".gzip", ".tgz")


def looks_gzip_named(key: str) -> bool:
    """Whether a key's name says gzip. Only sizing uses this; content is decoded by its magic bytes."""
    return key.lower().endswith(_GZIP_SUFFIXES)
