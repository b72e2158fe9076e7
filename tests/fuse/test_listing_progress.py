"""A first listing that takes long shows its progress: on the terminal of ``mount -f``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import is_mounted, s3logfs_command, unmount_quietly, wait_for


@pytest.mark.slow
def test_mount_f_reports_a_long_first_listing(server: LocalS3Server, s3: Any, bucket: str, tmp_path: Path) -> None:
    for number in range(1001):  # two listing pages: the mount answers after the first
        s3.put_object(Bucket=bucket, Key=f"logs/{number:05d}.log", Body=b"x\n")
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    server.middleware.latency = 6.0  # the second page takes longer than a report interval
    errors = tmp_path / "stderr"
    with open(errors, "wb") as sink:
        process = subprocess.Popen(s3logfs_command(
            "mount", f"{bucket}/logs/", str(mountpoint), "-f", "--endpoint-url", server.endpoint_url,
            "--cache-dir", str(tmp_path / "cache"), "--poll-interval", "0"), stderr=sink)
    try:
        wait_for(lambda: b"objects so far" in errors.read_bytes(), timeout=60)
        assert f"s3logfs: listing s3://{bucket}/logs/: 1,000 objects so far".encode() in errors.read_bytes()
        wait_for(lambda: b"listed 1,001 objects in" in errors.read_bytes(), timeout=60)
    finally:
        server.middleware.latency = 0.0
        unmount_quietly(mountpoint)
        process.wait(timeout=30)
    assert not is_mounted(mountpoint)
    assert b"Traceback" not in errors.read_bytes()
