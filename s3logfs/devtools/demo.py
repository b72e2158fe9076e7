"""``s3logfs demo``: a local S3 server with realistic logs, mounted, and growing.

It needs no AWS account: moto serves S3 on 127.0.0.1, seeded with S3 access logs, ALB,
CloudFront and CloudWatch-Logs-via-Firehose objects (see :mod:`s3logfs.devtools.demo_data`). The
mount is an ordinary ``s3logfs mount -f`` child process, so the demo exercises what a
user runs and always knows the daemon it must stop. Everything it makes (config file,
caches, logs, the default mountpoint) lives in one temporary directory: the user's own
config and cache are never read or written. A new object lands every ``interval``
seconds; Ctrl-C unmounts and stops everything, even while readers hold files open.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from ..config import CommonOptions
from ..errors import S3LogFSError

log = logging.getLogger(__name__)

BUCKET = "demo-logs"
_MOUNT_TIMEOUT = 120.0
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


def _executable() -> list[str]:
    """How to run s3logfs by an absolute path, so printed commands work without PATH changes."""
    script = Path(sys.executable).parent / "s3logfs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "s3logfs"]


@dataclass
class _Demo:
    """The demo's private world: every path it makes lives in ``workdir``."""

    workdir: Path
    mountpoint: Path
    endpoint: str = ""
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.workdir / "config.ini"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mount.log"

    def mount_command(self, source: str, mountpoint: Path, cache: str) -> list[str]:
        return [
            *_executable(), "mount", source, str(mountpoint), "--endpoint-url", self.endpoint,
            "--poll-interval", "2", "--cache-dir", str(self.workdir / cache), "-c", str(self.config_file),
        ]


def _mount(demo: _Demo, common: CommonOptions) -> None:
    """Mount the demo bucket in the foreground as a child, so that Ctrl-C can always stop it."""
    from ..fs.host import answers

    command = demo.mount_command(BUCKET, demo.mountpoint, "cache") + ["-f", "--log-level", common.log_level]
    command += ["--log-file", str(common.log_file or demo.log_file)]
    with open(demo.log_file, "ab") as log_output:
        demo.daemon = subprocess.Popen(command, env=dict(os.environ, **DEMO_CREDENTIALS), stdin=subprocess.DEVNULL,
                                       stdout=log_output, stderr=log_output, start_new_session=True)
    deadline = time.monotonic() + _MOUNT_TIMEOUT
    while not answers(demo.mountpoint):
        if demo.daemon.poll() is not None or time.monotonic() > deadline:
            lines = demo.log_file.read_text(errors="replace").strip().splitlines()
            raise S3LogFSError(lines[-1] if lines else "the demo mount did not start")
        time.sleep(0.1)


def _instructions(demo: _Demo) -> str:
    m = demo.mountpoint
    env = " ".join(f"{k}={v}" for k, v in DEMO_CREDENTIALS.items())
    alb = demo.workdir / "alb"
    s3logfs = " ".join(shlex.quote(part) for part in _executable())
    mount_alb = " ".join(shlex.quote(part) for part in demo.mount_command(f"{BUCKET}/alb/", alb, "cache-alb"))
    return f"""
s3logfs demo: s3://{BUCKET} from a local S3 server ({demo.endpoint}) is mounted on {m}
A new log object lands every few seconds. Try, in another terminal:

  ls -lR {m} | head -40
  cat {m}/s3-access/* | head
  grep -rh --exclude=stream ' 404 ' {m}/alb | head
  ls {m}/cwl-firehose/*/*/*/*
  tail -f {m}/stream
  getfattr -d {m}/s3-access/$(ls {m}/s3-access | head -1)
  getfattr -n user.s3logfs.stats {m}

GoAccess over the ALB logs (one format per mount, so mount the ALB prefix alone):

  mkdir -p {alb} && {env} {mount_alb}
  goaccess {alb}/stream --log-format=AWSALB -o {demo.workdir}/alb-report.html
  {s3logfs} umount {alb}

Per format: --log-format=AWSS3 for {BUCKET}/s3-access/, --log-format=CLOUDFRONT for {BUCKET}/cloudfront/.
The s3logfs commands use its full path; to type plain `s3logfs`, run `source {Path(sys.executable).parent}/activate`.

Press Ctrl-C to unmount and stop.
"""


def run_demo(mountpoint: Path | None, interval: float, common: CommonOptions) -> int:
    """Serve, seed, mount, then add an object every ``interval`` seconds until Ctrl-C."""
    from ..fs.host import check_fuse, check_mountpoint
    from .demo_data import next_live_object

    check_fuse()
    workdir = Path(tempfile.mkdtemp(prefix="s3logfs-demo-"))
    demo = _Demo(workdir, (mountpoint or workdir / "mnt").expanduser().absolute())
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        demo.mountpoint.mkdir(parents=True, exist_ok=True)
        check_mountpoint(demo.mountpoint)
        server = _start_server()
        demo.endpoint = server.endpoint_url
        client = server.client()
        rng = random.Random(2016)
        count = _seed(client, rng)
        _mount(demo, common)
        print(f"seeded {count} objects", file=sys.stderr)
        print(_instructions(demo), file=sys.stderr, flush=True)
        seq = 0
        while not stop.wait(interval):
            obj = next_live_object(rng, datetime.now(timezone.utc), seq)
            client.put_object(Bucket=BUCKET, Key=obj.key, Body=obj.body)
            log.info("new demo object %s", obj.key)
            seq += 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _tear_down(demo, mountpoint is None)
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        print("\ns3logfs demo: unmounted and stopped", file=sys.stderr)
    return 0


def _tear_down(demo: _Demo, own_mountpoint: bool) -> None:
    """Unmount every mount of the demo, even with readers inside, and stop their daemons.

    A lazy unmount detaches each mount at once; aborting its FUSE connection then ends
    the daemon's session, so open readers (a ``tail -f``) get an error instead of hanging
    on a server that is about to stop.
    """
    from ..fs.host import abort_connection, is_mounted, unmount

    targets = [demo.mountpoint] + [path for path in _mounts_below(demo.workdir) if path != demo.mountpoint]
    for target in targets:
        if not is_mounted(target):
            continue
        try:
            device = os.stat(target).st_dev
        except OSError:
            device = None
        try:
            unmount(target, lazy=True)
        except S3LogFSError as error:
            log.warning("%s", error)
        if device is not None:
            abort_connection(device)
    if demo.daemon is not None:
        _wait_or_kill(demo.daemon)


def _mounts_below(directory: Path) -> list[Path]:
    from ..fs.host import mounted_paths

    return [path for path in mounted_paths() if path.is_relative_to(directory)]


def _wait_or_kill(process: subprocess.Popen[bytes]) -> None:
    for send in (None, signal.SIGTERM, signal.SIGKILL):
        if send is not None:
            process.send_signal(send)
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue
