"""The logging handlers (README, "Shipping logs") against moto over HTTP: S3, Firehose and CloudWatch Logs.

Faults come from two places: the server's :class:`Fault` list (5xx on S3 requests, or on any
POST, which is how Firehose and CloudWatch Logs calls travel), and :class:`Wiretap`, a WSGI
layer put between the counting middleware and moto for one test, which records every JSON API
call, answers chosen Firehose records with an ``ErrorCode``, throttles chosen calls, and can
stall requests behind a gate. No test asserts a duration; waits are bounded.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import Fault, LocalS3Server
from s3logfs.handlers import CloudWatchHandler, FirehoseHandler, HandlerCounters, S3Handler
from s3logfs.handlers._s3 import MAX_PARTS, MIN_PART, part_size_for, upload
from s3logfs.handlers._split import split_utf8

from helpers import REGION, wait_for

THREADS = 8
PER_THREAD = 12_500


# ----------------------------------------------------------------------------- the wiretap


class Wiretap:
    """WSGI layer in front of moto: records JSON API calls, injects partial failures, throttles, stalls."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_once: Callable[[bytes], bool] = lambda data: False
        self.failed: set[bytes] = set()
        self.throttle: dict[str, int] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.stall: Callable[[dict[str, Any]], bool] = lambda environ: True
        self.waiting = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not self.gate.is_set() and self.stall(environ):
            with self._lock:
                self.waiting += 1
            self.gate.wait(60)
            with self._lock:
                self.waiting -= 1
        target = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        if not target:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            if self.throttle.get(target, 0) > 0:
                self.throttle[target] -= 1
                return _json_answer(start_response, "400 Bad Request",
                                    {"__type": "ThrottlingException", "message": "Rate exceeded"})
        payload = json.loads(body)
        failing: list[int] = []
        if target == "PutRecordBatch":
            payload, failing = self._fail_some(payload)
        forwarded = json.dumps(payload).encode()
        environ["wsgi.input"] = io.BytesIO(forwarded)
        environ["CONTENT_LENGTH"] = str(len(forwarded))
        if failing:
            answer = self._answer_with_failures(environ, start_response, failing)
        else:
            answer = self._forward(environ, start_response)
        if answer[0]:
            with self._lock:
                self.calls.append((target, payload))
        return answer[1]

    def _forward(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> tuple[bool, list[bytes]]:
        started: list[Any] = []
        body = b"".join(self.app(environ, lambda *args: started.append(args)))
        start_response(*started[0])
        return started[0][0].startswith("2"), [body]

    def _fail_some(self, payload: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        kept, failing = [], []
        for index, record in enumerate(payload["Records"]):
            data = base64.b64decode(record["Data"])
            with self._lock:
                fail = data not in self.failed and self.fail_once(data)
                if fail:
                    self.failed.add(data)
            if fail:
                failing.append(index)
            else:
                kept.append(record)
        return dict(payload, Records=kept), failing

    def _answer_with_failures(self, environ: dict[str, Any], start_response: Callable[..., Any],
                              failing: list[int]) -> tuple[bool, list[bytes]]:
        started: list[Any] = []
        answer = json.loads(b"".join(self.app(environ, lambda *args: started.append(args))))
        accepted = iter(answer["RequestResponses"])
        total = len(answer["RequestResponses"]) + len(failing)
        answer["RequestResponses"] = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "injected"} if index in failing
            else next(accepted) for index in range(total)
        ]
        answer["FailedPutCount"] = len(failing)
        return True, _json_answer(start_response, "200 OK", answer)

    def records(self, target: str) -> list[list[Any]]:
        """What each successful call of ``target`` carried to moto: Firehose data, or log messages."""
        out = []
        for name, payload in list(self.calls):
            if name == target == "PutRecordBatch":
                out.append([base64.b64decode(record["Data"]) for record in payload["Records"]])
            elif name == target == "PutLogEvents":
                out.append([event["message"] for event in payload["logEvents"]])
        return out


def _json_answer(start_response: Callable[..., Any], status: str, answer: dict[str, Any]) -> list[bytes]:
    body = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def wiretap(server: LocalS3Server) -> Iterator[Wiretap]:
    original = server.middleware.app
    tap = Wiretap(original)
    server.middleware.app = tap
    yield tap
    tap.gate.set()
    server.middleware.app = original


