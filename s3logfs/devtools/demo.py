"""``s3logfs demo``: a local S3 server with realistic logs, mounted, and growing.

It needs no AWS account: moto serves S3 on 127.0.0.1, seeded with S3 access logs, ALB,
CloudFront and CloudWatch-Logs-via-Firehose objects (see :mod:`s3logfs.devtools.demo_data`). The
mount is an ordinary ``s3logfs mount -f`` child process, so the demo exercises what a
user runs and always knows the daemon it must stop. Everything it makes (config file,
caches, logs, the default mountpoint) lives in one temporary directory: the user's own
config and cache are never read or written. A new object lands every ``interval``
seconds. Ctrl-C, SIGTERM, a hangup (the terminal closed) or an error after the mount all end
the same way: every mount of the demo comes down, its daemon stops, the server stops and the
temporary directory goes, even while readers hold files open.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from ..config import CommonOptions
from ..errors import S3LogFSError, UsageError

log = logging.getLogger(__name__)

BUCKET = "demo-logs"
WORKDIR_PREFIX = "s3logfs-demo-"
"""The demo's temporary directory is ``tempfile.mkdtemp(prefix=WORKDIR_PREFIX)``: under ``$TMPDIR``."""
_MOUNT_TIMEOUT = 120.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each ends the demo as Ctrl-C does; SIGHUP is the terminal closing."""
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
    mounted: bool = False
    """The mount answered: only then does the demo say it unmounted."""

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


def _mount(demo: _Demo, common: CommonOptions, stop: threading.Event) -> None:
    """Mount the demo bucket in the foreground as a child, so that the demo can always stop it.

    ``demo.mounted`` is set once the mount answers; a stop signal while waiting returns early.
    """
    from ..fs.host import answers

    command = demo.mount_command(BUCKET, demo.mountpoint, "cache") + ["-f", "--log-level", common.log_level]
    command += ["--log-file", str(common.log_file or demo.log_file)]
    with open(demo.log_file, "ab") as log_output:
        demo.daemon = subprocess.Popen(command, env=dict(os.environ, **DEMO_CREDENTIALS), stdin=subprocess.DEVNULL,
                                       stdout=log_output, stderr=log_output, start_new_session=True)
    deadline = time.monotonic() + _MOUNT_TIMEOUT
    while not answers(demo.mountpoint):
        if demo.daemon.poll() is not None or time.monotonic() > deadline:
            raise S3LogFSError(_last_log_line(demo) or "the demo mount did not start")
        if stop.wait(0.1):
            return
    demo.mounted = True


def _last_log_line(demo: _Demo) -> str:
    try:
        lines = demo.log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _check_daemon(demo: _Demo) -> None:
    """Fail in one line once the mount's daemon has exited: killed, or unmounted from outside the demo."""
    assert demo.daemon is not None
    status = demo.daemon.poll()
    if status is None:
        return
    if status == 0:
        raise S3LogFSError(f"{demo.mountpoint} was unmounted outside the demo: stopping")
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    raise S3LogFSError(f"the mount daemon of {demo.mountpoint} {how}: stopping")


@contextlib.contextmanager
def _server_errors(doing: str) -> Iterator[None]:
    """An error of the local S3 server (a deleted bucket, the server gone) as one line, not a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise S3LogFSError(f"the demo cannot {doing} on its local S3 server: {error}") from error


def _tell(text: str) -> None:
    """Print to stderr; once the terminal is gone (a hangup), say nothing more, so that the demo
    still cleans up and exits with its own status, not a failed flush of stderr."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # lives until exit, as stderr does


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
    """Serve, seed, mount, then add an object every ``interval`` seconds until a stop signal.

    Ctrl-C, SIGTERM and SIGHUP (the terminal closed) stop the demo; each runs the same
    clean-up as an error after the mount does. A signal the demo was started with ignored
    (``nohup`` ignores SIGHUP) stays ignored.
    """
    from ..fs.host import check_fuse

    check_fuse()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, on_signal)
    try:  # the handlers stay until the clean-up is over: a second Ctrl-C cannot cut it short
        return _run(mountpoint, interval, common, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(mountpoint: Path | None, interval: float, common: CommonOptions, stop: threading.Event) -> int:
    from ..fs.host import check_mountpoint
    from .demo_data import next_live_object

    with contextlib.ExitStack() as cleanup:  # runs every callback, last pushed first, even if one fails
        target = None
        if mountpoint is not None:  # checked before anything starts: a refusal leaves nothing behind
            target = mountpoint.expanduser().absolute()
            cleanup.callback(_remove_dirs, _make_mountpoint(target))
            check_mountpoint(target)
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        demo = _Demo(workdir, target or workdir / "mnt")
        cleanup.callback(_say_stopped, demo, stop)
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        demo.mountpoint.mkdir(exist_ok=True)
        server = _start_server()
        cleanup.callback(server.stop)
        demo.endpoint = server.endpoint_url
        client = server.client()
        rng = random.Random(2016)
        with _server_errors("seed the demo bucket"):
            count = _seed(client, rng)
        if stop.is_set():
            return 0
        cleanup.callback(_tear_down, demo)
        _mount(demo, common, stop)
        if not demo.mounted:
            return 0
        _tell(f"seeded {count} objects")
        _tell(_instructions(demo))
        seq = 0
        while not stop.wait(interval):
            _check_daemon(demo)
            obj = next_live_object(rng, datetime.now(timezone.utc), seq)
            with _server_errors("add a new object"):
                client.put_object(Bucket=BUCKET, Key=obj.key, Body=obj.body)
            log.info("new demo object %s", obj.key)
            seq += 1
    return 0


def _say_stopped(demo: _Demo, stop: threading.Event) -> None:
    """The last line: said only when there was a mount to take down, or a signal stopped the start."""
    if demo.mounted:
        _tell("\ns3logfs demo: unmounted and stopped")
    elif stop.is_set():
        _tell("\ns3logfs demo: stopped")


def _make_mountpoint(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; return those it created, deepest first.

    A path that exists is left to :func:`~s3logfs.fs.host.check_mountpoint` to judge.
    """
    created: list[Path] = []
    try:
        for directory in reversed((path, *path.parents)):
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            created.append(directory)
    except OSError as error:
        _remove_dirs(created[::-1])
        raise UsageError(f"cannot create the mountpoint {path}: {error.strerror}") from error
    return created[::-1]


def _remove_dirs(directories: list[Path]) -> None:
    """Remove the (empty) directories the demo created, deepest first; stop at one that is not empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def _tear_down(demo: _Demo) -> None:
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
