"""``s3logfs cat``, ``cache lookup`` and ``LogStream``: s3tail's workflow without FUSE, against the
local S3 server.

The bucket holds :data:`helpers.CAT_LOGS` (the ``logs`` fixture); ``cat`` runs the real command.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from s3logfs import LogStream, S3LogFSError
from s3logfs.devtools.localserver import Fault, LocalS3Server

from helpers import CAT_LOGS, break_object, put_all, run, s3logfs_command, stream_reference, three_objects


def test_key_line_resumes_after_that_line_of_the_next_key(cat: Any, logs: bytes) -> None:
    """s3tail's README: ``s3tail --bookmark KEY:LINE``, line LINE+1 of the first key after KEY."""
    result = cat("-b", "logs/2016-08-04-00-15-10-A:2")
    assert result.stdout == b"b3 second member\nc1\nc2 unterminated\nd1\n"
    assert cat("-b", "logs/2016-08-04-00-15-10-A:0").stdout == logs[len(b"a1\na2\na3\n"):]
    assert cat("-b", ":1").stdout == logs[len(b"a1\n"):]
    assert cat("-b", "logs/2016-08-04-00-30-10-D.gz:0").stdout == b""
    assert cat("-b", "12").stdout == logs[12:]


def test_a_named_bookmark_picks_up_where_the_last_run_stopped(cat: Any, logs: bytes, s3: Any,
                                                              bucket: str, tmp_path: Path) -> None:
    first = cat("-b", "nightly")
    assert first.stdout == logs
    assert cat("-b", "nightly").stdout == b""
    s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-35-10-E", Body=b"e1\ne2\n")
    assert cat("-b", "nightly").stdout == b"e1\ne2\n"
    listed = run(s3logfs_command("bookmarks", "list"), text=True).stdout
    assert listed == f"nightly\ts3://{bucket}/logs/\tlogs/2016-08-04-00-35-10-E@6\n"


def test_cat_into_head_exits_quietly_and_resumes_after_what_the_pipe_gave(cat: Any, logs: bytes,
                                                                           server: LocalS3Server,
                                                                           bucket: str, tmp_path: Path) -> None:
    many = {f"big/{n:03d}.log": b"".join(b"line %03d-%05d\n" % (n, i) for i in range(2000)) for n in range(30)}
    put_all(server.client(), bucket, many)
    expected = b"".join(many[key] for key in sorted(many))
    command = " ".join(s3logfs_command("cat", f"{bucket}/big/", "--endpoint-url", server.endpoint_url,
                                       "--cache-dir", str(tmp_path / "cache"), "-b", "piped"))
    piped = run(["bash", "-c", f"set -o pipefail; {command} | head -n 3"])
    assert piped.stdout == expected[: len(b"line 000-00000\n") * 3]
    assert piped.stderr.decode().splitlines()[-1].startswith("Bookmark: :")  # inside the first key
    assert "Traceback" not in piped.stderr.decode()
    rest = cat("-b", "piped", prefix="big/").stdout
    taken = len(expected) - len(rest)
    assert expected[taken:] == rest and (taken == 0 or expected[taken - 1 : taken] == b"\n")
    assert taken >= 3 * len(b"line 000-00000\n")
    assert taken < len(expected) // 2  # head took a block, not the whole stream: the rest comes next time


