"""``s3logfs demo``: a local S3 server with realistic logs, mounted, and growing.

It needs no AWS account: moto serves S3 on 127.0.0.1, seeded with S3 access logs, ALB,
CloudFront and CloudWatch-Logs-via-Firehose objects (see :mod:`s3logfs.demo_data`). The
mount is an ordinary ``s3logfs mount`` child process, so the demo exercises exactly
what a user runs. A new object lands every ``interval`` seconds; Ctrl-C unmounts and
stops everything.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from .config import CommonOptions
from .errors import S3LogFSError

log = logging.getLogger(__name__)

BUCKET = "demo-logs"
DEMO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _start_server() -> Any:
    try:
        from .localserver import LocalS3Server

        return LocalS3Server().start()
    except ImportError as error:
        raise S3LogFSError(f"the demo needs the demo extra: pip install 's3logfs[demo]' ({error})") from error


def _seed(client: Any, rng: random.Random) -> int:
    from .demo_data import seed_objects

    client.create_bucket(Bucket=BUCKET)
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    objects = seed_objects(rng, start)
    for obj in objects:
        client.put_object(Bucket=BUCKET, Key=obj.key, Body=obj.body)
    return len(objects)


def _mount(endpoint: str, mountpoint: Path, cache_dir: Path, common: CommonOptions) -> None:
    command = [
        sys.executable, "-m", "s3logfs", "mount", BUCKET, str(mountpoint),
        "--endpoint-url", endpoint, "--poll-interval", "2", "--cache-dir", str(cache_dir),
        "--log-level", common.log_level,
    ]
    if common.log_file:
        command += ["--log-file", str(common.log_file)]
    result = subprocess.run(command, env=dict(os.environ, **DEMO_CREDENTIALS), capture_output=True, text=True)
    if result.returncode != 0:
        raise S3LogFSError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "mount failed")


def _instructions(mountpoint: Path, endpoint: str) -> str:
    m = mountpoint
    env = " ".join(f"{k}={v}" for k, v in DEMO_CREDENTIALS.items())
    return f"""
s3logfs demo: s3://{BUCKET} from a local S3 server ({endpoint}) is mounted on {m}
A new log object lands every few seconds. Try, in another terminal:

  ls -lR {m} | head -40
  cat {m}/s3-access/* | head
  grep -rh ' 404 ' {m}/alb | head
  ls {m}/cwl-firehose/*/*/*/*
  tail -f {m}/stream
  getfattr -d {m}/s3-access/$(ls {m}/s3-access | head -1)
  getfattr -n user.s3logfs.stats {m}

GoAccess over the ALB logs (one format per mount, so mount the ALB prefix alone):

  mkdir -p /tmp/alb && {env} s3logfs mount --endpoint-url {endpoint} {BUCKET}/alb/ /tmp/alb
  goaccess /tmp/alb/stream --log-format=AWSALB -o /tmp/alb-report.html
  s3logfs umount /tmp/alb

Per format: --log-format=AWSS3 for {BUCKET}/s3-access/, --log-format=CLOUDFRONT for {BUCKET}/cloudfront/.

Press Ctrl-C to unmount and stop.
"""


def run_demo(mountpoint: Path | None, interval: float, common: CommonOptions) -> int:
    """Serve, seed, mount, then add an object every ``interval`` seconds until Ctrl-C."""
    from .demo_data import next_live_object
    from .mount import check_fuse, check_mountpoint, is_mounted, unmount

    check_fuse()
    workdir = Path(tempfile.mkdtemp(prefix="s3logfs-demo-"))
    target = (mountpoint or workdir / "mnt").expanduser().absolute()
    target.mkdir(parents=True, exist_ok=True)
    check_mountpoint(target)
    server = _start_server()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        client = server.client()
        rng = random.Random(2016)
        count = _seed(client, rng)
        _mount(server.endpoint_url, target, workdir / "cache", common)
        print(f"seeded {count} objects", file=sys.stderr)
        print(_instructions(target, server.endpoint_url), file=sys.stderr, flush=True)
        seq = 0
        while not stop.wait(interval):
            obj = next_live_object(rng, datetime.now(timezone.utc), seq)
            client.put_object(Bucket=BUCKET, Key=obj.key, Body=obj.body)
            log.info("new demo object %s", obj.key)
            seq += 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if is_mounted(target):
            try:
                unmount(target)
            except S3LogFSError as error:
                log.warning("%s; unmounting lazily", error)
                subprocess.run(["fusermount", "-u", "-z", str(target)], check=False)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        print("\ns3logfs demo: unmounted and stopped", file=sys.stderr)
    return 0