def objects(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, bytes]]:
    """Every object under ``prefix`` in key order, decompressed."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    out = []
    for key in sorted(keys):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        out.append((key, gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body))
    return out


def lines_of(contents: list[tuple[str, bytes]]) -> list[str]:
    return [line for _, body in contents for line in body.decode().splitlines()]


def log_events(logs: Any, group: str, stream: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True,
                                   **({"nextToken": token} if token else {}))
        events += page["events"]
        if not page["events"] or page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]


def log_from_threads(logger: logging.Logger, threads: int = THREADS, per_thread: int = PER_THREAD) -> None:
    def work(number: int) -> None:
        for index in range(per_thread):
            logger.info("t%d-%06d some payload to make the record look like a log line", number, index)

    workers = [threading.Thread(target=work, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def check_exactly_once_in_order(lines: list[str], threads: int = THREADS, per_thread: int = PER_THREAD) -> None:
    """Every record once, by count and content, and each thread's records in their order."""
    assert len(lines) == threads * per_thread
    seen: dict[str, list[int]] = {}
    for line in lines:
        head, rest = line.split(" ", 1)
        name, number = head.split("-")
        assert rest == "some payload to make the record look like a log line"
        seen.setdefault(name, []).append(int(number))
    assert seen == {f"t{number}": list(range(per_thread)) for number in range(threads)}


def record_at(message: str, created: float, name: str = "test.handlers") -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    record.created = created
    return record


