"""What a user meets in the first week, without FUSE: S3 out of reach, whole lines from an interrupted
``cat``, bookmarks the CLI will not take from another source, ``cache clear`` of every cache kind."""

from __future__ import annotations

import gzip
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import free_port, put_all, run, s3logfs_command, stream_reference


def _one_line_no_traceback(result: subprocess.CompletedProcess) -> str:
    err = result.stderr.decode(errors="replace")
    assert result.returncode != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, err
    return lines[-1]


@pytest.mark.parametrize(("endpoint", "reason"), [
    (f"http://127.0.0.1:{free_port()}", "Connection refused"),
    ("http://no-such-host.invalid:9000", "cannot reach"),
])
def test_cat_of_an_unreachable_endpoint_is_one_line(endpoint: str, reason: str, tmp_path: Path) -> None:
    result = run(s3logfs_command("cat", "some-bucket/logs/", "--endpoint-url", endpoint, "--timeout", "3",
                                 "--cache-dir", str(tmp_path / "cache")), check=False, timeout=60)
    line = _one_line_no_traceback(result)
    assert line.startswith("s3logfs: cannot reach the endpoint") and reason in line, line


def test_cat_of_a_server_gone_mid_run_is_one_line(tmp_path: Path) -> None:
    """The server answers the listing, then goes away before the objects are read."""
    local = LocalS3Server().start()
    try:
        s3 = local.client()
        s3.create_bucket(Bucket="gone-bucket")
        put_all(s3, "gone-bucket", {f"logs/{n:02d}.log": b"x\n" * 10 for n in range(3)})
        local.middleware.faults.clear()
        endpoint = local.endpoint_url
        process = subprocess.Popen(
            s3logfs_command("cat", "gone-bucket/logs/", "--endpoint-url", endpoint, "--timeout", "3",
                            "--prefetch", "0", "--cache-dir", str(tmp_path / "cache")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        local.stop()  # most likely before any GET; the listing may or may not have happened
        out, err = process.communicate(timeout=60)
    finally:
        local.stop()
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if process.returncode == 0:  # it was quicker than the server's stop: nothing to check
        pytest.skip("cat finished before the server stopped")
    assert "cannot reach" in _one_line_no_traceback(result)


@pytest.mark.slow
def test_interrupted_cats_appended_with_resume_give_the_stream_exactly(server: LocalS3Server, s3: Any, bucket: str,
                                                                      tmp_path: Path) -> None:
    """Twenty runs of ``cat -b NAME >> out``, each stopped by Ctrl-C at a random moment, then one to the
    end: ``out`` is the reference stream, byte for byte (no half line, no line twice)."""
    rng = random.Random(19)
    contents = {}
    for number in range(120):  # more than 20 short runs can read: every run is cut short somewhere
        lines = b"".join(f"object {number:03d} line {line:03d} {'x' * rng.randrange(10, 120)}\n".encode()
                         for line in range(rng.randrange(20, 80)))
        if number % 7 == 3:
            lines = lines.rstrip(b"\n")  # the stream adds the newline
        contents[f"logs/{number:03d}.log" + (".gz" if number % 3 == 0 else "")] = (
            gzip.compress(lines) if number % 3 == 0 else lines)
    put_all(s3, bucket, contents)
    out = tmp_path / "out.log"
    command = s3logfs_command("cat", f"{bucket}/logs/", "-b", "resume", "--endpoint-url", server.endpoint_url,
                              "--cache-hours", "0", "--prefetch", "1", "-c", str(tmp_path / "config.ini"))
    server.middleware.latency = 0.1  # each object costs round trips: the runs stop at many places
    stopped_mid_stream = 0
    try:
        for _ in range(20):
            with open(out, "ab") as sink:
                process = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE)
                try:
                    process.wait(timeout=rng.uniform(0.3, 1.2))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGINT)
                    stopped_mid_stream += 1
                _, err = process.communicate(timeout=60)
            assert b"Traceback" not in err, err
            assert process.returncode in (0, 130, -signal.SIGINT), err  # -2: the stop came as it exited
        server.middleware.latency = 0.0
        with open(out, "ab") as sink:
            subprocess.run(command, stdout=sink, stderr=subprocess.PIPE, check=True, timeout=120)
    finally:
        server.middleware.latency = 0.0
    assert stopped_mid_stream >= 5  # the positive control: most runs really were cut short
    assert out.read_bytes() == stream_reference(s3, bucket, sorted(contents))


