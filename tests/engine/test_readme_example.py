"""The README's Python example (s3tail's, ported line for line) runs against the local S3 server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from s3logfs.devtools.localserver import LocalS3Server

from helpers import README, run


def test_the_ported_s3tail_example_runs(server: LocalS3Server, tmp_path: Path) -> None:
    example = README.read_text().split("ported line for line:\n\n```python\n", 1)[1].split("```", 1)[0]
    client = server.client()
    client.create_bucket(Bucket="my-logs")
    client.put_object(Bucket="my-logs", Key="production-s3-access-2016-08-04-00-20-31-A", Body=b"one\ntwo\n")
    client.put_object(Bucket="my-logs", Key="production-s3-access-2016-08-04-00-25-31-B", Body=b"three\n")
    env: dict[str, Any] = dict(os.environ, AWS_ENDPOINT_URL=server.endpoint_url, HOME=str(tmp_path))
    output = run([sys.executable, "-c", example], env=env).stdout.decode()
    assert output == ("1: one\n2: two\n1: three\n"
                      "stopped at bookmark production-s3-access-2016-08-04-00-20-31-A:1\n")
