"""boto3 clients for the handlers' sender threads, and which errors are worth a retry.

boto3 is imported here, when a handler is made: importing ``s3logfs.handlers`` costs nothing and
does nothing. (Not later, at the first send: that may come at interpreter exit, when boto3's
imports fail.) botocore's own retries are off (one attempt per call), because the
batching core retries with its own backoff and keeps the batch; two retry layers would multiply
the waits and hide the attempts from the handler's counters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RETRYABLE_CODES = frozenset({
    "BandwidthLimitExceeded",
    "EC2ThrottledException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "LimitExceededException",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "TransactionInProgressException",
})
"""Error codes that mean "try again later" (throttling and transient server faults)."""

ClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class ClientSpec:
    """Where and as whom a handler's client connects."""

    service: str
    endpoint_url: str | None = None
    region_name: str | None = None
    profile_name: str | None = None

    def make(self) -> Any:
        """A new client with its own session: boto3's default session is not thread-safe."""
        import boto3
        import botocore.config

        session = boto3.session.Session(profile_name=self.profile_name, region_name=self.region_name)
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "total_max_attempts": 1},
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_pool_connections": 2,
        }
        if self.endpoint_url and self.service == "s3":
            options["s3"] = {"addressing_style": "path"}
        return session.client(self.service, endpoint_url=self.endpoint_url,
                              config=botocore.config.Config(**options))


def clone_client(client: Any) -> Any:
    """A client like ``client`` (service, region, endpoint, config, credentials) with no shared sockets.

    Used in a child after ``fork()``: the parent's connection pool, and any lock its sender held
    at the moment of the fork, must not be touched from the child.
    """
    import boto3

    meta = client.meta
    credentials = client._get_credentials() if hasattr(client, "_get_credentials") else None
    keys: dict[str, Any] = {}
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token}
    session = boto3.session.Session(region_name=meta.region_name, **keys)
    return session.client(meta.service_model.service_name, endpoint_url=meta.endpoint_url, config=meta.config)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError``, or ``""``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and connection-level failures: the same request may succeed later."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or status == 429 or error_code(exc) in RETRYABLE_CODES
    return isinstance(exc, (ConnectionError, HTTPClientError, OSError))
