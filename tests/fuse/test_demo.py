"""The embedded demo, started the way the README says: scripts/demo."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.demo import BUCKET, WORKDIR_PREFIX

from helpers import (
    ROOT,
    daemon_pid,
    is_mounted,
    refused_in_one_line,
    run,
    s3logfs_command,
    unmount_quietly,
    wait_for,
)

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def count_files(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


def user_home(tmp_path: Path) -> tuple[Path, dict[Path, bytes]]:
    """A HOME holding a user's own config files, to prove the demo never touches them."""
    home = tmp_path / "home"
    files = {
        home / ".s3logfsrc": b"[bookmarks]\nmine = 42 s3://real-bucket/logs/\n",
        home / ".config" / "s3logfs" / "config.ini": b"[options]\nendpoint-url = http://127.0.0.1:1\n",
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return home, files


def holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in descriptors:
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


def printed_commands(text: str) -> list[str]:
    """The shell lines the demo tells the user to run that call s3logfs."""
    return [line.strip() for line in text.splitlines() if re.search(r"/s3logfs (mount|umount) ", line)]


@pytest.mark.slow  # installs, starts and stops the whole demo
def test_demo_mounts_realistic_logs_that_grow(tmp_path: Path) -> None:
    mountpoint = tmp_path / "demo"
    home, user_files = user_home(tmp_path)
    assert shutil.which("s3logfs", path=SYSTEM_PATH) is None
    env = dict(os.environ, HOME=str(home), PATH=SYSTEM_PATH)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "demo"), str(mountpoint), "--interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )
    tail = None
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

        tail = subprocess.Popen(["tail", "-f", str(mountpoint / "stream")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # tail has the stream open (or has failed): only then is it a reader that Ctrl-C must not strand
        wait_for(lambda: tail.poll() is not None or holds_open(tail.pid, mountpoint / "stream"), timeout=30)
        assert tail.poll() is None
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C while a reader holds stream open
        output, _ = process.communicate(timeout=15)
        assert daemon_pid(mountpoint) is None
        assert not is_mounted(mountpoint)
        tail.wait(timeout=15)  # the reader got an error instead of hanging
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
        if tail is not None and tail.poll() is None:
            tail.kill()
        unmount_quietly(mountpoint)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "tail -f" in text and "goaccess" in text and "--log-format=AWSALB" in text
    assert "unmounted and stopped" in text
    workdir = Path(re.search(r"mkdir -p (\S+)/alb ", text).group(1))  # type: ignore[union-attr]
    assert not workdir.exists()
    for path, content in user_files.items():
        assert path.read_bytes() == content, path
    assert sorted(p.name for p in (home / ".config").iterdir()) == ["s3logfs"]
    assert not (home / ".cache").exists()


def test_every_printed_command_runs_as_printed(tmp_path: Path) -> None:
    """With s3logfs not on PATH, the demo's s3logfs and goaccess lines work as they are."""
    home, _ = user_home(tmp_path)
    env = dict(os.environ, HOME=str(home), PATH=SYSTEM_PATH)
    process = subprocess.Popen([str(ROOT / "scripts" / "demo"), "--interval", "3"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True, env=env)
    lines: list[str] = []
    alb = None
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append(raw.decode(errors="replace"))
            if raw.startswith(b"Press Ctrl-C"):
                break
        commands = printed_commands("".join(lines))
        assert [("umount" in c) for c in commands] == [False, True], commands
        mount_alb, umount_alb = commands
        alb = Path(re.search(r"mkdir -p (\S+) ", mount_alb).group(1))  # type: ignore[union-attr]
        run(["sh", "-c", mount_alb], env=env)
        assert is_mounted(alb)
        report = next(line.strip() for line in lines if line.strip().startswith("goaccess "))
        if shutil.which("goaccess"):
            run(["sh", "-c", report], env=env)
            html = Path(re.search(r"-o (\S+)", report).group(1))  # type: ignore[union-attr]
            assert html.exists() and b"<html" in html.read_bytes()[:2000].lower()
        run(["sh", "-c", umount_alb], env=env)
        assert not is_mounted(alb)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=30)
        if alb is not None:
            unmount_quietly(alb)
    assert process.returncode == 0


# however the demo ends, it leaves nothing behind (issue 19) ----------------------------------------

DEMO_START_TIMEOUT = 120.0
"""Seconds for ``s3logfs demo`` to start moto, seed it and mount (a few seconds here)."""
DEMO_STOP_TIMEOUT = 60.0
"""Seconds for the demo to unmount, stop its daemon and server, and exit."""
STOPPED = "s3logfs demo: unmounted and stopped"


def demo_command(mountpoint: Path, controlling_terminal: bool) -> list[str]:
    """``s3logfs demo MOUNTPOINT`` behind two wrappers that exec it in place, so that the process is the demo:
    ``env --default-signal`` puts the stop signals at their defaults (the test run may have been started
    with SIGHUP ignored, by nohup, and the demo keeps an ignored signal ignored); for a terminal,
    ``setsid --ctty`` makes its standard input the controlling terminal of a new session, so that closing
    the terminal hangs it up as closing a terminal window does. No preexec_fn: this process has threads."""
    wrappers = ["env", "--default-signal=HUP,INT,TERM"] + (["setsid", "--ctty"] if controlling_terminal else [])
    return [*wrappers, *s3logfs_command("demo", str(mountpoint), "--interval", "1")]


def mount_daemons(mountpoint: Path) -> list[int]:
    """The pids of ``s3logfs mount`` processes serving ``mountpoint`` (the demo's daemon, not the demo)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mount" in argv and str(mountpoint).encode() in argv and any(b"s3logfs" in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


def mounts_under(directory: Path) -> list[str]:
    with open("/proc/mounts", encoding="utf-8") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(str(directory))]


@dataclass
class DemoRun:
    """``s3logfs demo`` as a user starts it, with its output read from a pipe or a terminal."""

    process: subprocess.Popen[bytes]
    output_fd: int | None
    mountpoint: Path
    tmpdir: Path
    """Its TMPDIR: the demo makes its temporary directory here, and nothing else does."""
    output: str = ""

    def workdirs(self) -> list[Path]:
        return sorted(self.tmpdir.glob(f"{WORKDIR_PREFIX}*"))

    def read_until(self, done: Callable[[str], bool], timeout: float) -> str:
        """Read the demo's output until ``done(output)`` or its end; fail after ``timeout``."""
        assert self.output_fd is not None
        deadline = time.monotonic() + timeout
        while not done(self.output):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the demo's output is not as awaited after {timeout}s:\n{self.output}"
            ready, _, _ = select.select([self.output_fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(self.output_fd, 65536)
            except OSError:  # EIO: a terminal whose every writer is gone
                chunk = b""
            if not chunk:
                break
            self.output += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.output

    def wait_until_mounted(self) -> None:
        self.read_until(lambda text: "Press Ctrl-C" in text, DEMO_START_TIMEOUT)
        wait_for(lambda: is_mounted(self.mountpoint) and os.listdir(self.mountpoint), timeout=30)
        assert len(mount_daemons(self.mountpoint)) == 1
        assert len(self.workdirs()) == 1  # so that "none left" below looks at the right place
        assert str(self.workdirs()[0]) in self.output

    def wait_for_exit(self) -> int:
        """The exit status; the rest of the output is read (to its end) when there is a pipe to read."""
        if self.output_fd is not None:
            self.read_until(lambda text: False, DEMO_STOP_TIMEOUT)
        return self.process.wait(timeout=DEMO_STOP_TIMEOUT)

    def assert_left_nothing(self) -> None:
        """Exited; no mount, no daemon, no temporary directory; the mountpoint it made is gone too."""
        assert self.process.poll() is not None
        assert not is_mounted(self.mountpoint)
        assert mounts_under(self.tmpdir) == []
        assert mount_daemons(self.mountpoint) == []
        assert daemon_pid(self.mountpoint) is None
        assert self.workdirs() == []
        assert not self.mountpoint.exists()


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[..., DemoRun]]:
    """Start ``s3logfs demo MOUNTPOINT`` (the session's private HOME, a private TMPDIR); whatever the test's
    outcome, teardown kills what remains and unmounts with fusermount -u -z."""
    runs: list[DemoRun] = []

    def start(terminal: bool = False) -> DemoRun:
        tmpdir = tmp_path / f"tmp{len(runs)}"
        tmpdir.mkdir()
        mountpoint = tmp_path / f"demo{len(runs)}" / "mnt"  # neither exists yet: the demo makes both
        env = dict(os.environ, TMPDIR=str(tmpdir))
        if terminal:
            ours, theirs = os.openpty()
            streams: dict[str, Any] = {"stdin": theirs, "stdout": theirs, "stderr": theirs}
        else:
            ours, theirs = os.pipe()
            streams = {"stdin": subprocess.DEVNULL, "stdout": theirs, "stderr": subprocess.STDOUT}
        try:
            process = subprocess.Popen(demo_command(mountpoint, terminal), env=env,
                                       start_new_session=not terminal, **streams)
        except BaseException:
            os.close(ours)
            raise
        finally:
            os.close(theirs)
        runs.append(DemoRun(process, ours, mountpoint, tmpdir))
        return runs[-1]

    yield start
    for demo in runs:
        if demo.process.poll() is None:
            os.killpg(demo.process.pid, signal.SIGKILL)
            demo.process.wait(timeout=30)
        if demo.output_fd is not None:
            os.close(demo.output_fd)
        for path in [demo.mountpoint, *(Path(p) for p in mounts_under(demo.tmpdir))]:
            unmount_quietly(path)
        for pid in mount_daemons(demo.mountpoint):
            os.kill(pid, signal.SIGKILL)
    for demo in runs:
        assert not is_mounted(demo.mountpoint), f"{demo.mountpoint} is still mounted after teardown"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_leaves_nothing_behind(start_demo: Callable[..., DemoRun], signum: signal.Signals) -> None:
    demo = start_demo()
    demo.wait_until_mounted()
    os.kill(demo.process.pid, signum)
    status = demo.wait_for_exit()
    demo.assert_left_nothing()
    assert status == 0, demo.output
    assert "Traceback" not in demo.output
    assert demo.output.strip().splitlines()[-1] == STOPPED


def test_closing_the_terminal_leaves_nothing_behind(start_demo: Callable[..., DemoRun]) -> None:
    """The terminal goes away: SIGHUP from the kernel, and every later write to it fails."""
    demo = start_demo(terminal=True)
    demo.wait_until_mounted()
    assert demo.output_fd is not None
    os.close(demo.output_fd)  # the last descriptor of the terminal's master side: a hangup
    demo.output_fd = None
    status = demo.wait_for_exit()
    demo.assert_left_nothing()
    assert status == 0


def delete_bucket(s3: Any, bucket: str) -> bool:
    """Empty ``bucket`` and delete it; False when an object landed in between (try again)."""
    from botocore.exceptions import ClientError

    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    try:
        s3.delete_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] == "BucketNotEmpty":
            return False
        raise
    return True


def test_an_error_after_the_mount_leaves_nothing_behind(start_demo: Callable[..., DemoRun]) -> None:
    """Someone deletes the demo's bucket on its local server: adding the next object fails. The demo says
    why in one line, exits non-zero, and cleans up as a Ctrl-C would (no test hook: the real server)."""
    import boto3
    import botocore.config

    demo = start_demo()
    demo.wait_until_mounted()
    endpoint = re.search(r"local S3 server \((http://[^)]+)\)", demo.output).group(1)  # type: ignore[union-attr]
    s3 = boto3.client("s3", endpoint_url=endpoint, config=botocore.config.Config(s3={"addressing_style": "path"}))
    wait_for(lambda: delete_bucket(s3, BUCKET), timeout=30)
    assert is_mounted(demo.mountpoint)  # the failure comes while the mount is up
    status = demo.wait_for_exit()
    demo.assert_left_nothing()
    assert status == 1, demo.output
    assert "Traceback" not in demo.output
    *_, stopped, reason = demo.output.strip().splitlines()
    assert stopped == STOPPED
    assert reason.startswith("s3logfs: the demo cannot add a new object") and "NoSuchBucket" in reason, reason


def test_a_dead_mount_daemon_stops_the_demo_and_leaves_nothing_behind(start_demo: Callable[..., DemoRun]) -> None:
    """The daemon is killed: its mount is left stale (ENOTCONN). The demo notices, says so in one line
    and clears the stale mount, instead of adding objects under a dead mount until Ctrl-C."""
    demo = start_demo()
    demo.wait_until_mounted()
    os.kill(mount_daemons(demo.mountpoint)[0], signal.SIGKILL)
    status = demo.wait_for_exit()
    demo.assert_left_nothing()
    assert status == 1, demo.output
    assert "Traceback" not in demo.output
    *_, stopped, reason = demo.output.strip().splitlines()
    assert stopped == STOPPED
    assert reason == f"s3logfs: the mount daemon of {demo.mountpoint} was killed by signal 9: stopping"


@pytest.mark.parametrize("kind", ["not empty", "a file", "under a file", "already mounted"])
def test_a_refused_mountpoint_says_why_in_one_line_and_leaves_nothing(
    kind: str, tmp_path: Path, mount_one: Callable[..., Any]
) -> None:
    """Nothing was mounted, so nothing is said to be unmounted: the reason, a non-zero exit, no traceback."""
    place = tmp_path / "place"
    if kind == "not empty":
        place.mkdir()
        (place / "mine").write_text("keep me")
        mountpoint = place
    elif kind == "already mounted":
        mountpoint = mount_one().path
    else:
        place.write_text("keep me")
        mountpoint = place if kind == "a file" else place / "sub"
    before = sorted(tmp_path.rglob("*")) if kind != "already mounted" else None
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    result = run(s3logfs_command("demo", str(mountpoint)), check=False, timeout=120,
                 env=dict(os.environ, TMPDIR=str(tmpdir)))
    line = refused_in_one_line(result)
    assert line.startswith("s3logfs: ") and "mountpoint" in line, line
    assert str(mountpoint) in line
    assert "unmounted" not in line and "stopped" not in line
    assert result.stdout == b""
    assert list(tmpdir.iterdir()) == []
    assert mount_daemons(mountpoint) == [] or kind == "already mounted"
    if before is not None:
        assert sorted(p for p in tmp_path.rglob("*") if p != tmpdir) == before
        assert not is_mounted(mountpoint)
    else:
        assert is_mounted(mountpoint)
