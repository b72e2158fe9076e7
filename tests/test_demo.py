"""The embedded demo, started the way the README says: scripts/demo."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import is_mounted, run, unmount_quietly, wait_for

ROOT = Path(__file__).resolve().parent.parent


def count_files(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


def test_demo_mounts_realistic_logs_that_grow(tmp_path: Path) -> None:
    mountpoint = tmp_path / "demo"
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "demo"), str(mountpoint), "--interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for(lambda: is_mounted(mountpoint) and os.listdir(mountpoint), timeout=240, interval=0.5)
        assert {"s3-access", "alb", "cloudfront", "cwl-firehose"} <= set(os.listdir(mountpoint))
        s3_files = sorted((mountpoint / "s3-access").iterdir())
        first_line = run(["head", "-n", "1", str(s3_files[0])]).stdout
        assert b"REST." in first_line and b"HTTP/1.1" in first_line
        alb = run(["grep", "-rh", "elasticloadbalancing", str(mountpoint / "alb")]).stdout
        assert alb.startswith((b"http", b"https", b"h2"))
        firehose = run(["grep", "-rch", "logEvents", str(mountpoint / "cwl-firehose")]).stdout
        assert sum(int(n) for n in firehose.split()) > 0
        before = count_files(mountpoint)
        wait_for(lambda: count_files(mountpoint) >= before + 2, timeout=30, interval=0.5)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        unmount_quietly(mountpoint)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "tail -f" in text and "goaccess" in text and "--log-format=AWSALB" in text
    assert "unmounted and stopped" in text
    assert not is_mounted(mountpoint)
