"""s3logfs: read AWS logs kept in S3 as local files.

The public API is what ``__all__`` lists; every other module is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BucketNotFound,
    CodecError,
    CredentialsError,
    ObjectChanged,
    ObjectNotFound,
    S3LogFSError,
    UsageError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .logstream import LogStream

__all__ = [
    "BucketNotFound",
    "CodecError",
    "CredentialsError",
    "LogStream",
    "ObjectChanged",
    "ObjectNotFound",
    "S3LogFSError",
    "UsageError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``LogStream`` is imported on first use: ``import s3logfs.handlers`` stays free of the engine."""
    if name == "LogStream":
        from .logstream import LogStream

        return LogStream
    raise AttributeError(f"module 's3logfs' has no attribute {name!r}")
