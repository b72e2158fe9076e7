"""Mounting: checks that fail fast, the daemon, and unmounting.

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

import ctypes.util
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .cache import check_cache_dir
from .config import MountOptions
from .engine import Engine, build_engine
from .errors import S3LogFSError, UsageError
from .filesystem import LogFilesystem, ViewOptions
from .s3 import S3Client, Stats

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
_EVICT_EVERY = 300.0
_SAVE_EVERY = 5.0
FUSE_HINT = "install FUSE: apt-get install fuse3 libfuse2 (Debian/Ubuntu) or dnf install fuse3 fuse-libs"


class FuseMissing(S3LogFSError):
    """FUSE is not usable on this machine."""


def check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise FuseMissing(f"/dev/fuse is missing: {FUSE_HINT}")
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        raise FuseMissing(f"fusermount is not installed: {FUSE_HINT}")
    _prefer_libfuse3()
    try:
        import mfusepy  # noqa: F401  # loading it loads libfuse
    except (OSError, ImportError) as error:
        raise FuseMissing(f"libfuse cannot be loaded ({error}): {FUSE_HINT}") from error


def _prefer_libfuse3() -> None:
    """Use libfuse 3 where it is installed, unless ``FUSE_LIBRARY_NAME`` says otherwise.

    mfusepy loads libfuse 2 first when both are present. libfuse 3 negotiates requests of
    up to 1 MiB (libfuse 2: 128 KiB), which made a cached ``cat stream`` 1.7x faster here.
    """
    if "FUSE_LIBRARY_NAME" not in os.environ and ctypes.util.find_library("fuse3") and shutil.which("fusermount3"):
        os.environ["FUSE_LIBRARY_NAME"] = "fuse3"


def mounted_paths() -> list[Path]:
    """Every mountpoint of this machine, as /proc/mounts lists them."""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        return [Path(_unescape_mount_path(line.split()[1])) for line in mounts if line.strip()]


def is_mounted(path: Path) -> bool:
    return Path(os.path.realpath(path)) in mounted_paths()


def _unescape_mount_path(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def check_mountpoint(path: Path) -> None:
    try:
        is_dir = path.is_dir()
    except OSError as error:  # ENOTCONN: a FUSE daemon died and left its mount
        raise UsageError(f"mountpoint {path} is a stale mount ({error.strerror}): run fusermount -u -z {path}")
    if is_mounted(path):
        raise UsageError(f"mountpoint {path} is already mounted: run s3logfs umount {path} first")
    if not path.exists():
        raise UsageError(f"mountpoint does not exist: {path} (create it with mkdir -p {path})")
    if not is_dir:
        raise UsageError(f"mountpoint is not a directory: {path}")
    if any(path.iterdir()):
        raise UsageError(f"mountpoint is not empty: {path}")


def preflight(options: MountOptions) -> tuple[S3Client, bool]:
    """Every check that can fail before mounting: the client that passed them, and whether
    the prefix holds any object yet."""
    check_fuse()
    check_mountpoint(options.mountpoint)
    check_cache_dir(options.common.cache_dir)
    client = S3Client(options.bucket, options.common.s3, Stats())
    return client, client.check_access(options.prefix)


def mount(options: MountOptions, note: Callable[[str], None]) -> int:
    """``s3logfs mount``: in the foreground, or in a forked background child.

    ``note`` tells the user what is worth knowing but is no error (an empty prefix).
    """
    client, has_objects = preflight(options)
    if not has_objects:
        later = "they appear as they arrive" if options.poll_interval > 0 else "polling is off (--poll-interval 0)"
        note(f"nothing under {options.source} yet: the mount is empty, {later}")
    if options.foreground:
        with _quiet_libfuse_noise():
            return run_daemon(options, client, detach_stderr=False)
    return _start_background(options, client)


def _start_background(options: MountOptions, client: S3Client) -> int:
    if threading.active_count() > 1:
        raise S3LogFSError("internal error: cannot go to the background while threads run")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os._exit(_run_child(options, client, write_end))
    os.close(write_end)
    output = _read_until_closed(read_end, READY_TIMEOUT)
    os.close(read_end)
    if _alive(pid) and answers(options.mountpoint):
        return 0
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        subprocess.run(_fusermount_command(options.mountpoint, lazy=True), capture_output=True, check=False)
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    raise S3LogFSError(lines[-1] if lines else "the mount daemon exited before mounting")


def _run_child(options: MountOptions, client: S3Client, stderr_fd: int) -> int:
    """The background daemon, in a new session, its stderr on the parent's pipe until ``init``."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(stderr_fd, 2)
        os.close(devnull)
        os.close(stderr_fd)
        return run_daemon(options, client, detach_stderr=True)
    except S3LogFSError as error:
        _tell_parent(str(error))
        log.error("%s", error)
        return 1
    except BaseException as error:
        _tell_parent(f"the mount daemon failed: {error!r}")
        log.exception("the mount daemon failed")
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


