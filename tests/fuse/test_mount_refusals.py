"""``s3logfs mount`` and ``umount`` refuse bad input fast: one line on stderr, a non-zero exit, no
traceback, no mount left. These refusals come after the FUSE check, so they need FUSE.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import free_port, is_mounted, refuse, run, s3logfs_command, unmount_quietly, wait_for


def mount_command(server: LocalS3Server, source: str, mountpoint: Path, tmp_path: Path) -> list[str]:
    return s3logfs_command("mount", source, str(mountpoint), "--endpoint-url", server.endpoint_url,
                           "--cache-dir", str(tmp_path / "cache"))


def test_missing_bucket(server: LocalS3Server, empty_dir: Path, tmp_path: Path) -> None:
    line = refuse(mount_command(server, "no-such-bucket-here", empty_dir, tmp_path), empty_dir)
    assert "bucket not found: no-such-bucket-here" in line


def test_missing_credentials(server: LocalS3Server, bucket: str, empty_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    line = refuse(mount_command(server, bucket, empty_dir, tmp_path), empty_dir, env=env)
    assert "no AWS credentials found" in line


@contextmanager
def serving(command: list[str], port: int, **popen: Any) -> Iterator[str]:
    """A server process, once it accepts connections on ``port``; stopped afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def strict_server() -> Iterator[str]:
    """A moto server that checks credentials: only its first request goes unauthenticated."""
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="1")
    with serving([sys.executable, "-m", "moto.server", "-p", str(port)], port, env=env) as endpoint:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="locked-bucket")
        yield endpoint


def test_denied_credentials(strict_server: str, empty_dir: Path, tmp_path: Path) -> None:
    command = s3logfs_command("mount", "locked-bucket", str(empty_dir), "--endpoint-url", strict_server,
                              "--cache-dir", str(tmp_path / "cache"))
    line = refuse(command, empty_dir)
    assert "access denied to s3://locked-bucket" in line


