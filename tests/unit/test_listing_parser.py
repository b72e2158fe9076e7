"""The fast ListObjectsV2 parser against botocore's own, on a listing as AWS sends it: no server."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import count_fast_parses

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


def _parse_as_botocore_does(shape: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``AWS_LISTING`` parsed by the fast parser, checked equal to botocore's own parse of it."""
    import botocore.parsers

    from s3logfs.engine import listing_parser as _parsing

    response = {"status_code": 200, "headers": {"x-amz-request-id": "R"}, "body": AWS_LISTING}
    reference = botocore.parsers.RestXMLParser(timestamp_parser=_parsing.parse_timestamp).parse(response, shape)
    calls = count_fast_parses(monkeypatch)
    ours = _parsing.FastRestXMLParser(timestamp_parser=_parsing.parse_timestamp).parse(response, shape)
    assert calls == [1], "the fast path fell back to botocore"
    assert ours == reference
    return ours


def test_fast_parser_reads_a_real_s3_listing_as_botocore_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body as AWS sends it, with the elements moto leaves out (checksums, owner, tokens, url encoding)."""
    import botocore.parsers
    import botocore.session


    shape = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape
    ours = _parse_as_botocore_does(shape, monkeypatch)
    if "ChecksumAlgorithm" in shape.members["Contents"].member.members:  # botocore 1.24 and later
        assert ours["Contents"][0]["ChecksumAlgorithm"] == ["CRC32", "CRC64NVME"]


def test_fast_parser_leaves_out_what_an_older_model_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's S3 model gains members (ChecksumType in 1.36.0): its parser ignores elements the model
    does not have, and so does the fast one. The model here is this botocore's without ChecksumType."""
    import copy

    import botocore.model
    import botocore.parsers
    import botocore.session


    loader = botocore.session.get_session().get_component("data_loader")
    model = copy.deepcopy(loader.load_service_model("s3", "service-2"))
    model["shapes"]["Object"]["members"].pop("ChecksumType", None)
    shape = botocore.model.ServiceModel(model, "s3").operation_model("ListObjectsV2").output_shape
    ours = _parse_as_botocore_does(shape, monkeypatch)
    assert "ChecksumType" not in ours["Contents"][0]