def answers(mountpoint: Path) -> bool:
    """Whether ``mountpoint`` is mounted and its root answers (a FUSE root is inode 1)."""
    try:
        return is_mounted(mountpoint) and os.stat(mountpoint).st_ino == 1
    except OSError:
        return False


def run_daemon(options: MountOptions, client: S3Client | None, detach_stderr: bool) -> int:
    """Mount and serve until unmounted. Threads start in ``init``, after libfuse is up.

    The mount answers once the first listing page is in (the access check's, reused);
    the rest of the listing streams into the tree from a thread started in ``init``.
    """
    from .fuse_ops import Operations, ReaddirPlusFUSE  # imports mfusepy, which needs libfuse

    _keep_freed_memory()
    engine = build_engine(options, client)
    view = LogFilesystem(
        engine.catalog,
        engine.reader,
        engine.bookmarks,
        ViewOptions(
            source=options.source,
            revalidate_after=options.poll_interval if options.poll_interval > 0 else math.inf,
            uid=os.getuid(),
            gid=os.getgid(),
        ),
    )
    stop = threading.Event()

    def on_init() -> None:
        if detach_stderr:
            _detach_stderr(options)
        threading.Thread(target=_load, args=(engine,), name="s3logfs-listing", daemon=True).start()
        engine.catalog.start()
        threading.Thread(target=_housekeeping, args=(engine, stop), name="s3logfs-housekeeping", daemon=True).start()
        log.info("mounted %s on %s", options.source, options.mountpoint)

    def on_destroy() -> None:
        stop.set()
        view.close()
        engine.close()

    operations = Operations(view, on_init, on_destroy)
    try:
        ReaddirPlusFUSE(
            operations,
            str(options.mountpoint),
            raw_fi=True,
            foreground=True,
            ro=not options.writable_bookmarks,  # the kernel refuses every write of a read-only mount
            fsname=_fuse_option_value(options.source),
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


def _fuse_option_value(value: str) -> str:
    """``value`` escaped for libfuse's ``-o`` list, which splits at commas."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


_LIBFUSE_NOISE = (b"Ignoring invalid max threads value",)
"""What libfuse 3.14 prints on every start through mfusepy's fuse_main_real (an ABI quirk:
the field it reads is not set by the older entry point); it changes nothing."""


@contextmanager
def _quiet_libfuse_noise() -> Iterator[None]:
    """Pass everything written to stderr on, but the lines libfuse prints on every start.

    libfuse writes to file descriptor 2 from C, so the filter is a pipe on it and a thread
    that forwards each line to the real stderr.
    """
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward_lines, args=(read_end, real_stderr), daemon=True,
                                 name="s3logfs-stderr")
    forwarder.start()
    try:
        yield
    finally:
        os.dup2(real_stderr, 2)  # the pipe's last writer closes: the forwarder drains and ends
        forwarder.join(timeout=2)
        os.close(real_stderr)


def _forward_lines(read_end: int, target: int) -> None:
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.startswith(_LIBFUSE_NOISE):
                    os.write(target, line + b"\n")
    if pending:
        os.write(target, pending)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MALLOC_KEEP_BYTES = 64 << 20


def _keep_freed_memory() -> None:
    """Let glibc reuse freed buffers instead of returning them to the kernel at once.

    Every decoded chunk (megabytes) was a fresh ``mmap``: a page fault per 4 KiB on each
    use, 150,000 faults for 565 MB decoded. Serving buffers from the heap, and trimming
    the heap only past ``_MALLOC_KEEP_BYTES``, cut the daemon's CPU by a tenth. Each
    malloc arena (up to 8 per core) may keep that much freed memory; measured on 2 cores,
    peak RSS while streaming rose from about 118 to 130 MB, still flat with the data size.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MALLOC_KEEP_BYTES // 4)
        libc.mallopt(_M_TRIM_THRESHOLD, _MALLOC_KEEP_BYTES)
    except (OSError, AttributeError):  # not glibc: its defaults stay
        pass


