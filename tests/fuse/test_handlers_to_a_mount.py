"""Round trips from ``logging`` to a mount's ``stream``: each handler's output, read as AWS would leave it.

* S3Handler's gzip objects, mounted as they are;
* FirehoseHandler's records: newline-terminated (a plain mount), and without a delimiter
  (``--records json``);
* CloudWatchHandler's events through a subscription filter to Firehose (``--records cwl``);
* CloudWatchHandler's events through an export task (``<task>/<stream>/000000.gz``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from s3logfs.handlers import CloudWatchHandler, FirehoseHandler, S3Handler

from helpers import Mount


def stream_lines(mount: Mount) -> list[str]:
    return (mount.path / "stream").read_text().splitlines()


def test_s3_handler_to_stream(bucket: str, endpoint: dict[str, Any], attach: Any,
                              mount_factory: Callable[..., Mount]) -> None:
    handler = S3Handler(bucket, "app", max_batch_records=40, **endpoint)
    logger = attach(handler)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    for index in range(100):
        logger.warning("request %d served\tin %d ms", index, index % 7)
    assert handler.flush(timeout=60)
    mount = mount_factory(bucket, "app/")
    assert stream_lines(mount) == [f"WARNING {logger.name} request {i} served\tin {i % 7} ms" for i in range(100)]


def test_firehose_handler_to_stream(bucket: str, delivery_stream: str, endpoint: dict[str, Any], attach: Any,
                                    mount_factory: Callable[..., Mount]) -> None:
    handler = FirehoseHandler(delivery_stream, max_batch_records=30, **endpoint)
    logger = attach(handler)
    for index in range(100):
        logger.info("line %d", index)
    assert handler.flush(timeout=60)
    mount = mount_factory(bucket, "fh/")
    # Firehose names its objects by the second and a random id: lines keep their order within an
    # object, not necessarily across objects written in the same second.
    assert sorted(stream_lines(mount)) == sorted(f"line {i}" for i in range(100))


def test_firehose_json_without_delimiter_to_stream(bucket: str, delivery_stream: str, endpoint: dict[str, Any],
                                                   attach: Any, mount_factory: Callable[..., Mount]) -> None:
    handler = FirehoseHandler(delivery_stream, terminator="", max_batch_records=25, **endpoint)
    handler.setFormatter(JsonFormatter())
    logger = attach(handler)
    for index in range(100):
        logger.info("event %d", index)
    assert handler.flush(timeout=60)
    mount = mount_factory(bucket, "fh/", "--records", "json")
    records = [json.loads(line) for line in stream_lines(mount)]
    assert sorted(record["n"] for record in records) == list(range(100))
    assert all(record["message"] == f"event {record['n']}" for record in records)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"message": record.getMessage(), "n": record.args[0]})  # type: ignore[index]


def test_cloudwatch_via_firehose_to_stream(bucket: str, delivery_stream: str, endpoint: dict[str, Any], logs_client: Any,
                                           attach: Any, mount_factory: Callable[..., Mount]) -> None:
    logs_client.create_log_group(logGroupName="subscribed")
    arn = f"arn:aws:firehose:us-east-1:123456789012:deliverystream/{delivery_stream}"
    logs_client.put_subscription_filter(logGroupName="subscribed", filterName="all", filterPattern="",
                                 destinationArn=arn, roleArn="arn:aws:iam::123456789012:role/cwl")
    handler = CloudWatchHandler("subscribed", "app", max_batch_records=40, **endpoint)
    logger = attach(handler)
    for index in range(100):
        logger.info("event %d", index)
    assert handler.flush(timeout=60)
    mount = mount_factory(bucket, "fh/", "--records", "cwl")
    lines = stream_lines(mount)  # each event as "<ISO timestamp> <message>"
    assert sorted(line.split(" ", 1)[1] for line in lines) == sorted(f"event {i}" for i in range(100))
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines)


def test_cloudwatch_export_task_to_stream(bucket: str, endpoint: dict[str, Any], logs_client: Any, attach: Any,
                                          mount_factory: Callable[..., Mount]) -> None:
    handler = CloudWatchHandler("exported", "app", **endpoint)
    logger = attach(handler)
    for index in range(100):
        logger.info("exported %d", index)
    assert handler.flush(timeout=60)
    now = int(time.time() * 1000)
    logs_client.create_export_task(logGroupName="exported", fromTime=now - 3_600_000, to=now + 60_000,
                            destination=bucket, destinationPrefix="exports")
    mount = mount_factory(bucket, "exports/")
    lines = stream_lines(mount)
    assert [line.split(" ", 1)[1] for line in lines] == [f"exported {i}" for i in range(100)]
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines)
