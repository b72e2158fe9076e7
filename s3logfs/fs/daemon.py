"""Mounting: the checks that fail fast, the daemon going to the background, and serving.

``s3logfs mount`` runs every check (FUSE present, mountpoint usable, bucket reachable
with the credentials at hand) before anything is mounted, so a bad input costs one line
on stderr and leaves nothing behind.

Going to the background forks once the checks pass, before any thread exists (a fork
with live threads can hang), so the child reuses the parent's imports and S3 client
instead of starting a second interpreter. The child runs in a new session with its
stderr on a pipe, and detaches that stderr once libfuse calls ``init`` (the mount is
up); the parent sees the pipe close, checks that the mountpoint answers, and returns 0.
If the child dies first, the parent prints the child's last line and returns 1.
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from .. import engine
from ..config import MountOptions
from ..engine.cache import prepare_cache_dir
from ..engine.s3 import S3Client
from ..engine.stats import Stats
from ..errors import S3LogFSError
from .host import answers, check_fuse, check_mountpoint, fusermount_command
from .process import keep_freed_memory, quiet_libfuse_noise
from .view import LogFilesystem, ViewOptions

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
"""Seconds the parent waits for the background daemon's mount to answer."""


def preflight(options: MountOptions, stats: Stats) -> tuple[S3Client, bool]:
    """Every check that can fail before mounting: the client that passed them (counting into
    ``stats``), and whether the prefix holds any object yet."""
    check_fuse()
    check_mountpoint(options.mountpoint)
    prepare_cache_dir(options.source.cache_dir)
    client = S3Client(options.source.bucket, options.source.s3, stats)
    return client, client.check_access(options.source.prefix)


def mount(options: MountOptions, note: Callable[[str], None]) -> int:
    """``s3logfs mount``: in the foreground, or in a forked background child.

    ``note`` tells the user what is worth knowing but is no error (an empty prefix).
    """
    stats = Stats()
    client, has_objects = preflight(options, stats)
    if not has_objects:
        polling = options.source.poll_interval > 0
        later = (f"new objects appear in it as they land (listed every {options.source.poll_interval:g} s)"
                 if polling else "and stays so: polling is off (--poll-interval 0)")
        note(f"nothing under {options.source.url} yet: the mount is empty; {later}")
    if options.foreground:
        with quiet_libfuse_noise():
            return run_daemon(options, client, stats, detach_stderr=False)
    return _start_background(options, client, stats)


def _start_background(options: MountOptions, client: S3Client, stats: Stats) -> int:
    if threading.active_count() > 1:
        raise S3LogFSError("internal error: cannot go to the background while threads run")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os._exit(_run_child(options, client, stats, write_end))
    os.close(write_end)
    output = _read_until_closed(read_end, READY_TIMEOUT)
    os.close(read_end)
    if _alive(pid) and answers(options.mountpoint):
        return 0
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        subprocess.run(fusermount_command(options.mountpoint, lazy=True), capture_output=True, check=False)
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    raise S3LogFSError(lines[-1] if lines else "the mount daemon exited before mounting")


def _run_child(options: MountOptions, client: S3Client, stats: Stats, stderr_fd: int) -> int:
    """The background daemon, in a new session, its stderr on the parent's pipe until ``init``."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(stderr_fd, 2)
        os.close(devnull)
        os.close(stderr_fd)
        return run_daemon(options, client, stats, detach_stderr=True)
    except S3LogFSError as error:
        log.error("%s", error)
        _tell_parent(str(error))  # last: the parent shows the last line it got
        return 1
    except BaseException as error:
        log.exception("the mount daemon failed")
        _tell_parent(f"the mount daemon failed: {error!r}")
        return 1
    finally:
        logging.shutdown()


def _tell_parent(message: str) -> None:
    """The line the parent shows; written directly, as logging may go to a file or be filtered."""
    try:
        os.write(2, f"{message}\n".encode(errors="replace"))
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def _read_until_closed(fd: int, timeout: float) -> bytes:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def run_daemon(options: MountOptions, client: S3Client | None, stats: Stats | None, detach_stderr: bool) -> int:
    """Mount and serve until unmounted. Threads start in ``init``, after libfuse is up.

    The mount answers once the first listing page is in (the access check's, reused);
    the rest of the listing streams into the tree from the engine's listing thread.
    """
    from .fuse_ops import Operations, ReaddirPlusFUSE  # imports mfusepy, which needs libfuse

    keep_freed_memory()
    source = options.source
    served = engine.build(source, client, stats)
    view = LogFilesystem(served, ViewOptions(
        source=source.url,
        revalidate_after=source.poll_interval if source.poll_interval > 0 else math.inf,
        uid=os.getuid(),
        gid=os.getgid(),
    ))
    stop = threading.Event()

    def on_init() -> None:
        if detach_stderr:
            _detach_stderr(options)
        served.serve(report=_say if not detach_stderr else log.info)
        log.info("mounted %s on %s", source.url, options.mountpoint)

    def on_destroy() -> None:
        stop.set()
        view.close()
        served.close()

    operations = Operations(view, on_init, on_destroy)
    try:
        ReaddirPlusFUSE(
            operations,
            str(options.mountpoint),
            raw_fi=True,
            foreground=True,
            ro=not options.writable_bookmarks,  # the kernel refuses every write of a read-only mount
            fsname=_fuse_option_value(source.url),
            subtype="s3logfs",
            use_ino=True,
            attr_timeout=0,
            entry_timeout=1,
            negative_timeout=0,
            allow_other=options.allow_other,
        )
    except RuntimeError as error:
        if not stop.is_set():  # libfuse failed before or without unmounting
            raise S3LogFSError(f"the FUSE session failed ({error})") from error
        # libfuse returns non-zero when a signal (SIGTERM, SIGINT) ended a session it then
        # unmounted cleanly: that is a normal way to stop.
        log.info("stopped by a signal; unmounted %s", options.mountpoint)
    return 0


def _say(message: str) -> None:
    """A line for the user of ``mount -f``, who watches its terminal."""
    print(f"s3logfs: {message}", file=sys.stderr, flush=True)


def _fuse_option_value(value: str) -> str:
    """``value`` escaped for libfuse's ``-o`` list, which splits at commas."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _detach_stderr(options: MountOptions) -> None:
    """Close the pipe to the parent: from now on stderr goes to the log file."""
    target = options.common.log_file or os.devnull
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