def dead_endpoint() -> str:
    """A URL where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------- the package


def test_import_loads_neither_fuse_nor_the_engine_nor_boto3() -> None:
    code = (
        "import sys, threading, s3logfs.handlers\n"
        "heavy = [m for m in ('mfusepy', 's3logfs.engine.catalog', 's3logfs.engine.stream', 's3logfs.fs.daemon', 's3logfs.engine.s3',\n"
        "         's3logfs.fs.fuse_ops', 's3logfs.engine', 's3logfs.logstream', 'boto3', 'botocore')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert threading.active_count() == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_all_is_honest() -> None:
    import s3logfs.handlers as package

    assert set(package.__all__) == {"S3Handler", "FirehoseHandler", "CloudWatchHandler", "HandlerCounters"}
    assert all(hasattr(package, name) for name in package.__all__)


def test_split_utf8_cuts_at_newlines_then_at_characters() -> None:
    assert split_utf8(b"aaaa\nbbbb\ncc", 9) == [b"aaaa\nbbbb", b"cc"]  # the last newline that fits
    assert split_utf8(b"aaaa\nbbbbbbbbbb", 9) == [b"aaaa", b"bbbbbbbbb", b"b"]
    assert split_utf8(b"abcdefgh", 8) == [b"abcdefgh"]
    pieces = split_utf8(("é" * 10).encode(), 5)
    assert [len(piece) for piece in pieces] == [4] * 5  # never inside a 2-byte character
    assert b"".join(pieces).decode() == "é" * 10


# ----------------------------------------------------------------------------- S3Handler


def test_s3_exactly_once_from_8_threads(s3: Any, bucket: str, endpoint: dict[str, Any], attach: Any) -> None:
    handler = S3Handler(bucket, "app", max_batch_records=20_000, queue_size=200_000, **endpoint)
    logger = attach(handler)
    log_from_threads(logger)
    assert handler.flush(timeout=120)
    contents = objects(s3, bucket, "app/")
    assert len(contents) >= 5
    assert all(key.endswith(".log.gz") for key, _ in contents)
    check_exactly_once_in_order(lines_of(contents))
    assert handler.counters.records_sent == THREADS * PER_THREAD
    assert handler.counters.dropped == 0


def test_s3_keys_are_time_sorted_and_unique(s3: Any, bucket: str, endpoint: dict[str, Any], attach: Any) -> None:
    first = S3Handler(bucket, "k/", max_batch_records=1, **endpoint)
    second = S3Handler(bucket, "k", max_batch_records=1, **endpoint)  # same host, same pid
    for handler in (first, second):
        logger = attach(handler)
        for index in range(3):
            logger.info("%d", index)
        assert handler.flush(timeout=30)
    keys = [key for key, _ in objects(s3, bucket, "k/")]
    assert len(keys) == 6
    parts = [key.split("/") for key in keys]
    assert all(len(part) == 6 and part[1].isdigit() and len(part[4]) == 2 for part in parts)
    host = socket.gethostname().replace("-", "_")
    assert all(part[5].startswith(f"{host}-{os.getpid()}-") for part in parts)
    tokens = {part[5].rsplit("-", 1)[1] for part in parts}
    assert len(tokens) == 2  # two handlers in one process: two tokens, no collision


def test_s3_batch_limits_at_and_over(s3: Any, bucket: str, endpoint: dict[str, Any], attach: Any) -> None:
    by_count = attach(S3Handler(bucket, "count", max_batch_records=10, flush_interval=3600, **endpoint))
    for index in range(10):
        by_count.info("r%02d", index)
    by_count.handlers[0].flush(timeout=30)
    assert [len(body.splitlines()) for _, body in objects(s3, bucket, "count/")] == [10]
    for index in range(11):
        by_count.info("s%02d", index)
    by_count.handlers[0].flush(timeout=30)
    assert sorted(len(body.splitlines()) for _, body in objects(s3, bucket, "count/")) == [1, 10, 10]

    by_bytes = attach(S3Handler(bucket, "bytes", max_batch_bytes=100, flush_interval=3600, **endpoint))
    for index in range(3):
        by_bytes.info("x" * 47 + "%02d", index)  # 50 bytes with the newline: two fill 100 exactly
    by_bytes.handlers[0].flush(timeout=30)
    assert [len(body) for _, body in objects(s3, bucket, "bytes/")] == [100, 50]


def test_s3_multipart_threshold_at_and_over(s3: Any, bucket: str, server: LocalS3Server) -> None:
    client = server.client()
    exact = os.urandom(MIN_PART)
    server.middleware.reset()
    assert upload(client, bucket, "exact", exact) == 0
    assert [r.kind for r in server.iter_requests()] == ["put"]
    over = os.urandom(MIN_PART + 1)
    server.middleware.reset()
    assert upload(client, bucket, "over", over) == 2
    assert [r.kind for r in server.iter_requests()] == ["post", "put", "put", "post"]
    assert s3.get_object(Bucket=bucket, Key="exact")["Body"].read() == exact
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == over
    assert part_size_for(MAX_PARTS * MIN_PART) == MIN_PART
    assert part_size_for(MAX_PARTS * MIN_PART + 1) * MAX_PARTS >= MAX_PARTS * MIN_PART + 1


def test_s3_failed_multipart_is_aborted_and_retried(s3: Any, bucket: str, endpoint: dict[str, Any],
                                                      faults: list[Fault], attach: Any) -> None:
    faults.append(Fault(count=1, kind="put", status=500, key_contains="big/", skip=1))  # the second part
    handler = S3Handler(bucket, "big", flush_interval=3600, **endpoint)
    logger = attach(handler)
    text = base64.b64encode(random.Random(1).randbytes(6 * 1024 * 1024)).decode()  # gzips above 5 MiB
    for start in range(0, len(text), 60_000):
        logger.info(text[start:start + 60_000])
    assert handler.flush(timeout=60)
    assert handler.counters.retries == 1
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    [(_, body)] = objects(s3, bucket, "big/")
    assert body.decode().replace("\n", "") == text


def test_s3_retries_5xx_keep_the_batch(s3: Any, bucket: str, endpoint: dict[str, Any], faults: list[Fault],
                                       attach: Any) -> None:
    faults.append(Fault(count=2, kind="put", status=500, key_contains="retry/"))
    faults.append(Fault(count=2, kind="put", status=503, key_contains="retry/"))
    handler = S3Handler(bucket, "retry", **endpoint)
    logger = attach(handler)
    for index in range(100):
        logger.info("line %d", index)
    assert handler.flush(timeout=60)
    assert handler.counters.retries == 4
    assert lines_of(objects(s3, bucket, "retry/")) == [f"line {index}" for index in range(100)]


def test_s3_spill_when_unreachable_then_delivered_by_the_same_handler(
        s3: Any, bucket: str, endpoint: dict[str, Any], faults: list[Fault], attach: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    faults.append(Fault(count=10_000, kind="put", status=503, key_contains="spill/"))
    handler = S3Handler(bucket, "spill", spill_dir=tmp_path / "spill", spill_after=2, flush_interval=3600,
                        **endpoint)
    logger = attach(handler)
    for index in range(20):
        logger.info("spilled %d", index)
    assert handler.flush(timeout=60)
    assert handler.counters.spilled == 1
    assert len(list((tmp_path / "spill").glob("*.spill"))) == 1
    assert "spilled" in capsys.readouterr().err
    faults.clear()  # the server is back
    wait_for(lambda: handler.counters.spill_delivered == 1, timeout=30)
    assert list((tmp_path / "spill").glob("*.spill")) == []
    assert lines_of(objects(s3, bucket, "spill/")) == [f"spilled {index}" for index in range(20)]


SPILL_SCRIPT = """
import logging, sys
from s3logfs.handlers import S3Handler
handler = S3Handler(sys.argv[1], "restart", spill_dir=sys.argv[2], spill_after=1, endpoint_url=sys.argv[3],
                    region_name="us-east-1", flush_interval=3600)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
