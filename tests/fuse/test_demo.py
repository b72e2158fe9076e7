"""The embedded demo, started the way the README says: scripts/demo."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, daemon_pid, is_mounted, run, unmount_quietly, wait_for

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
