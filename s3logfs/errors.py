"""The error tree of s3logfs, and its single mapping to errno.

Every layer raises one of these; the FUSE layer turns them into errno through
:func:`errno_for`, and the CLI turns them into a one-line message.
"""

from __future__ import annotations

import errno


class S3LogFSError(Exception):
    """Base class of every error s3logfs raises on purpose."""

    errno: int = errno.EIO


class UsageError(S3LogFSError):
    """Bad input from the user: a wrong option, mountpoint or bookmark."""

    errno = errno.EINVAL


class BucketNotFound(S3LogFSError):
    """The bucket does not exist."""

    errno = errno.ENOENT


class CredentialsError(S3LogFSError):
    """Credentials are missing, invalid or denied."""

    errno = errno.EACCES


class ObjectNotFound(S3LogFSError):
    """The object was deleted after it was listed: the file is there, its content is not (EIO)."""

    errno = errno.EIO


class ObjectChanged(S3LogFSError):
    """The object was replaced (new ETag) while it was being read."""

    errno = errno.ESTALE


class S3Error(S3LogFSError):
    """A request to S3 failed after its retries."""

    errno = errno.EIO


class EndpointUnreachable(S3Error):
    """No connection to the endpoint: a dead port, an unknown host, no network (EIO)."""


class CodecError(S3LogFSError):
    """An object's content could not be decoded (a corrupt gzip, say)."""

    errno = errno.EIO


def errno_for(error: BaseException) -> int:
    """Return the errno that stands for ``error`` at the filesystem boundary."""
    if isinstance(error, S3LogFSError):
        return error.errno
    if isinstance(error, OSError) and error.errno:
        return error.errno
    return errno.EIO