def _load(engine: Engine) -> None:
    """The mount-time listing, after the mount answers: directories fill as pages arrive."""
    started = time.monotonic()
    try:
        engine.load()
    except S3LogFSError as error:
        log.error("listing stopped after %d objects: %s", len(engine.catalog.entries), error)
    except Exception:  # the mount stays up with what was listed
        log.exception("listing stopped after %d objects", len(engine.catalog.entries))
    else:
        log.debug("listed %d objects in %.2f s", len(engine.catalog.entries), time.monotonic() - started)


def _detach_stderr(options: MountOptions) -> None:
    """Close the pipe to the parent: from now on stderr goes to the log file."""
    target = options.common.log_file or os.devnull
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def _housekeeping(engine: Engine, stop: threading.Event) -> None:
    """Save the stream index every few seconds; evict from the cache every few minutes."""
    last_eviction = 0.0
    while not stop.is_set():
        try:
            engine.reader.index.save()
            if time.monotonic() - last_eviction > _EVICT_EVERY:
                engine.cache.evict()
                last_eviction = time.monotonic()
        except OSError as error:
            log.warning("housekeeping failed: %s", error)
        stop.wait(_SAVE_EVERY)


def _fusermount_command(mountpoint: Path, lazy: bool = False) -> list[str]:
    binary = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    return [binary, "-u", *(["-z"] if lazy else []), str(mountpoint)]


def unmount(mountpoint: Path, lazy: bool = False) -> int:
    """``s3logfs umount [-z]``: unmount now, or with ``lazy`` detach now and let the daemon
    exit once the last open file closes."""
    if not is_mounted(mountpoint):
        raise UsageError(f"not mounted: {mountpoint}")
    result = subprocess.run(_fusermount_command(mountpoint, lazy), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["fusermount failed"])[-1]
        if "busy" in reason.lower():
            raise S3LogFSError(
                f"cannot unmount {mountpoint}: it is busy (a process has a file or its working directory "
                f"in it); close those, or detach it now with: s3logfs umount -z {mountpoint}"
            )
        raise S3LogFSError(f"cannot unmount {mountpoint}: {reason}")
    return 0


def abort_connection(device: int) -> bool:
    """Abort the FUSE connection of the mount whose ``st_dev`` was ``device``.

    Every pending and later request of that mount fails (readers get an error instead of
    waiting), and the daemon's session ends, so it exits even while files are open. This
    goes through the kernel's fusectl filesystem, mounted here if it is not yet.
    """
    connections = Path("/sys/fs/fuse/connections")
    abort = connections / str(os.minor(device)) / "abort"
    if not abort.exists() and connections.is_dir() and not any(connections.iterdir()):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", str(connections)], capture_output=True, check=False)
    try:
        abort.write_text("1")
    except OSError as error:
        log.debug("cannot abort FUSE connection %s: %s", abort, error)
        return False
    return True
