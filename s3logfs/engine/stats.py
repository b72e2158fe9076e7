"""The engine's counters: requests by kind, bytes, cache hits, retries, errors and skips.

Every layer that counts gets the one :class:`Stats` of its engine when it is built (the
S3 client, the fetcher, the catalog, the stream reader); the mount shows a snapshot as
the root's ``user.s3logfs.stats`` xattr and ``cat`` reports skips from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Stats:
    """Counters shown in the root's ``user.s3logfs.stats`` xattr. Thread-safe."""

    keys: int = 0
    bytes: int = 0
    gets: int = 0
    lists: int = 0
    heads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    retries: int = 0
    errors: int = 0
    records_unparsed: int = 0
    """Records that ``--records`` passed through because they could not be parsed."""
    skips: int = 0
    """Objects that ``--skip-errors`` left out of the stream because they could not be read."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def set(self, **values: int) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "keys": self.keys,
                "bytes": self.bytes,
                "gets": self.gets,
                "lists": self.lists,
                "heads": self.heads,
                "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses,
                "retries": self.retries,
                "errors": self.errors,
                "records_unparsed": self.records_unparsed,
                "skips": self.skips,
            }