for index in range(int(sys.argv[4])):
    logging.info("from %s %d", sys.argv[5], index)
"""


def test_s3_spill_delivered_by_a_new_process(s3: Any, bucket: str, server: LocalS3Server, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    down = subprocess.run([sys.executable, "-c", SPILL_SCRIPT, bucket, str(spill), dead_endpoint(), "30", "first"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert down.returncode == 0, down.stderr
    assert "spilled" in down.stderr
    assert len(list(spill.glob("*.spill"))) == 1
    assert objects(s3, bucket, "restart/") == []
    up = subprocess.run([sys.executable, "-c", SPILL_SCRIPT, bucket, str(spill), server.endpoint_url, "0", "second"],
                        capture_output=True, text=True, timeout=120, check=False)
    assert up.returncode == 0, up.stderr
    assert list(spill.glob("*.spill")) == []
    assert lines_of(objects(s3, bucket, "restart/")) == [f"from first {index}" for index in range(30)]


# ----------------------------------------------------------------------------- the core, through S3Handler


def test_flush_returns_only_after_delivery(s3: Any, bucket: str, endpoint: dict[str, Any], attach: Any) -> None:
    handler = S3Handler(bucket, "flush", flush_interval=3600, **endpoint)
    assert handler.flush(timeout=0)  # nothing queued
    logger = attach(handler)
    for round_number in range(3):
        logger.info("round %d", round_number)
        assert handler.flush()
        assert lines_of(objects(s3, bucket, "flush/"))[-1] == f"round {round_number}"


def test_close_delivers_everything_and_later_records_are_counted(
        s3: Any, bucket: str, endpoint: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    handler = S3Handler(bucket, "close", flush_interval=3600, **endpoint)
    logger = logging.getLogger("test.handlers.close")
    logger.propagate = False
    logger.addHandler(handler)
    for index in range(1000):
        logger.warning("closing %d", index)
    handler.close()
    assert len(lines_of(objects(s3, bucket, "close/"))) == 1000
    logger.warning("too late")
    logger.removeHandler(handler)
    assert handler.counters.dropped_overflow == 1
    assert "after close()" in capsys.readouterr().err


def test_age_flush_delivers_a_quiet_application(s3: Any, bucket: str, endpoint: dict[str, Any], attach: Any) -> None:
    logger = attach(S3Handler(bucket, "quiet", flush_interval=0.2, **endpoint))
    logger.info("only one")
    wait_for(lambda: objects(s3, bucket, "quiet/"), timeout=30)  # no flush(), no further record


def test_close_times_out_and_reports_what_it_could_not_deliver(capsys: pytest.CaptureFixture[str]) -> None:
    handler = FirehoseHandler("nowhere", endpoint_url=dead_endpoint(), region_name=REGION, flush_interval=3600)
    logger = logging.getLogger("test.handlers.dead")
    logger.propagate = False
    logger.addHandler(handler)
    for index in range(50):
        logger.error("lost %d", index)
    logger.removeHandler(handler)
    handler.close(timeout=1)
    assert handler.counters.dropped_undeliverable == 50
    assert handler.counters.retries >= 1
    assert "not delivered" in capsys.readouterr().err


def test_emit_returns_while_the_server_is_stalled(s3: Any, bucket: str, endpoint: dict[str, Any],
                                                   wiretap: Wiretap, attach: Any) -> None:
    wiretap.stall = lambda environ: environ["REQUEST_METHOD"] == "PUT"
    wiretap.gate.clear()
    handler = S3Handler(bucket, "stall", flush_interval=0.05, **endpoint)
    logger = attach(handler)
    logger.info("first")
    wait_for(lambda: wiretap.waiting == 1, timeout=30)  # the sender is inside a request that hangs
    for index in range(50):
        logger.info("while stalled %d", index)  # each call returns: we get to the next line
    assert not handler.flush(timeout=0.2)  # nothing can have been delivered behind the gate
    wiretap.gate.set()
    assert handler.flush(timeout=60)
    assert lines_of(objects(s3, bucket, "stall/")) == ["first"] + [f"while stalled {i}" for i in range(50)]


def test_overflow_is_counted_and_reported(s3: Any, bucket: str, endpoint: dict[str, Any], wiretap: Wiretap,
                                          attach: Any, capsys: pytest.CaptureFixture[str]) -> None:
    wiretap.stall = lambda environ: environ["REQUEST_METHOD"] == "PUT"
    wiretap.gate.clear()
    handler = S3Handler(bucket, "overflow", flush_interval=0.05, queue_size=10, block_timeout=0.05, **endpoint)
    logger = attach(handler)
    logger.info("in flight")
    wait_for(lambda: wiretap.waiting == 1, timeout=30)
    for index in range(100):
        logger.info("queued %d", index)
    assert handler.counters.dropped_overflow == 90
    assert "record(s) dropped: the queue of 10 stayed full" in capsys.readouterr().err
    wiretap.gate.set()
    assert handler.flush(timeout=60)
    assert lines_of(objects(s3, bucket, "overflow/")) == ["in flight"] + [f"queued {i}" for i in range(10)]


@pytest.mark.timeout(120)
def test_no_recursion_on_the_root_logger_at_debug(s3: Any, bucket: str, endpoint: dict[str, Any],
                                                  delivery_stream: str, logs_client: Any) -> None:
    root = logging.getLogger()
    saved = root.level, logging.getLogger("botocore").level
    s3_handler = S3Handler(bucket, "root", flush_interval=0.1, **endpoint)
    cw_handler = CloudWatchHandler("root-group", "root-stream", flush_interval=0.1, **endpoint)
    fh_handler = FirehoseHandler(delivery_stream, flush_interval=0.1, **endpoint)
    handlers = (s3_handler, cw_handler, fh_handler)
    for handler in handlers:
        # moto runs in this process: its threads' records are not the point, and shipping them would
        # loop through the server. The senders' own records must be stopped by the guard, not here.
        handler.addFilter(lambda record: record.threadName == "MainThread" or record.threadName.startswith("s3logfs"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    try:
        for index in range(200):
            logging.getLogger("app").debug("app %d", index)
        assert all(handler.flush(timeout=60) for handler in handlers)
        sent = [handler.counters.batches_sent for handler in handlers]
        # The positive control: one more record, delivered by the age flush (no flush() call), so each
        # sender has gone round again. What a feedback loop queued before it goes out with it or
        # earlier, and what its own delivery logs is queued before the flush() below returns.
        logging.getLogger("app").debug("app %d", 200)
        wait_for(lambda: all(handler.counters.batches_sent > count for handler, count in zip(handlers, sent)),
                 timeout=30)
        assert all(handler.flush(timeout=60) for handler in handlers)
        assert [handler.counters.batches_sent for handler in handlers] == [count + 1 for count in sent]
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close(timeout=5)
        root.setLevel(saved[0])
        logging.getLogger("botocore").setLevel(saved[1])
    assert lines_of(objects(s3, bucket, "root/")) == [f"app {index}" for index in range(201)]
    assert [event["message"] for event in log_events(logs_client, "root-group", "root-stream")] == \
        [f"app {index}" for index in range(201)]
    assert sorted(lines_of(objects(s3, bucket, "fh/"))) == sorted(f"app {index}" for index in range(201))


@pytest.mark.timeout(120)
def test_guard_is_by_thread_not_by_logger_name(s3: Any, bucket: str, server: LocalS3Server) -> None:
    """A hook in the handler's own client logs under an application logger name on every request."""
    def client() -> Any:
        made = server.client()
        made.meta.events.register("before-send.s3.PutObject",
                                  lambda **_: logging.getLogger("app.hook").warning("sending a batch"))
        return made

    root = logging.getLogger()
    handler = S3Handler(bucket, "hook", client=client, flush_interval=0.05)
    root.addHandler(handler)
    try:
        for index in range(10):
            logging.getLogger("app").warning("app %d", index)
        assert handler.flush(timeout=60)
        sent = handler.counters.batches_sent
        # The positive control: one more record, delivered by the age flush. A loop's "sending a
        # batch" records queued before it would go out with it (and show in the objects); the one
        # its own delivery would log is queued before the flush() below returns.
        logging.getLogger("app").warning("app %d", 10)
        wait_for(lambda: handler.counters.batches_sent > sent, timeout=30)
        assert handler.flush(timeout=60)
        assert handler.counters.batches_sent == sent + 1
    finally:
        root.removeHandler(handler)
        handler.close(timeout=5)
    assert lines_of(objects(s3, bucket, "hook/")) == [f"app {index}" for index in range(11)]


