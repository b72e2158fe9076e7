"""Objects: from S3 through the codecs into the disk cache, once per object.

:class:`ObjectFetcher` answers two questions about an object:

* :meth:`~ObjectFetcher.materialize`: where is its decoded content on disk? It fetches
  and decodes the object into the cache on a miss. Concurrent callers for one object
  share one download (single flight), so a reader and the read-ahead never fetch twice.
* :meth:`~ObjectFetcher.probe_size`: how big is it decoded, without downloading it? Exact
  when cached; otherwise the stored size for plain objects, and the gzip ISIZE trailer
  (one small ranged GET) for gzip ones, which is exact for single-member gzip.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from .cache import CachedObject, DiskCache
from .codecs import GZIP, AutoDecoder, PlainDecoder, detect, gzip_isize
from .errors import CodecError
from .s3 import ObjectInfo, S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeProbe:
    """A decoded size and whether it is exact."""

    size: int
    exact: bool
    encoding: str


class ObjectFetcher:
    """Fetch, decode and cache objects of one bucket."""

    def __init__(self, client: S3Client, cache: DiskCache, decode: bool = True) -> None:
        self.client = client
        self.cache = cache
        self.decode = decode
        self._inflight: dict[tuple[str, str], Future[CachedObject]] = {}
        self._lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self.client.bucket

    def cached(self, info: ObjectInfo) -> CachedObject | None:
        return self.cache.lookup(self.bucket, info.key, info.etag)

    def materialize(self, info: ObjectInfo) -> CachedObject:
        """The decoded content of ``info`` on disk, fetched at most once at a time."""
        hit = self.cached(info)
        if hit is not None:
            self.client.stats.add(cache_hits=1)
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

    def _download(self, info: ObjectInfo) -> CachedObject:
        self.client.stats.add(cache_misses=1)
        decoder = AutoDecoder() if self.decode else PlainDecoder()
        try:
            with self.cache.writer(self.bucket, info.key, info.etag) as out:
                for chunk in self.client.iter_object(info.key, info.etag or None):
                    out.write(decoder.decode(chunk))
                out.write(decoder.flush())
                out.encoding = getattr(decoder, "encoding", None) or "plain"
        except CodecError as error:
            self.client.stats.add(errors=1)
            log.error("cannot decode s3://%s/%s: %s", self.bucket, info.key, error)
            raise CodecError(f"{error} in s3://{self.bucket}/{info.key}") from error
        assert out.result is not None
        log.debug("cached s3://%s/%s (%d bytes decoded)", self.bucket, info.key, out.result.size)
        return out.result

    def probe_size(self, info: ObjectInfo) -> SizeProbe:
        """The decoded size of ``info`` from cheap requests; see the module docstring."""
        hit = self.cached(info)
        if hit is not None:
            return SizeProbe(hit.size, True, hit.encoding)
        if info.size < 2 or not self.decode:
            return SizeProbe(info.size, True, "plain")
        head = self.client.get_range(info.key, "0-1", info.etag or None)
        if detect(head) != GZIP:
            return SizeProbe(info.size, True, "plain")
        if info.size < 18:  # smaller than an empty gzip member: corrupt, reading will say so
            return SizeProbe(0, False, GZIP)
        trailer = self.client.get_range(info.key, "-4", info.etag or None)
        return SizeProbe(gzip_isize(trailer), False, GZIP)
