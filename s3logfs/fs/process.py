"""The daemon's process: libfuse's stderr noise filtered out, and glibc's malloc tuned for streaming."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LIBFUSE_NOISE = (b"Ignoring invalid max threads value",)
"""What libfuse 3.14 prints on every start through mfusepy's fuse_main_real (an ABI quirk:
the field it reads is not set by the older entry point); it changes nothing."""


@contextmanager
def quiet_libfuse_noise() -> Iterator[None]:
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


def keep_freed_memory() -> None:
    """Let glibc reuse freed buffers instead of returning them to the kernel at once.

    With glibc's defaults every decoded chunk (megabytes) is a fresh ``mmap``: a page fault
    per 4 KiB on each use, about 150,000 faults for 565 MB decoded. Serving buffers from the
    heap, and trimming the heap only past ``_MALLOC_KEEP_BYTES``, saves about a tenth of the
    daemon's CPU. Each malloc arena (up to 8 per core) may keep that much freed memory, which
    costs about 12 MB of peak RSS on 2 cores, flat with the data size (docs/performance.md).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MALLOC_KEEP_BYTES // 4)
        libc.mallopt(_M_TRIM_THRESHOLD, _MALLOC_KEEP_BYTES)
    except (OSError, AttributeError):  # not glibc: its defaults stay
        pass