FORK_SCRIPT = """
import logging, os, sys
import boto3
from s3logfs.handlers import S3Handler
if sys.argv[3] == "client":  # a ready client: the child must get its own, like it
    made = boto3.client("s3", endpoint_url=sys.argv[2], region_name="us-east-1")
    handler = S3Handler(sys.argv[1], "fork", client=made, flush_interval=3600)
else:
    handler = S3Handler(sys.argv[1], "fork", endpoint_url=sys.argv[2], region_name="us-east-1", flush_interval=3600)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
for index in range(100):
    logging.info("parent before %d", index)
pid = os.fork()
if pid == 0:
    for index in range(100):
        logging.info("child %d", index)
    sys.exit(0)  # no flush(), no close(): logging.shutdown at exit delivers
os.waitpid(pid, 0)
for index in range(100):
    logging.info("parent after %d", index)
"""


@pytest.mark.parametrize("given", ["endpoint", "client"])
def test_fork_child_delivers_and_exit_delivers(s3: Any, bucket: str, server: LocalS3Server, given: str) -> None:
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT, bucket, server.endpoint_url, given],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    contents = objects(s3, bucket, "fork/")
    lines = lines_of(contents)
    expected = ([f"parent before {i}" for i in range(100)] + [f"child {i}" for i in range(100)]
                + [f"parent after {i}" for i in range(100)])
    assert sorted(lines) == sorted(expected)
    pids = {key.rsplit("/", 1)[1].split("-")[1] for key, _ in contents}
    assert len(pids) == 2
    child = [body for key, body in contents if b"child" in body]
    assert all(b"parent" not in body for body in child)


