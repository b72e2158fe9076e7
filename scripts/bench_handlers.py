#!/usr/bin/env python3
"""Benchmark the logging handlers: records per second and CPU seconds per 100k records.

    scripts/bench_handlers.py                 # 100,000 records through each handler, 3 runs each
    scripts/bench_handlers.py --records 20000 --repeat 1

Each handler (S3Handler, FirehoseHandler, CloudWatchHandler, and watchtower's
CloudWatchLogHandler as the usual CloudWatch peer) gets the same records from the same threads,
on one local moto server running in its own process, so that its CPU is not counted. A run is
timed from the first ``logging`` call to a ``flush()`` that returned once every record was
delivered; the CPU is this process's (the application's threads plus the handler's sender).
Every run is checked: the records that arrive are counted, so a fast loss cannot win.
Run it under the project's virtualenv with the ``bench`` extra (``scripts/bench.py`` does this
when asked for ``--only handlers``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
HANDLERS = ("S3Handler", "FirehoseHandler", "CloudWatchHandler", "watchtower")
LINE = "GET /api/v1/items/%d 200 %d ms user=%s agent=Mozilla/5.0 (X11; Linux x86_64) ref=https://example.com/"


@dataclass
class Result:
    handler: str
    records: int
    seconds: float
    cpu_seconds: float
    delivered: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu_seconds * 100_000 / self.records


class Server:
    """``python -m s3logfs.devtools.localserver`` in its own process."""

    def __init__(self) -> None:
        env = dict(os.environ, **CREDENTIALS)
        self.process = subprocess.Popen([sys.executable, "-m", "s3logfs.devtools.localserver"], stdout=subprocess.PIPE,
                                        text=True, env=env, cwd=ROOT)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit("the local S3 server did not start")

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def emit_from_threads(logger: logging.Logger, records: int, threads: int) -> None:
    def work(number: int) -> None:
        for index in range(number, records, threads):
            logger.info(LINE, index, index % 997, f"u{number}")

    workers = [threading.Thread(target=work, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def measure(name: str, handler: logging.Handler, flush: Callable[[], None], records: int, threads: int,
            count: Callable[[], int]) -> Result:
    logger = logging.getLogger(f"bench.{name}.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    started, cpu = time.perf_counter(), time.process_time()
    emit_from_threads(logger, records, threads)
    flush()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    logger.removeHandler(handler)
    handler.close()
    return Result(name, records, seconds, cpu_seconds, count())


def run_one(server: Server, name: str, records: int, threads: int, run: int) -> Result:
    from s3logfs.handlers import CloudWatchHandler, FirehoseHandler, S3Handler

    endpoint = {"endpoint_url": server.url, "region_name": "us-east-1"}
    tag = f"{name.lower()}-{run}"
    if name == "S3Handler":
        s3 = server.client("s3")
        s3.create_bucket(Bucket=f"bench-{tag}")
        handler = S3Handler(f"bench-{tag}", "logs", queue_size=records + 1, **endpoint)
        return measure(name, handler, lambda: handler.flush(), records, threads,
                       lambda: _count_s3_lines(s3, f"bench-{tag}", "logs/"))
    if name == "FirehoseHandler":
        s3 = server.client("s3")
        s3.create_bucket(Bucket=f"bench-{tag}")
        server.client("firehose").create_delivery_stream(
            DeliveryStreamName=tag,
            ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                                "BucketARN": f"arn:aws:s3:::bench-{tag}", "Prefix": "fh/"})
        handler = FirehoseHandler(tag, queue_size=records + 1, **endpoint)
        return measure(name, handler, lambda: handler.flush(), records, threads,
                       lambda: _count_s3_lines(s3, f"bench-{tag}", "fh/"))
    logs = server.client("logs")
    if name == "CloudWatchHandler":
        handler = CloudWatchHandler(tag, "bench", queue_size=records + 1, **endpoint)
        return measure(name, handler, lambda: handler.flush(), records, threads,
                       lambda: _count_events(logs, tag, "bench"))
    import watchtower

    peer = watchtower.CloudWatchLogHandler(log_group_name=tag, log_stream_name="bench", boto3_client=logs,
                                           send_interval=5, max_batch_count=10_000)
    return measure(name, peer, peer.flush, records, threads, lambda: _count_events(logs, tag, "bench"))


def _count_s3_lines(s3: Any, bucket: str, prefix: str) -> int:
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            total += (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).count(b"\n")
    return total


def _count_events(logs: Any, group: str, stream: str) -> int:
    total, token = 0, None
    while True:
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True,
                                   **({"nextToken": token} if token else {}))
        total += len(page["events"])
        if not page["events"] or page["nextForwardToken"] == token:
            return total
        token = page["nextForwardToken"]


def table(results: list[Result]) -> str:
    lines = ["| handler | records | records/s | CPU s per 100k | delivered |", "|---|---|---|---|---|"]
    for name in HANDLERS:
        runs = [result for result in results if result.handler == name]
        if not runs:
            continue
        rate = statistics.median(result.records_per_second for result in runs)
        cpu = statistics.median(result.cpu_per_100k for result in runs)
        delivered = "all" if all(r.delivered == r.records for r in runs) else \
            f"{min(r.delivered for r in runs)} of {runs[0].records}"
        lines.append(f"| {name} | {runs[0].records:,} | {rate:,.0f} | {cpu:.2f} | {delivered} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_handlers.py", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per run (100000)")
    parser.add_argument("--threads", type=int, default=8, help="application threads logging them (8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per handler; medians are reported (3)")
    parser.add_argument("--handlers", default=",".join(HANDLERS), help=f"subset of {','.join(HANDLERS)}")
    parser.add_argument("--json", default="bench-results-handlers.json", help="where to write every run")
    args = parser.parse_args(argv)
    os.environ.update(CREDENTIALS)
    server = Server()
    results: list[Result] = []
    try:
        for run in range(args.repeat):
            for name in args.handlers.split(","):
                result = run_one(server, name, args.records, args.threads, run)
                sys.stderr.write(f"  {name:<18} {result.records_per_second:>10,.0f} records/s "
                                 f"{result.cpu_per_100k:6.2f} CPU s/100k  delivered {result.delivered}\n")
                results.append(result)
    finally:
        server.stop()
    Path(args.json).write_text(json.dumps([dict(asdict(r), records_per_second=r.records_per_second,
                                                cpu_per_100k=r.cpu_per_100k) for r in results], indent=2))
    print(table(results))
    print("(a peer's lost records are its result; a loss by one of ours fails the run)")
    return 0 if all(r.delivered == r.records for r in results if r.handler != "watchtower") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
