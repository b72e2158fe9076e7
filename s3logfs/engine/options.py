"""The one options record the engine is built from.

The front ends (``mount``, ``cat``, :class:`~s3logfs.LogStream`) each build a
:class:`SourceOptions` in one place (:func:`s3logfs.config.source_options`) and hand it
down; what only a front end needs (a mountpoint, ``-f``, ``-b``) stays in its own record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .records import NONE

if TYPE_CHECKING:  # annotations only: the command line builds options without importing botocore
    from .s3 import S3Config
    from .window import Window


@dataclass(frozen=True)
class SourceOptions:
    """One bucket prefix, and how to read it."""

    bucket: str
    prefix: str
    s3: S3Config
    cache_dir: Path
    """The cache's root: ``--raw`` and each ``--records`` mode keep their own directory below it."""
    bookmarks_file: Path
    """The config file whose ``[bookmarks]`` section holds the named bookmarks."""
    cache_hours: float = 24.0
    cache_max_size: int | None = None
    poll_interval: float = 10.0
    """Seconds between listings of new keys; 0 turns following off."""
    prefetch: int = 16
    """Objects read ahead in parallel by a sequential reader."""
    raw: bool = False
    """Show the stored bytes, undecoded."""
    records: str = NONE
    """``--records``: one of :data:`s3logfs.engine.records.MODES`."""
    window: Window | None = None
    """``--since``/``--until``; None shows every object."""
    skip_errors: bool = False
    """Leave an object that cannot be read out of the stream instead of failing the read."""

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``: how bookmarks and the mount's root name this source."""
        return f"s3://{self.bucket}/{self.prefix}"


def parse_source(source: str) -> tuple[str, str]:
    """Split ``[s3://]BUCKET[/PREFIX]`` into bucket and prefix (here, not in ``s3``: the
    commands that only name a source, such as ``bookmarks set``, need no botocore)."""
    text = source.removeprefix("s3://")
    bucket, _, prefix = text.partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {source!r}: expected [s3://]BUCKET[/PREFIX]")
    return bucket, prefix
