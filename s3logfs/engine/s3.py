"""The S3 layer: listing, streaming and ranged GETs, and retries.

This is the only module that talks to S3. Everything above it sees :class:`ObjectInfo`
records and bytes, and the typed errors of :mod:`s3logfs.errors`.

botocore retries whole requests (throttling, 5xx, connection errors) with its
``standard`` or ``adaptive`` mode. It does not retry a body that breaks half way
(``ResponseStreamingError``), so :meth:`S3Client.iter_object` resumes such a body itself
with a ranged GET from the last good byte, pinned to the ETag with ``If-Match``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import botocore.config
import botocore.exceptions
import botocore.parsers
import botocore.session
import urllib3.exceptions

from ..errors import (
    BucketNotFound,
    CredentialsError,
    EndpointUnreachable,
    ObjectChanged,
    ObjectNotFound,
    S3Error,
    UsageError,
)
from .listing_parser import ParserFactory, handle_200_errors, parse_timestamp
from .stats import Stats

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 << 10
"""Bytes per read from a response body: large enough to keep syscalls few, small enough for RSS."""

_CREDENTIAL_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "403",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_BODY_ERRORS = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
)


@dataclass(frozen=True)
class ObjectInfo:
    """One object as a listing shows it."""

    key: str
    size: int
    etag: str
    last_modified: float


@dataclass(frozen=True)
class ListPage:
    """One ListObjectsV2 page: its objects, and whether more follow."""

    objects: list[ObjectInfo]
    truncated: bool


@dataclass(frozen=True)
class S3Config:
    """How to reach S3. Built once from the command line and the config file."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_pool_connections: int = 32
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    timeout: float = 30.0
    """``--timeout``: the longest a call, its retries included, or an object's download may go
    without an answer or a byte. Past it nothing is retried: the call fails (EIO for a read)."""
    max_attempts: int = 6
    retry_mode: Literal["legacy", "standard", "adaptive"] = "adaptive"

    @property
    def resolved_endpoint(self) -> str | None:
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def _check_endpoint(endpoint: str | None) -> None:
    """An endpoint URL must say its scheme and host: botocore would fail with a traceback."""
    if endpoint is None:
        return
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        hint = f": try http://{endpoint}" if "://" not in endpoint else ""
        raise UsageError(f"bad endpoint URL {endpoint!r}, it needs http:// or https:// and a host{hint}")


