"""S3 out of reach as a first-class fault of a mount: one line at mount time; while a mounted server is
away, cached files read, uncached ones fail within ``--timeout``, the log stays quiet, and following
resumes by itself when the server comes back."""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from helpers import free_port, is_mounted, run, s3logfs_command, unmount_quietly, wait_for

BUCKET = "away-logs"


class _Server:
    """A local S3 server in its own process, on a fixed port, that a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, objects: dict[str, bytes]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "s3logfs.devtools.localserver", "--port",
                                         str(self.port)], stdout=subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stdout.readline().strip()
        s3 = boto3.client("s3", endpoint_url=self.endpoint)
        s3.create_bucket(Bucket=BUCKET)  # the server keeps nothing across a restart: seed it again
        for key, body in objects.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture
def away_server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.stop()


def test_mounting_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    result = run(s3logfs_command("mount", "some-bucket/logs/", str(mountpoint), "--endpoint-url",
                                 f"http://127.0.0.1:{free_port()}", "--timeout", "3",
                                 "--cache-dir", str(tmp_path / "cache")), check=False, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert err.splitlines() == [err.splitlines()[0]] and "cannot reach the endpoint" in err, err
    assert not is_mounted(mountpoint)


def test_a_mount_outlives_its_server_going_away_and_coming_back(away_server: _Server, tmp_path: Path) -> None:
    objects = {f"l/o{n:02d}.log": f"line {n}\n".encode() * 3 for n in range(30)}
    away_server.start(objects)
    mountpoint, log = tmp_path / "m", tmp_path / "mount.log"
    mountpoint.mkdir()
    run(s3logfs_command("mount", f"{BUCKET}/l/", str(mountpoint), "--endpoint-url", away_server.endpoint,
                        "--poll-interval", "0.5", "--timeout", "3", "--prefetch", "0", "--log-file", str(log),
                        "--log-level", "INFO", "--cache-dir", str(tmp_path / "cache"), "-c", str(tmp_path / "c.ini")))
    try:
        assert (mountpoint / "o00.log").read_bytes() == objects["l/o00.log"]  # now in the cache
        away_server.stop()
        assert (mountpoint / "o00.log").read_bytes() == objects["l/o00.log"]
        started = time.monotonic()
        with pytest.raises(OSError) as uncached:
            (mountpoint / "o05.log").read_bytes()  # the mount-time listing sized it; its content never came
        assert uncached.value.errno == errno.EIO and time.monotonic() - started < 3 + 2
        with open(mountpoint / "stream", "rb") as stream:
            assert stream.read(len(objects["l/o00.log"])) == objects["l/o00.log"]  # what comes before the failure
            with pytest.raises(OSError) as past:
                stream.read(4096)
            assert past.value.errno == errno.EIO
        wait_for(lambda: "following paused" in log.read_text(), timeout=20)
        away_server.start({**objects, "l/o30.log": b"back\n"})
        wait_for(lambda: (mountpoint / "o30.log").exists(), timeout=30)  # the control: following came back
        assert (mountpoint / "o30.log").read_bytes() == b"back\n"
    finally:
        unmount_quietly(mountpoint)
    text = log.read_text()
    assert "Traceback" not in text, text
    lines = text.splitlines()
    paused = next(n for n, line in enumerate(lines) if "following paused" in line)
    resumed = next(n for n, line in enumerate(lines) if "following resumed" in line)
    away = lines[paused : resumed + 1]
    seconds_away = float(away[-1].split("after ")[-1].split(" s")[0])
    assert seconds_away >= 3  # six poll intervals (0.5 s) or more passed while the server was away...
    assert len(away) <= 6, away  # ...and the log said little: the pause, the two failed reads, the return
    assert not is_mounted(mountpoint)