# ----------------------------------------------------------------------------- FirehoseHandler


@pytest.mark.slow  # 100,000 records
def test_firehose_exactly_once_from_8_threads(s3: Any, bucket: str, delivery_stream: str, endpoint: dict[str, Any],
                                              wiretap: Wiretap, attach: Any) -> None:
    handler = FirehoseHandler(delivery_stream, queue_size=200_000, **endpoint)
    log_from_threads(attach(handler))
    assert handler.flush(timeout=120)
    sent = [record.decode() for call in wiretap.records("PutRecordBatch") for record in call]
    assert all(record.endswith("\n") for record in sent)
    check_exactly_once_in_order([record[:-1] for record in sent])
    stored = lines_of(objects(s3, bucket, "fh/"))
    assert sorted(stored) == sorted(record[:-1] for record in sent)
    assert handler.counters.records_sent == THREADS * PER_THREAD
    assert max(len(call) for call in wiretap.records("PutRecordBatch")) == 500


def test_firehose_limits_at_and_over(delivery_stream: str, endpoint: dict[str, Any], wiretap: Wiretap,
                                     attach: Any) -> None:
    handler = FirehoseHandler(delivery_stream, flush_interval=3600, **endpoint)
    logger = attach(handler)

    def calls_for(messages: list[str]) -> list[list[bytes]]:
        wiretap.calls.clear()
        for message in messages:
            logger.info("%s", message)
        assert handler.flush(timeout=60)
        return wiretap.records("PutRecordBatch")

    assert [len(call) for call in calls_for([f"{i}" for i in range(500)])] == [500]
    assert [len(call) for call in calls_for([f"{i}" for i in range(501)])] == [500, 1]
    record = 1_000 * 1024
    four_mib = ["a" * (record - 1)] * 4 + ["b" * (4 * 1024 * 1024 - 4 * record - 1)]
    assert [sum(map(len, call)) for call in calls_for(four_mib)] == [4 * 1024 * 1024]
    four_mib_and_one = four_mib[:-1] + ["b" * (4 * 1024 * 1024 - 4 * record)]
    assert [len(call) for call in calls_for(four_mib_and_one)] == [4, 1]
    assert calls_for(["c" * (record - 1)]) == [[b"c" * (record - 1) + b"\n"]]
    lines = "x" * 600_000 + "\n" + "y" * 600_000
    assert calls_for([lines]) == [[b"x" * 600_000 + b"\n", b"y" * 600_000 + b"\n"]]
    long_line = "é" * record  # 2 bytes a character: cut on a character boundary
    [pieces] = calls_for([long_line])
    assert all(len(piece) <= record and piece.endswith(b"\n") for piece in pieces)
    assert b"".join(piece[:-1] for piece in pieces).decode() == long_line
    assert handler.counters.split == 2
    assert handler.counters.dropped == 0


