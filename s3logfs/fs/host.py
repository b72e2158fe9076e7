"""The host's side of a mount: FUSE present, a usable mountpoint, what is mounted, unmounting.

Each check fails with one line that says what to do (install FUSE, ``mkdir``, unmount a
stale mount first), before anything is mounted.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import S3LogFSError, UsageError

log = logging.getLogger(__name__)

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
    up to 1 MiB (libfuse 2: 128 KiB): eight times fewer round trips for a sequential read
    (docs/design.md has the measurement).
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


def answers(mountpoint: Path) -> bool:
    """Whether ``mountpoint`` is mounted and its root answers (a FUSE root is inode 1)."""
    try:
        return is_mounted(mountpoint) and os.stat(mountpoint).st_ino == 1
    except OSError:
        return False


def fusermount_command(mountpoint: Path, lazy: bool = False) -> list[str]:
    binary = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    return [binary, "-u", *(["-z"] if lazy else []), str(mountpoint)]


def unmount(mountpoint: Path, lazy: bool = False) -> int:
    """``s3logfs umount [-z]``: unmount now, or with ``lazy`` detach now and let the daemon
    exit once the last open file closes."""
    if not is_mounted(mountpoint):
        raise UsageError(f"not mounted: {mountpoint}")
    result = subprocess.run(fusermount_command(mountpoint, lazy), capture_output=True, text=True, check=False)
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
