"""What the poller lists under ``--since``, against the local S3 server: today's folder, whatever the history."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from s3logfs.devtools.localserver import LocalS3Server

from helpers import alb_now_key, seed_alb_history


def test_a_poll_lists_only_the_folders_that_can_hold_new_keys(server: LocalS3Server, s3: Any) -> None:
    """What the poller asks for under ``--since``: today's folder from where the mount is, whatever the history."""
    from s3logfs.engine.s3 import S3Client, S3Config
    from s3logfs.engine.window import Window
    from s3logfs.engine.window_listing import WindowLister

    now = datetime.now(UTC)
    costs = []
    for days in (30, 2000):  # 2,288 keys: a full listing would take 3 pages
        bucket = f"test-poll-{days}-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        keys = seed_alb_history(server, bucket, days, now)
        client = S3Client(bucket, S3Config(endpoint_url=server.endpoint_url))
        lister = WindowLister(client, "")
        mounted = [info.key for page in lister.pages(Window(now - timedelta(hours=2)), time.time()) for info in page]
        lister.note_known(mounted)
        new_key = alb_now_key(now + timedelta(minutes=5), 999)
        s3.put_object(Bucket=bucket, Key=new_key, Body=b"new\n")
        before = client.stats.lists
        polled = [info.key for page in lister.pages(Window(now - timedelta(hours=1)), time.time(), resume=True)
                  for info in page]
        costs.append(client.stats.lists - before)
        assert polled == [new_key]
        assert set(mounted) <= set(keys)
    assert costs[0] == costs[1] <= 2, costs