def test_bookmarks_set_refuses_another_sources_name_and_leaves_the_file_alone(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    original = "# mine\n[options]\ncache_hours = 3\n\n[bookmarks]\nmine = s3://demo-logs/s3-access/ s3-access/k@10\n"
    config.write_text(original)
    result = run(s3logfs_command("bookmarks", "set", "mine", "demo-logs/alb/", "-c", str(config)), check=False)
    line = _one_line_no_traceback(result)
    assert "s3://demo-logs/s3-access/" in line and "--force" in line, line
    assert config.read_text() == original
    run(s3logfs_command("bookmarks", "set", "mine", "demo-logs/alb/", "alb/k@5", "--force", "-c", str(config)))
    assert "mine = s3://demo-logs/alb/ alb/k@5\n" in config.read_text()
    assert config.read_text().startswith("# mine\n[options]\ncache_hours = 3\n")


def test_bookmarks_list_says_when_there_are_none_and_shows_what_it_cannot_read(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    empty = run(s3logfs_command("bookmarks", "list", "-c", str(config)))
    assert empty.stdout == b"" and b"no bookmarks in" in empty.stderr
    config.write_text("[bookmarks]\nok = s3://b/p/ p/k@3\nodd = not a place\n")
    listed = run(s3logfs_command("bookmarks", "list", "-c", str(config))).stdout.decode()
    assert listed.splitlines()[0].startswith("ok\ts3://b/p/\tp/k@3")
    assert listed.splitlines()[1] == "odd\t(not a bookmark s3logfs can read; left as it is)\tnot a place"


@pytest.mark.parametrize("action", [["get"], ["rm"], ["set"]])
def test_bookmark_commands_refuse_a_bad_name_with_the_same_words(action: list[str], tmp_path: Path) -> None:
    extra = ["demo-logs/alb/"] if action == ["set"] else []
    result = run(s3logfs_command("bookmarks", *action, "bad/name", *extra, "-c", str(tmp_path / "c.ini")),
                 check=False)
    assert _one_line_no_traceback(result).startswith("s3logfs: bad bookmark name 'bad/name'")


def test_cat_says_when_a_bookmark_name_is_new(server: LocalS3Server, s3: Any, bucket: str, tmp_path: Path) -> None:
    put_all(s3, bucket, {"logs/a.log": b"a1\n"})
    command = s3logfs_command("cat", f"{bucket}/logs/", "-b", "nosuchname", "--endpoint-url", server.endpoint_url,
                              "--cache-dir", str(tmp_path / "cache"), "-c", str(tmp_path / "config.ini"))
    first = run(command)
    assert b"new bookmark nosuchname, starting at the beginning" in first.stderr and first.stdout == b"a1\n"
    again = run(command)
    assert b"new bookmark" not in again.stderr and again.stdout == b""


def test_cache_clear_empties_every_kind_of_cache_it_names(server: LocalS3Server, s3: Any, bucket: str,
                                                          tmp_path: Path) -> None:
    put_all(s3, bucket, {"logs/a.log": b'{"a":1}{"a":2}\n'})
    cache = tmp_path / "cache"
    for records in ("none", "json"):
        run(s3logfs_command("cat", f"{bucket}/logs/", "--records", records, "--endpoint-url", server.endpoint_url,
                            "--cache-dir", str(cache)))
    cleared = run(s3logfs_command("cache", "clear", "--cache-dir", str(cache))).stdout.decode()
    assert f"removed 1 cache entries from {cache}\n" in cleared
    assert f"removed 1 cache entries from {cache / 'records-json'}\n" in cleared
    assert not [path for path in cache.rglob("*") if path.is_file() and len(path.name) == 64]


@pytest.mark.parametrize("command", [["cat", "b/p/"], ["cache", "lookup", "b/p/"]])
def test_an_unusable_cache_dir_is_one_line(command: list[str]) -> None:
    result = run(s3logfs_command(*command, "--cache-dir", "/proc/nope", "--endpoint-url", "http://127.0.0.1:1"),
                 check=False)
    assert "cannot use cache directory /proc/nope" in _one_line_no_traceback(result)
    cleared = run(s3logfs_command("cache", "clear", "--cache-dir", "/proc/nope"))
    assert cleared.stdout == b"no cache at /proc/nope: nothing to remove\n" and cleared.stderr == b""


def test_cat_of_an_empty_prefix_says_so(server: LocalS3Server, bucket: str, tmp_path: Path) -> None:
    result = run(s3logfs_command("cat", f"{bucket}/nothing-yet/", "--endpoint-url", server.endpoint_url,
                                 "--cache-dir", str(tmp_path / "cache")))
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [f"s3logfs: nothing under s3://{bucket}/nothing-yet/",
                                                   "Bookmark: :0"]