def test_firehose_rejects_oversize_when_asked(delivery_stream: str, endpoint: dict[str, Any], wiretap: Wiretap,
                                              attach: Any, capsys: pytest.CaptureFixture[str]) -> None:
    handler = FirehoseHandler(delivery_stream, oversize="reject", flush_interval=3600, **endpoint)
    logger = attach(handler)
    logger.info("%s", "z" * (1_000 * 1024))  # 1,024,001 bytes with the newline
    logger.info("small")
    assert handler.flush(timeout=60)
    assert handler.counters.rejected == 1
    assert wiretap.records("PutRecordBatch") == [[b"small\n"]]
    assert "rejected" in capsys.readouterr().err


def test_firehose_resends_only_the_failed_records(s3: Any, bucket: str, delivery_stream: str,
                                                  endpoint: dict[str, Any], wiretap: Wiretap, attach: Any) -> None:
    wiretap.fail_once = lambda data: data.startswith(b"fail")
    handler = FirehoseHandler(delivery_stream, flush_interval=3600, **endpoint)
    logger = attach(handler)
    messages = [f"{'fail' if index % 7 == 3 else 'ok'} {index}" for index in range(100)]
    for message in messages:
        logger.info(message)
    assert handler.flush(timeout=60)
    calls = wiretap.records("PutRecordBatch")
    failed = [f"{message}\n".encode() for message in messages if message.startswith("fail")]
    assert len(calls) == 2
    assert calls[1] == failed  # exactly those, in their order
    assert handler.counters.retries == 1
    assert sorted(lines_of(objects(s3, bucket, "fh/"))) == sorted(messages)


def test_firehose_retries_throttling_and_5xx(s3: Any, bucket: str, delivery_stream: str, endpoint: dict[str, Any],
                                             wiretap: Wiretap, faults: list[Fault], attach: Any) -> None:
    wiretap.throttle["PutRecordBatch"] = 2
    faults.append(Fault(count=2, kind="post", status=503))
    handler = FirehoseHandler(delivery_stream, flush_interval=3600, **endpoint)
    logger = attach(handler)
    for index in range(50):
        logger.info("retried %d", index)
    assert handler.flush(timeout=60)
    assert handler.counters.retries == 4
    assert sorted(lines_of(objects(s3, bucket, "fh/"))) == sorted(f"retried {i}" for i in range(50))


# ----------------------------------------------------------------------------- CloudWatchHandler


def test_cloudwatch_exactly_once_from_8_threads(logs_client: Any, endpoint: dict[str, Any], attach: Any) -> None:
    handler = CloudWatchHandler("exact", queue_size=200_000, **endpoint)
    assert handler.log_stream == f"{socket.gethostname()}-{os.getpid()}"
    log_from_threads(attach(handler))
    assert handler.flush(timeout=120)
    events = log_events(logs_client, "exact", handler.log_stream)
    check_exactly_once_in_order([event["message"] for event in events])
    assert handler.counters.records_sent == THREADS * PER_THREAD


