#!/usr/bin/env python3
"""How honest ``s3logfs cat --progress`` is: each time left it prints, against the real time left.

    .venv/bin/python scripts/progress_eta.py

It serves 120 gzip objects of ALB lines (sizes vary fourfold) from a local S3 server with 60 ms
per request, runs ``cat --progress`` with stderr on a pseudo-terminal (the line shows only on a
terminal), and reports how many estimates printed after the first 20% are within 2x of the time
that really remained.
"""

from __future__ import annotations

import gzip
import os
import pty
import random
import re
import subprocess
import sys
import tempfile
import time

from s3logfs.devtools.localserver import LocalS3Server

LINE = (b'h2 2026-12-04T13:26:28.515395Z app/my-alb/50dc6c495c0c9188 185.89.28.186:40215 10.0.2.54:8080 0.000 '
        b'0.082 0.000 404 404 295 440 "GET https://www.example.com:443/%d HTTP/2.0" "Mozilla/5.0" - -\n')
ESTIMATE = re.compile(r"([\d.]+) MB, .*about (\d+) MB in all, (\d+) s left")


def _seed(server: LocalS3Server) -> None:
    s3 = server.client()
    s3.create_bucket(Bucket="eta-bucket")
    rng = random.Random(5)
    for number in range(120):
        body = b"".join(LINE % rng.randrange(10**6) for _ in range(rng.randrange(4000, 16000)))
        s3.put_object(Bucket="eta-bucket", Key=f"logs/{number:03d}.log.gz", Body=gzip.compress(body, 6))


def _estimates(server: LocalS3Server) -> tuple[list[tuple[float, float, float, float]], float]:
    """(seconds in, MB done, MB in all, seconds left) for each estimate printed, and the run's length."""
    master, slave = pty.openpty()
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "s3logfs", "cat", "eta-bucket/logs/", "--progress",
                                "--endpoint-url", server.endpoint_url, "--cache-dir", tempfile.mkdtemp(),
                                "--prefetch", "1"], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    samples, pending = [], b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the terminal's other side closed: cat is done
            break
        if not data:
            break
        *lines, pending = re.split(rb"[\r\n]", pending + data)
        for line in lines:
            found = ESTIMATE.search(line.decode(errors="replace"))
            if found:
                samples.append((time.monotonic() - start, *map(float, found.groups())))
    process.wait()
    return samples, time.monotonic() - start


def main() -> int:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = LocalS3Server(latency_ms=60).start()
    try:
        _seed(server)
        samples, end = _estimates(server)
    finally:
        server.stop()
    within = outside = 0
    worst = 1.0
    for now, done, total, left in samples:
        real = end - now
        if done < 0.2 * total or real < 0.5:
            continue
        factor = max(left, 0.5) / max(real, 0.5)
        worst = max(worst, factor, 1 / factor)
        within += 0.5 <= factor <= 2
        outside += not 0.5 <= factor <= 2
    print(f"run {end:.1f} s, {len(samples)} estimates; after the first 20%: {within} within 2x of the real time "
          f"left, {outside} outside, worst factor {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