def test_missing_mountpoint(server: LocalS3Server, bucket: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    line = refuse(mount_command(server, bucket, missing, tmp_path), missing)
    assert "mountpoint does not exist" in line
    assert not missing.exists()


def test_non_empty_mountpoint(server: LocalS3Server, bucket: str, empty_dir: Path, tmp_path: Path) -> None:
    (empty_dir / "precious.txt").write_text("keep me")
    line = refuse(mount_command(server, bucket, empty_dir, tmp_path), empty_dir)
    assert "mountpoint is not empty" in line
    assert (empty_dir / "precious.txt").read_text() == "keep me"


def test_already_mounted(server: LocalS3Server, bucket: str, s3: Any, mount_factory: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="a.log", Body=b"a\n")
    mount = mount_factory(bucket)
    line = refuse(mount_command(server, bucket, mount.path, tmp_path), mount.path)
    assert "already mounted" in line
    assert (mount.path / "a.log").read_bytes() == b"a\n"


def test_no_fuse_on_the_machine(server: LocalS3Server, bucket: str, empty_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")
    env = dict(os.environ, PATH=str(bin_dir))
    line = refuse(mount_command(server, bucket, empty_dir, tmp_path), empty_dir, env=env)
    assert "fusermount is not installed" in line and "apt-get install fuse3" in line


def test_umount_unmounts(server: LocalS3Server, bucket: str, s3: Any, mount_factory: Any) -> None:
    s3.put_object(Bucket=bucket, Key="a.log", Body=b"a\n")
    mount = mount_factory(bucket)
    run(s3logfs_command("umount", str(mount.path)))
    assert not is_mounted(mount.path)


def test_endpoint_without_a_scheme(server: LocalS3Server, bucket: str, empty_dir: Path, tmp_path: Path) -> None:
    bare = server.endpoint_url.removeprefix("http://")
    command = s3logfs_command("mount", bucket, str(empty_dir), "--endpoint-url", bare, "--cache-dir", str(tmp_path))
    line = refuse(command, empty_dir)
    assert f"bad endpoint URL '{bare}'" in line and f"try http://{bare}" in line


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain web server: it answers HTTP, but not as S3 does."""
    port = free_port()
    with serving([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], port, cwd=tmp_path) as url:
        yield url


def test_endpoint_that_is_not_s3(web_server: str, empty_dir: Path, tmp_path: Path) -> None:
    command = s3logfs_command("mount", "some-bucket", str(empty_dir), "--endpoint-url", web_server,
                              "--cache-dir", str(tmp_path / "cache"))
    line = refuse(command, empty_dir)
    assert f"the endpoint {web_server} does not answer like S3" in line
    assert "bucket not found" not in line


def test_an_empty_prefix_mounts_with_a_note(server: LocalS3Server, bucket: str, empty_dir: Path,
                                            tmp_path: Path) -> None:
    try:
        result = run(mount_command(server, f"{bucket}/nothing-yet/", empty_dir, tmp_path))
        assert is_mounted(empty_dir)
        lines = result.stderr.decode().splitlines()
        assert lines == [(f"s3logfs: nothing under s3://{bucket}/nothing-yet/ yet: the mount is empty; "
                          "new objects appear in it as they land (listed every 10 s)")]
    finally:
        unmount_quietly(empty_dir)


def test_a_busy_mount_names_itself_and_unmounts_lazily(server: LocalS3Server, bucket: str, s3: Any,
                                                       mount_factory: Any) -> None:
    s3.put_object(Bucket=bucket, Key="a.log", Body=b"a\n")
    mount = mount_factory(bucket)
    pid = mount.pid
    with open(mount.path / "a.log", "rb") as reader:
        line = refuse(s3logfs_command("umount", str(mount.path)), mount.path)
        assert f"cannot unmount {mount.path}: it is busy" in line and f"s3logfs umount -z {mount.path}" in line
        run(s3logfs_command("umount", "-z", str(mount.path)))
        assert not is_mounted(mount.path)
        assert reader.read() == b"a\n"  # a lazy unmount lets open files finish
    wait_for(lambda: pid is None or not Path(f"/proc/{pid}").exists(), timeout=10)


def test_a_foreground_mount_is_quiet(server: LocalS3Server, bucket: str, s3: Any, empty_dir: Path,
                                     tmp_path: Path) -> None:
    """At the default log level, ``mount -f`` prints nothing while all is well, and stops on SIGTERM."""
    s3.put_object(Bucket=bucket, Key="a.log", Body=b"a\n")
    process = subprocess.Popen(mount_command(server, bucket, empty_dir, tmp_path) + ["-f"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: is_mounted(empty_dir), timeout=30)
        assert (empty_dir / "a.log").read_bytes() == b"a\n"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        unmount_quietly(empty_dir)
    assert (stdout, stderr.decode()) == (b"", "")
    assert process.returncode == 0
    assert not is_mounted(empty_dir)


@pytest.mark.parametrize("cache_dir", ["/proc/nope", "read-only/sub"])
def test_an_unusable_cache_dir_refuses_the_mount_in_one_line(server: LocalS3Server, bucket: str, empty_dir: Path,
                                                             tmp_path: Path, cache_dir: str) -> None:
    if cache_dir.startswith("read-only"):
        read_only = tmp_path / "read-only"
        read_only.mkdir()
        read_only.chmod(0o500)
        cache_dir = str(read_only / "sub")
        if os.access(read_only, os.W_OK) and os.geteuid() != 0:
            pytest.skip("this user can write anywhere")
        if os.geteuid() == 0:  # root writes through mode bits: make the directory a file's child instead
            cache_dir = str(tmp_path / "a-file" / "sub")
            (tmp_path / "a-file").write_text("")
    line = refuse(s3logfs_command("mount", f"{bucket}/", str(empty_dir), "--endpoint-url", server.endpoint_url,
                                  "--cache-dir", cache_dir), empty_dir)
    assert line.startswith(f"s3logfs: cannot use cache directory {cache_dir}"), line
    assert "Errno" not in line
