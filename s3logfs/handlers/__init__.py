"""Logging handlers that ship records to where ``s3logfs mount`` reads them (README, "Shipping logs").

    from s3logfs.handlers import S3Handler, FirehoseHandler, CloudWatchHandler

All three share one batching core: a bounded queue, one lazily started sender thread, flushes by
size, count and age, retries with backoff that keep the batch, counted and reported overflow,
``flush(timeout)``, ``close()``, and safety with threads, ``fork()`` and interpreter exit.
Importing this package needs only boto3 (imported when the first handler is made), never the
FUSE binding or the mount's modules, and does nothing at import time.
"""

from __future__ import annotations

from ._batching import HandlerCounters
from ._cloudwatch import CloudWatchHandler
from ._firehose import FirehoseHandler
from ._s3 import S3Handler

__all__ = ["CloudWatchHandler", "FirehoseHandler", "HandlerCounters", "S3Handler"]
