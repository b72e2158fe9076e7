"""The S3 layer against the local server: listings parsed fast agree with botocore's parser.

The reference is a plain boto3 client (botocore's own parsers); s3logfs's client parses
listings with :mod:`s3logfs.engine.listing_parser` and requests the next page early.
"""

from __future__ import annotations

from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server
from s3logfs.engine.s3 import S3Client, S3Config

from helpers import count_fast_parses

pytestmark = pytest.mark.slow  # the bucket takes 2,305 PUTs

KEYS = [f"logs/2026/11/{n:05d}.log" for n in range(2300)] + [
    "logs/a&b<c>'\"quote",
    "logs/ünïcödé/ключ",
    "logs/space name %41",
    "logs/tab\tkey",
    "other/x.log",
]


@pytest.fixture(scope="module")
def listed_bucket(server: LocalS3Server) -> str:
    s3 = server.client()
    name = "test-listing-parse"
    s3.create_bucket(Bucket=name)
    for key in KEYS:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def _client(server: LocalS3Server, bucket: str) -> S3Client:
    return S3Client(bucket, S3Config(endpoint_url=server.endpoint_url, max_attempts=3))


def _comparable(page: dict[str, Any]) -> dict[str, Any]:
    page = dict(page)
    page.pop("ResponseMetadata")
    for item in page.get("Contents", ()):
        item["LastModified"] = item["LastModified"].timestamp()  # the reference client keeps its own tzinfo
    return page


@pytest.mark.parametrize(
    "params",
    [
        {"Prefix": "logs/"},
        {"Prefix": "logs/", "Delimiter": "/"},
        {"Prefix": "", "Delimiter": "/"},
        {"Prefix": "logs/", "StartAfter": "logs/2026/11/02000.log"},
        {"Prefix": "logs/", "MaxKeys": 7, "StartAfter": "logs/2026/11/02295.log"},
        {"Prefix": "nothing-here/"},
    ],
)
def test_fast_listing_parse_equals_botocore(server: LocalS3Server, listed_bucket: str, params: dict) -> None:
    ours, reference = _client(server, listed_bucket)._client, server.client()
    token: dict[str, str] = {}
    for _ in range(4):  # follow the pages: tokens must round-trip too
        mine = ours.list_objects_v2(Bucket=listed_bucket, **params, **token)
        theirs = reference.list_objects_v2(Bucket=listed_bucket, **params, **token)
        assert _comparable(mine) == _comparable(theirs)
        if not theirs.get("IsTruncated"):
            break
        token = {"ContinuationToken": theirs["NextContinuationToken"]}


def test_listing_prefetch_keeps_order_and_requests(server: LocalS3Server, listed_bucket: str) -> None:
    client = _client(server, listed_bucket)
    before = len(server.counters.of_kind("list"))
    keys = [info.key for info in client.list_objects("logs/")]
    assert keys == sorted(key for key in KEYS if key.startswith("logs/"))
    assert len(server.counters.of_kind("list")) - before == 3  # 2304 keys: 3 pages, none twice
    assert client.stats.snapshot()["lists"] == 3


def test_listing_that_is_a_200_error_is_retried(
    server: LocalS3Server, listed_bucket: str, faults: list[Fault]
) -> None:
    """S3 can answer 200 with an <Error> body; botocore retries that, and so must the fast path."""
    client = _client(server, listed_bucket)
    faults.append(Fault(count=1, kind="list", status=200))
    before = len(server.counters.of_kind("list"))
    keys = [info.key for info in client.list_objects("other/")]
    assert keys == ["other/x.log"]
    assert faults[0].count == 0
    assert len(server.counters.of_kind("list")) - before == 2


def test_fast_listing_parse_is_used_for_moto_listings(
    server: LocalS3Server, listed_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_fast_parses(monkeypatch)
    keys = [info.key for info in _client(server, listed_bucket).list_objects("other/")]
    assert keys == ["other/x.log"]
    assert calls == [1], "the fast path fell back to botocore"
