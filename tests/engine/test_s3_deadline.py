"""``--timeout`` ends a call and its retries, on every botocore that setup.cfg allows.

:meth:`S3Client._retry_before_deadline` runs on botocore's ``needs-retry`` event before botocore's
retry handler. Past the deadline a failed call must end with its error and a successful one must
return. Each test counts the requests sent and stops a call that goes on retrying with an error
of its own, so that a regression fails in seconds instead of hanging.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server
from s3logfs.engine.s3 import S3Client, S3Config
from s3logfs.errors import EndpointUnreachable, S3Error

from helpers import free_port

TIMEOUT = 1.0
MANY_ATTEMPTS = 1000
"""More attempts than fit in TIMEOUT: only the deadline can end the retries."""
MOST_REQUESTS = 30


class RetriedPastTheDeadline(BaseException):
    """Not an Exception: botocore before 1.32 would take one raised while sending for a failed request."""


def _count_requests(client: S3Client) -> list[str]:
    """The operations sent, one per request; the one after MOST_REQUESTS raises instead of sending."""
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        sent.append(request.method)
        if len(sent) > MOST_REQUESTS:
            raise RetriedPastTheDeadline(f"{len(sent)} requests within one call")

    client._client.meta.events.register("before-send.s3", before_send)
    return sent


def _client(endpoint: str, **options: Any) -> S3Client:
    config = S3Config(endpoint_url=endpoint, timeout=TIMEOUT, max_attempts=MANY_ATTEMPTS, connect_timeout=1.0,
                      **options)
    return S3Client("deadline-bucket", config)


@pytest.mark.parametrize("retry_mode", ["adaptive", "standard", "legacy"])
def test_an_unreachable_endpoint_fails_once_past_the_deadline(retry_mode: str) -> None:
    client = _client(f"http://127.0.0.1:{free_port()}", retry_mode=retry_mode)
    sent = _count_requests(client)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable):
        client.head("logs/a.log")
    assert 2 <= len(sent) <= 10, sent  # retried before the deadline, not after it
    assert time.monotonic() - started < TIMEOUT + 10  # the last backoff before the deadline may overshoot it


def test_an_error_response_fails_once_past_the_deadline(server: LocalS3Server, s3: Any, bucket: str,
                                                        faults: list[Fault]) -> None:
    s3.put_object(Bucket=bucket, Key="logs/a.log", Body=b"line\n")
    faults.append(Fault(count=10**6, kind="get", status=500))
    client = S3Client(bucket, S3Config(endpoint_url=server.endpoint_url, timeout=TIMEOUT,
                                       max_attempts=MANY_ATTEMPTS))
    sent = _count_requests(client)
    with pytest.raises(S3Error, match="InternalError"):
        client.get_range("logs/a.log", "0-3")
    assert 2 <= len(sent) <= 10, sent


def test_a_success_that_comes_after_the_deadline_is_returned(server: LocalS3Server, s3: Any, bucket: str,
                                                             faults: list[Fault]) -> None:
    """The hook sees successful responses too: a slow answer past the deadline is still the answer."""
    s3.put_object(Bucket=bucket, Key="logs/a.log", Body=b"line\n")
    faults.append(Fault(count=1, kind="get", status=None, stall=TIMEOUT + 0.5))
    client = S3Client(bucket, S3Config(endpoint_url=server.endpoint_url, timeout=TIMEOUT,
                                       max_attempts=MANY_ATTEMPTS))
    sent = _count_requests(client)
    assert client.get_range("logs/a.log", "0-3") == b"line"
    assert len(sent) == 1