def _object_info(item: dict[str, Any]) -> ObjectInfo:
    """One ``Contents`` item of a parsed listing."""
    return ObjectInfo(
        key=item["Key"],
        size=int(item["Size"]),
        etag=item.get("ETag", "").strip('"'),
        last_modified=item["LastModified"].timestamp(),
    )


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection failure, in a few words (``[Errno 111] Connection refused``)."""
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause).rsplit(": ", 1)[-1].strip() or type(cause).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Client:
    """A thread-safe wrapper of a botocore S3 client, for one bucket."""

    def __init__(self, bucket: str, config: S3Config, stats: Stats | None = None) -> None:
        self.bucket = bucket
        self.config = config
        self.stats = stats or Stats()
        self._client = self._make_client(config)
        self._deadline = threading.local()
        """The monotonic time past which this thread's call is not retried (see :meth:`_call`)."""
        self._client.meta.events.register_first("needs-retry.s3", self._retry_before_deadline)
        self._checked_page: tuple[str, Any] | None = None

    @staticmethod
    def _make_client(config: S3Config) -> Any:
        """A botocore client (boto3 would add only import time: its extras are uploads)."""
        _check_endpoint(config.resolved_endpoint)
        session = botocore.session.Session(profile=config.profile)
        parsers = ParserFactory()
        parsers.set_parser_defaults(timestamp_parser=parse_timestamp)
        session.register_component("response_parser_factory", parsers)
        boto_config = botocore.config.Config(
            max_pool_connections=config.max_pool_connections,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retries={"mode": config.retry_mode, "max_attempts": config.max_attempts},
            s3={"addressing_style": "path"} if config.resolved_endpoint else None,
        )
        try:
            client = session.create_client(
                "s3", region_name=config.region, endpoint_url=config.resolved_endpoint, config=boto_config
            )
        except botocore.exceptions.ProfileNotFound as error:
            raise CredentialsError(f"AWS profile not found: {config.profile}") from error
        handle_200_errors(client.meta.events)
        return client

    def _retry_before_deadline(self, response: Any = None, caught_exception: BaseException | None = None,
                               operation: Any = None, **_: Any) -> None:
        """botocore's ``needs-retry`` hook, run before its retry handler, for every response.

        Before the calling thread's deadline, and for a successful response, it answers None:
        botocore's retry mode decides. Past the deadline it ends a failed call by raising what
        the call would raise without a retry: the caught exception, or the ``ClientError`` of an
        error response, as botocore's client does. It never answers False: some botocore
        releases take any answer but None as a delay in seconds, and False as "retry at once".
        """
        deadline = getattr(self._deadline, "value", None)
        if deadline is None or time.monotonic() < deadline:
            return
        if caught_exception is not None:
            raise caught_exception
        if response is not None:
            http, parsed = response
            if http.status_code >= 300 or "Error" in parsed:
                code = parsed.get("Error", {}).get("Code")
                raise self._client.exceptions.from_code(code)(parsed, operation.name)

    def _call(self, operation: str, key: str | None = None, deadline: float | None = None, **params: Any) -> Any:
        """Run one S3 call, count it, and translate its failure into our error tree.

        The call is not retried past ``deadline`` (default: ``timeout`` seconds from now), and
        each of its requests waits at most the connect and read timeouts: a stalled server
        costs about ``timeout`` seconds, never a hang.
        """
        deadline = time.monotonic() + self.config.timeout if deadline is None else deadline
        if time.monotonic() >= deadline:
            self.stats.add(errors=1)
            raise S3Error(f"no progress within --timeout {self.config.timeout:g} s on s3://{self.bucket}/{key or ''}")
        self._deadline.value = deadline
        try:
            response = getattr(self._client, operation)(Bucket=self.bucket, **params)
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError) as error:
            self.stats.add(errors=1)
            raise EndpointUnreachable(f"cannot reach {self._endpoint_name()}: {_reason(error)}") from error
        except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as error:
            self.stats.add(errors=1)
            raise S3Error(f"no answer from {self._endpoint_name()} within --timeout {self.config.timeout:g} s "
                          f"for s3://{self.bucket}/{key or ''}") from error
        except botocore.exceptions.ClientError as error:
            self.stats.add(errors=1)
            translated = self._translate(error, key)
            if isinstance(translated, ObjectNotFound):  # name the key: the FUSE layer does not log ENOENT
                log.warning("%s", translated)
            raise translated from error
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError) as error:
            raise CredentialsError("no AWS credentials found (environment, profile, SSO or instance role)") from error
        except botocore.parsers.ResponseParserError as error:
            self.stats.add(errors=1)
            raise S3Error(f"{self._endpoint_name()} does not answer like S3 (its reply is not S3's XML)") from error
        except botocore.exceptions.BotoCoreError as error:
            self.stats.add(errors=1)
            raise S3Error(f"S3 request failed: {error}") from error
        finally:
            self._deadline.value = None
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retries:
            self.stats.add(retries=retries)
        return response

    def _translate(self, error: botocore.exceptions.ClientError, key: str | None) -> Exception:
        code = _error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return BucketNotFound(f"bucket not found: {self.bucket}")
        if code in _CREDENTIAL_CODES or status == 403:
            return CredentialsError(f"access denied to s3://{self.bucket} ({code})")
        if key is not None and (code in _MISSING_KEY_CODES or status == 404):
            return ObjectNotFound(f"object not found: s3://{self.bucket}/{key}")
        if code in ("PreconditionFailed", "412") or status == 412:
            return ObjectChanged(f"object changed while reading: s3://{self.bucket}/{key}")
        if status == 404 and code in ("", "404"):  # S3 names the error; a web server's 404 does not
            return S3Error(f"{self._endpoint_name()} does not answer like S3 (HTTP 404 with no S3 error code)")
        if status == 404:
            return BucketNotFound(f"bucket not found: {self.bucket}")
        return S3Error(f"S3 error {code or status} on s3://{self.bucket}/{key or ''}")

    def _endpoint_name(self) -> str:
        endpoint = self.config.resolved_endpoint
        return f"the endpoint {endpoint}" if endpoint else "S3"

    def check_access(self, prefix: str) -> bool:
        """Fail fast on a missing bucket or missing/denied credentials; whether ``prefix`` holds objects.

        The check is the listing's first page, which the next full listing of ``prefix``
        reuses: mounting then costs no request for the check.
        """
        page = self._list_page({"Prefix": prefix})
        self._checked_page = (prefix, page)
        return bool(page.get("Contents"))

    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order, after ``start_after`` if given."""
        for page in self.list_pages(prefix, start_after):
            yield from page

    def list_pages(self, prefix: str, start_after: str | None = None) -> Generator[list[ObjectInfo], None, None]:
        """As :meth:`list_objects`, a page at a time.

        The next page is requested as soon as a page arrives, so the server works on it
        while the caller takes in this one.
        """
        page = self._first_page(prefix, start_after)
        requester: ThreadPoolExecutor | None = None  # only for listings of more than a page
        try:
            while True:
                token = page.get("NextContinuationToken")
                pending = None
                if page.get("IsTruncated") and token:
                    requester = requester or ThreadPoolExecutor(1, thread_name_prefix="s3logfs-list")
                    pending = requester.submit(self._list_page, {"Prefix": prefix, "ContinuationToken": token})
                yield [_object_info(item) for item in page.get("Contents", ())]
                if pending is None:
                    return
                page = pending.result()
        finally:
            if requester is not None:
                requester.shutdown(wait=False, cancel_futures=True)

    def list_page(self, prefix: str, start_after: str | None = None) -> ListPage:
        """One page of keys under ``prefix`` after ``start_after``: the step of a listing that jumps.

        A windowed listing (:mod:`s3logfs.engine.window_listing`) decides after each page where the
        next one starts, so nothing is requested ahead.
        """
        page = self._first_page(prefix, start_after)
        objects = [_object_info(item) for item in page.get("Contents", ())]
        return ListPage(objects, bool(page.get("IsTruncated")))

    def _first_page(self, prefix: str, start_after: str | None) -> Any:
        """The response for a listing's first page; the access check's page when it is that one."""
        if not start_after and self._checked_page is not None and self._checked_page[0] == prefix:
            page, self._checked_page = self._checked_page[1], None
            return page
        params: dict[str, Any] = {"Prefix": prefix}
        if start_after:
            params["StartAfter"] = start_after
        return self._list_page(params)

    def _list_page(self, params: dict[str, Any]) -> Any:
        self.stats.add(lists=1)
        return self._call("list_objects_v2", **params)

    def head(self, key: str) -> ObjectInfo:
        self.stats.add(heads=1)
        response = self._call("head_object", key=key, Key=key)
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=response.get("ETag", "").strip('"'),
            last_modified=response["LastModified"].timestamp(),
        )

    def get_range(self, key: str, byte_range: str, etag: str | None = None) -> bytes:
        """The bytes of one HTTP range (``"0-1"``, ``"-4"``) of an object, read whole."""
        deadline = time.monotonic() + self.config.timeout
        for attempt in range(self.config.max_attempts):
            response = self._get(key, f"bytes={byte_range}", etag, deadline)
            try:
                data: bytes = response["Body"].read()
            except _BODY_ERRORS as error:
                self._note_body_failure(key, attempt, error)
                continue
            self.stats.add(bytes=len(data))
            return data
        raise S3Error(f"giving up on s3://{self.bucket}/{key} after {self.config.max_attempts} broken bodies")

    def iter_object(self, key: str, etag: str | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream a whole object, resuming broken bodies from the last good byte.

        It gives up after ``max_attempts`` broken bodies, or once ``timeout`` seconds went by
        without a byte, retries included; a slow download that keeps coming is never cut.
        """
        position = 0
        failures = 0
        progress = time.monotonic()
        while True:
            response = self._get(key, f"bytes={position}-" if position else None, etag, progress + self.config.timeout)
            try:
                for chunk in response["Body"].iter_chunks(chunk_size):
                    position += len(chunk)
                    self.stats.add(bytes=len(chunk))
                    yield chunk
                    progress = time.monotonic()
                return
            except _BODY_ERRORS as error:
                failures += 1
                if failures >= self.config.max_attempts or time.monotonic() - progress >= self.config.timeout:
                    self.stats.add(errors=1)
                    raise S3Error(f"giving up on s3://{self.bucket}/{key} at byte {position}: {error}") from error
                self._note_body_failure(key, failures, error)

    def _get(self, key: str, byte_range: str | None, etag: str | None, deadline: float | None = None) -> Any:
        params: dict[str, Any] = {"Key": key}
        if byte_range:
            params["Range"] = byte_range
        if etag:
            params["IfMatch"] = f'"{etag}"'
        self.stats.add(gets=1)
        response = self._call("get_object", key=key, deadline=deadline, **params)
        if etag and byte_range and response.get("ETag", "").strip('"') not in ("", etag):
            raise ObjectChanged(f"object changed while reading: s3://{self.bucket}/{key}")
        return response

    def _note_body_failure(self, key: str, attempt: int, error: BaseException) -> None:
        self.stats.add(retries=1)
        log.warning("broken response body for s3://%s/%s (%s); retrying", self.bucket, key, error)
        time.sleep(min(2.0, 0.05 * (2**attempt)))