def test_cloudwatch_limits_at_and_over(endpoint: dict[str, Any], wiretap: Wiretap, attach: Any) -> None:
    handler = CloudWatchHandler("limits", "s", flush_interval=3600, queue_size=20_000, **endpoint)
    attach(handler)
    now = float(int(time.time()))  # whole seconds: exact milliseconds

    def calls_for(records: list[logging.LogRecord]) -> list[list[str]]:
        wiretap.calls.clear()
        for record in records:
            handler.handle(record)
        assert handler.flush(timeout=60)
        return wiretap.records("PutLogEvents")

    assert [len(call) for call in calls_for([record_at("e", now)] * 10_000)] == [10_000]
    assert [len(call) for call in calls_for([record_at("e", now)] * 10_001)] == [10_000, 1]
    # 1,048,576 bytes: 4 events of 26 + 262,118 bytes, the text in 2-byte characters
    exact = ["é" * 131_059] * 4
    assert [len(call) for call in calls_for([record_at(text, now) for text in exact])] == [4]
    over = exact[:3] + ["é" * 131_059 + "x"]
    assert [len(call) for call in calls_for([record_at(text, now) for text in over])] == [3, 1]
    assert calls_for([record_at("m" * 1_048_550, now)]) == [["m" * 1_048_550]]
    split = calls_for([record_at("m" * 1_048_551, now)])
    assert [message for call in split for message in call] == ["m" * 1_048_550, "m"]
    day = 24 * 3600
    assert [len(call) for call in calls_for([record_at("a", now - day), record_at("b", now)])] == [2]
    assert [len(call) for call in calls_for([record_at("a", now - day - 0.002), record_at("b", now)])] == [1, 1]
    assert calls_for([record_at("later", now), record_at("earlier", now - 60)]) == [["earlier", "later"]]
    assert handler.counters.dropped == 0


def test_cloudwatch_counts_and_reports_rejected_events(logs_client: Any, endpoint: dict[str, Any], attach: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    handler = CloudWatchHandler("rejects", "s", flush_interval=3600, **endpoint)
    attach(handler)
    now = time.time()
    for record in (record_at("old", now - 15 * 24 * 3600), record_at("fine", now), record_at("new", now + 3 * 3600)):
        handler.handle(record)
    handler.handle(record_at("", now))
    assert handler.flush(timeout=60)
    assert handler.counters.rejected == 3
    assert handler.counters.records_sent == 1
    assert [event["message"] for event in log_events(logs_client, "rejects", "s")] == ["fine"]
    err = capsys.readouterr().err
    assert "rejected by CloudWatch Logs" in err and "empty message" in err


def test_cloudwatch_creates_group_and_stream_again_after_deletion(logs_client: Any, endpoint: dict[str, Any],
                                                                  attach: Any) -> None:
    handler = CloudWatchHandler("recreated", "s", flush_interval=3600, **endpoint)
    logger = attach(handler)
    logger.info("before")
    assert handler.flush(timeout=60)
    logs_client.delete_log_group(logGroupName="recreated")
    logger.info("after")
    assert handler.flush(timeout=60)
    assert [event["message"] for event in log_events(logs_client, "recreated", "s")] == ["after"]
    logs_client.delete_log_stream(logGroupName="recreated", logStreamName="s")
    logger.info("again")
    assert handler.flush(timeout=60)
    assert [event["message"] for event in log_events(logs_client, "recreated", "s")] == ["again"]
    assert handler.counters.dropped == 0


def test_cloudwatch_retries_throttling_and_5xx(logs_client: Any, endpoint: dict[str, Any], wiretap: Wiretap,
                                               faults: list[Fault], attach: Any) -> None:
    wiretap.throttle["PutLogEvents"] = 2
    faults.append(Fault(count=1, kind="post", status=500))
    handler = CloudWatchHandler("throttled", "s", flush_interval=3600, **endpoint)
    logger = attach(handler)
    for index in range(30):
        logger.info("kept %d", index)
    assert handler.flush(timeout=60)
    assert handler.counters.retries == 3
    assert [event["message"] for event in log_events(logs_client, "throttled", "s")] == [f"kept {i}" for i in range(30)]


def test_counters_are_plain_numbers() -> None:
    counters = HandlerCounters(rejected=1, dropped_overflow=2)
    assert counters.dropped == 3
    assert counters.as_dict()["rejected"] == 1
