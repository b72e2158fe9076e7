"""s3logfs: read AWS logs kept in S3 as local files.

The public API is what ``__all__`` lists; every other module is internal and may change.
"""

from __future__ import annotations

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

__all__ = [
    "BucketNotFound",
    "CodecError",
    "CredentialsError",
    "ObjectChanged",
    "ObjectNotFound",
    "S3LogFSError",
    "UsageError",
    "__version__",
]