def test_follow_prints_new_objects(cat: Any, logs: bytes, s3: Any, bucket: str, server: LocalS3Server,
                                   tmp_path: Path) -> None:
    process = subprocess.Popen(s3logfs_command("cat", f"{bucket}/logs/", "--endpoint-url", server.endpoint_url,
                                               "--cache-dir", str(tmp_path / "cache"), "-f", "--poll-interval", "1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        received = b""
        while len(received) < len(logs):
            received += os.read(process.stdout.fileno(), 65536)
        assert received == logs
        s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-35-10-E", Body=b"new line\n")
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(os.read(process.stdout.fileno(), 65536)), daemon=True)
        reader.start()
        reader.join(timeout=1 + 2)
        assert got == [b"new line\n"]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert stderr.decode().splitlines()[-1] == "Bookmark: logs/2016-08-04-00-30-10-D.gz:1"
    assert process.returncode == 143


def test_cache_lookup_in_s3tail_form(cat: Any, logs: bytes, server: LocalS3Server, bucket: str, s3: Any,
                                     tmp_path: Path) -> None:
    cat()  # every key cached
    s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-45-10-Z", Body=b"not read yet\n")
    lookup = run(s3logfs_command("cache", "lookup", f"s3://{bucket}/logs/", "--endpoint-url",
                                 server.endpoint_url, "--cache-dir", str(tmp_path / "cache")), text=True).stdout
    lines = lookup.splitlines()
    assert lines[0::2] == [f"{bucket}/{key}" for key in [*sorted(CAT_LOGS), "logs/2016-08-04-00-45-10-Z"]]
    assert lines[-1] == "  => NOT IN CACHE"
    for key, line in zip(sorted(CAT_LOGS), lines[1:-1:2]):
        path = Path(line.removeprefix("  => "))
        assert line.startswith("  => ") and path.parent.parent == tmp_path / "cache"
        assert path.read_bytes() == (gzip.decompress(CAT_LOGS[key]) if key.endswith(".gz") else CAT_LOGS[key])


def test_an_s3tailrc_is_honoured(server: LocalS3Server, bucket: str, logs: bytes, tmp_path: Path) -> None:
    home = tmp_path / "s3tail-home"
    home.mkdir()
    cache = tmp_path / "s3tail-cache"
    rc = f"[options]\ncache_path = {cache}\ncache_hours = 2\nlog_level = error\n\n[bookmarks]\nold = logs/2016-08-04-00-20-10-B.gz:1\n"
    (home / ".s3tailrc").write_text(rc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    result = run(s3logfs_command("cat", f"{bucket}/logs/", "--endpoint-url", server.endpoint_url, "-b", "old"),
                 env=env)
    assert result.stdout == b"c2 unterminated\nd1\n"
    assert any(cache.rglob("*")), "s3tail's cache_path was not used"
    saved = (home / ".s3tailrc").read_text()
    # read to the end (D's one line): stays in s3tail's bare form; nothing else moves
    assert saved == rc.replace("logs/2016-08-04-00-20-10-B.gz:1", "logs/2016-08-04-00-25-10-C:1")
    assert not (home / ".config").exists()


def test_cat_needs_no_fuse(server: LocalS3Server, bucket: str, logs: bytes, tmp_path: Path) -> None:
    blocker = tmp_path / "nofuse"
    blocker.mkdir()
    (blocker / "mfusepy.py").write_text("raise ImportError('no libfuse on this machine')\n")
    (blocker / "fuse.py").write_text("raise ImportError('no libfuse on this machine')\n")
    env = dict(os.environ, PYTHONPATH=f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = run(s3logfs_command("cat", f"{bucket}/logs/", "--endpoint-url", server.endpoint_url,
                                 "--cache-dir", str(tmp_path / "cache")), env=env)
    assert result.stdout == logs
    script = textwrap.dedent(f"""
        import sys

        class Watch:
            tried = []

            def find_spec(self, name, path=None, target=None):
                self.tried.append(name)
                return None

        sys.meta_path.insert(0, Watch())
        from s3logfs import LogStream
        lines = list(LogStream({bucket!r}, "logs/", endpoint_url={server.endpoint_url!r}, cache_dir={str(tmp_path)!r}))
        assert "s3logfs.engine.cursor" in Watch.tried  # the watch sees imports
        assert not {{"mfusepy", "fuse", "s3logfs.fs.fuse_ops", "s3logfs.fs.daemon"}} & set(Watch.tried), Watch.tried
        print(len(lines))
    """)
    assert run([sys.executable, "-c", script], env=env, text=True).stdout == "9\n"


def test_cold_cat_reads_ahead_in_parallel(cat: Any, s3: Any, bucket: str, server: LocalS3Server) -> None:
    contents = {f"small/{n:04d}.log": f"small object {n}\n".encode() * 50 for n in range(200)}
    put_all(s3, bucket, contents)
    expected = stream_reference(s3, bucket, sorted(contents))
    server.middleware.reset()
    server.middleware.latency = 0.03  # as real S3 answers: round trips, not CPU, dominate
    try:
        assert cat("--prefetch", "8", prefix="small/").stdout == expected
    finally:
        server.middleware.latency = 0.0
    assert server.counters.max_in_flight >= 4


@pytest.mark.parametrize("kind", ["corrupt", "5xx"])
def test_cat_skip_errors_leaves_out_an_object_that_cannot_be_read(
    s3: Any, bucket: str, server: LocalS3Server, faults: list[Fault], tmp_path: Path, kind: str
) -> None:
    expected = three_objects(s3, bucket)
    break_object(kind, s3, bucket, "logs/b.log", faults)
    log_file = tmp_path / "cat.log"
    command = s3logfs_command("cat", f"{bucket}/logs/", "--endpoint-url", server.endpoint_url, "--cache-dir",
                              str(tmp_path / "cache"), "--log-file", str(log_file), "-c", str(tmp_path / "rc"))
    result = run([*command, "--skip-errors"])
    assert result.stdout == expected["logs/a.log"] + expected["logs/c.log"]
    assert b"skipped 1 object" in result.stderr, result.stderr
    skipped = [line for line in log_file.read_text().splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "logs/b.log" in skipped[0]
    failed = run(command, check=False)
    assert failed.returncode != 0 and failed.stdout == expected["logs/a.log"]


# the Python API ------------------------------------------------------------------------


@pytest.fixture
def stream_args(server: LocalS3Server, bucket: str, logs: bytes, tmp_path: Path) -> dict[str, Any]:
    return {"bucket": bucket, "prefix": "logs/", "endpoint_url": server.endpoint_url,
            "cache_dir": tmp_path / "api-cache", "config_file": tmp_path / "api.ini"}


def test_line_numbers_are_per_key_from_one(stream_args: dict[str, Any]) -> None:
    seen: list[tuple[int, str]] = []
    with LogStream(**stream_args, line_handler=lambda num, line: seen.append((num, line))) as stream:
        assert stream.watch() is None
    assert seen == [(1, "a1"), (2, "a2"), (3, "a3"), (1, "b1"), (2, "b2"), (3, "b3 second member"),
                    (1, "c1"), (2, "c2 unterminated"), (1, "d1")]


def test_a_key_handler_skips_keys(stream_args: dict[str, Any]) -> None:
    asked: list[tuple[str, bool]] = []

    def only_plain(key: str, cache_path: str, cached: bool) -> bool:
        asked.append((key, cached))
        assert Path(cache_path).name == Path(cache_path).parent.name + Path(cache_path).name[2:]
        return not key.endswith(".gz")

    with LogStream(**stream_args, key_handler=only_plain) as stream:
        assert list(stream) == ["a1", "a2", "a3", "c1", "c2 unterminated"]
    assert asked == [(key, False) for key in sorted(CAT_LOGS)]
    with LogStream(**stream_args, key_handler=lambda key, path, cached: asked.append((key, cached))) as stream:
        assert list(stream) == []
    assert asked[-4:] == [(key, not key.endswith(".gz")) for key in sorted(CAT_LOGS)]  # skipped keys were never fetched


def test_a_handler_result_stops_watch(stream_args: dict[str, Any]) -> None:
    def find(num: int, line: str) -> str | None:
        return f"found at {num}" if line.startswith("b2") else None

    with LogStream(**stream_args, line_handler=find) as stream:
        assert stream.watch() == "found at 2"
        assert stream.get_bookmark() == "logs/2016-08-04-00-15-10-A:2"
    with LogStream(**stream_args, bookmark="logs/2016-08-04-00-15-10-A:2") as resumed:
        assert list(resumed) == ["b3 second member", "c1", "c2 unterminated", "d1"]


def test_stop_as_a_signal_handler_ends_watch(stream_args: dict[str, Any], s3: Any) -> None:
    lines: list[str] = []
    with LogStream(**stream_args, line_handler=lambda num, line: lines.append(line), follow=True,
                   poll_interval=0.5) as stream:
        previous = signal.signal(signal.SIGUSR1, stream.stop)
        try:
            timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGUSR1))
            timer.start()
            started = time.monotonic()
            assert stream.watch() is None  # returns instead of following forever
            timer.join()
        finally:
            signal.signal(signal.SIGUSR1, previous)
    assert time.monotonic() - started < 60
    assert lines[-1] == "d1"


def test_get_bookmark_round_trips(stream_args: dict[str, Any], s3: Any, bucket: str) -> None:
    taken: list[str] = []
    with LogStream(**stream_args) as stream:
        for line in stream:
            taken.append(line)
            if len(taken) == 5:
                break
        mark = stream.get_bookmark()
    assert mark == "logs/2016-08-04-00-15-10-A:2"
    with LogStream(**stream_args, bookmark=mark) as rest:
        assert taken + list(rest) == ["a1", "a2", "a3", "b1", "b2", "b3 second member", "c1", "c2 unterminated",
                                      "d1"]


def test_a_named_bookmark_is_saved_on_close(stream_args: dict[str, Any], s3: Any, bucket: str) -> None:
    with LogStream(**stream_args, bookmark="api") as stream:
        for number, line in enumerate(stream):
            if number == 6:
                break
    with LogStream(**stream_args, bookmark="api") as again:
        assert list(again) == ["c2 unterminated", "d1"]


def test_iteration_equals_watch(stream_args: dict[str, Any]) -> None:
    watched: list[str] = []
    with LogStream(**stream_args, line_handler=lambda num, line: watched.append(line)) as stream:
        stream.watch()
    with LogStream(**stream_args) as stream:
        assert list(stream) == watched


def test_a_bookmark_after_an_unterminated_line_resumes_cleanly(stream_args: dict[str, Any], cat: Any) -> None:
    """C ends without a newline (the stream adds one): stopping after it resumes at D, with no blank line."""
    with LogStream(**stream_args, bookmark="api") as stream:
        for line in stream:
            if line == "c2 unterminated":
                break
    assert cat("-b", "api", "-c", str(stream_args["config_file"])).stdout == b"d1\n"


def test_a_key_handler_skips_new_keys_unfetched(stream_args: dict[str, Any], s3: Any, bucket: str,
                                                server: LocalS3Server) -> None:
    """While following, a new key that key_handler refuses is never downloaded."""
    asked: list[str] = []
    lines: list[str] = []
    with LogStream(**stream_args, follow=True, poll_interval=0.5) as stream:
        def take(num: int, line: str) -> str | None:
            lines.append(line)
            if line == "d1":
                s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-35-10-E.gz", Body=gzip.compress(b"e1\n"))
                s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-40-10-F", Body=b"f1\n")
            return "done" if line == "f1" else None

        stream.line_handler = take
        stream.key_handler = lambda key, path, cached: asked.append(key) or key != "logs/2016-08-04-00-35-10-E.gz"
        assert stream.watch() == "done"
    assert "logs/2016-08-04-00-35-10-E.gz" in asked
    assert lines[-2:] == ["d1", "f1"]
    fetched = {request.key for request in server.counters.requests if request.kind == "get"}
    assert "logs/2016-08-04-00-40-10-F" in fetched  # the counter sees GETs by key
    assert "logs/2016-08-04-00-35-10-E.gz" not in fetched


def test_log_stream_skips_what_it_cannot_read(stream_args: dict[str, Any], s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="logs/2016-08-04-00-22-00-BROKEN.gz", Body=b"\x1f\x8b\x08\x00not gzip at all")
    with LogStream(**stream_args) as stream, pytest.raises(S3LogFSError):
        list(stream)
    with LogStream(**stream_args, skip_errors=True) as stream:
        assert list(stream) == ["a1", "a2", "a3", "b1", "b2", "b3 second member", "c1", "c2 unterminated", "d1"]
        assert stream._engine is not None and stream._engine.catalog.stats.snapshot()["skips"] == 1
