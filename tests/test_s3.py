"""The S3 layer against the local server: listings parsed fast agree with botocore's parser.

The reference is a plain boto3 client (botocore's own parsers); s3logfs's client parses
listings with :mod:`s3logfs.engine.listing_parser` and requests the next page early.
"""

from __future__ import annotations

from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server
from s3logfs.engine.s3 import S3Client, S3Config

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


AWS_LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>my-logs</Name><Prefix>AWSLogs%2F</Prefix>\
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter>%2F</Delimiter><EncodingType>url</EncodingType>\
<IsTruncated>true</IsTruncated><ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>\
<NextContinuationToken>1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5PcROI4wI/EyIJg==</NextContinuationToken>\
<StartAfter>AWSLogs%2Fa</StartAfter>\
<Contents><Key>AWSLogs%2F2026%2F11%2F22%2Fa%26b+c%25.log.gz</Key><LastModified>2026-11-22T00:58:39.000Z</LastModified>\
<ETag>&quot;70ee1738b6b21e2c8a43f3a5ab0eee71&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\
<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType><Size>434234</Size>\
<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>logs</DisplayName></Owner>\
<StorageClass>STANDARD</StorageClass></Contents>\
<Contents><Key>AWSLogs%2F%D0%BA%D0%BB%D1%8E%D1%87</Key><LastModified>2026-11-22T01:00:00.000Z</LastModified>\
<ETag>&quot;9b2cf535f27731c974343645a3985328-3&quot;</ETag><Size>0</Size><StorageClass>GLACIER_IR</StorageClass></Contents>\
<CommonPrefixes><Prefix>AWSLogs%2F123456789012%2F</Prefix></CommonPrefixes></ListBucketResult>"""


def _count_fast_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets an item each time the fast listing parser runs (not botocore's fallback)."""
    from s3logfs.engine import listing_parser as _parsing

    calls: list[int] = []
    original = _parsing.parse_list_v2
    monkeypatch.setattr(_parsing, "parse_list_v2", lambda body: calls.append(1) or original(body))
    return calls


def test_fast_parser_reads_a_real_s3_listing_as_botocore_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body as AWS sends it, with the elements moto leaves out (checksums, owner, tokens, url encoding)."""
    import botocore.parsers
    import botocore.session

    from s3logfs.engine import listing_parser as _parsing

    shape = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape
    response = {"status_code": 200, "headers": {"x-amz-request-id": "R"}, "body": AWS_LISTING}
    reference = botocore.parsers.RestXMLParser(timestamp_parser=_parsing.parse_timestamp).parse(response, shape)
    calls = _count_fast_parses(monkeypatch)
    ours = _parsing.FastRestXMLParser(timestamp_parser=_parsing.parse_timestamp).parse(response, shape)
    assert calls == [1], "the fast path fell back to botocore"
    assert ours == reference
    assert ours["Contents"][0]["ChecksumAlgorithm"] == ["CRC32", "CRC64NVME"]


def test_fast_listing_parse_is_used_for_moto_listings(
    server: LocalS3Server, listed_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_fast_parses(monkeypatch)
    keys = [info.key for info in _client(server, listed_bucket).list_objects("other/")]
    assert keys == ["other/x.log"]
    assert calls == [1], "the fast path fell back to botocore"
