"""Bad options are refused before anything is mounted (and before the FUSE check): one line on
stderr, a non-zero exit, no traceback, no mount left (README, "Semantics and limits", security).

These run ``s3logfs mount`` against the local S3 server, but each is refused while its options are
read, so they need no FUSE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import daemon_pid, is_mounted, refused_in_one_line, run, s3logfs_command

BAD_OPTIONS = [
    (["--prefetch", "-1"], "--prefetch"),
    (["--prefetch", "100000"], "--prefetch"),
    (["--prefetch", "many"], "--prefetch"),
    (["--poll-interval", "-5"], "--poll-interval"),
    (["--poll-interval", "nan"], "--poll-interval"),
    (["--poll-interval", "1e12"], "--poll-interval"),
    (["--poll-interval", "0.001"], "--poll-interval"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-1"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
    (["--cache-hours", "-1"], "--cache-hours"),
    (["--cache-hours", "nan"], "--cache-hours"),
    (["--cache-max-size", "0"], "--cache-max-size"),
    (["--cache-max-size", "-5M"], "size"),
    (["--cache-max-size", "12 parsecs"], "size"),
    (["--cache-max-size", "99999999999T"], "--cache-max-size"),
    (["--since", "yesterday-ish"], "yesterday-ish"),
    (["--records", "xml"], "--records"),
]


@pytest.mark.parametrize(("extra", "named"), BAD_OPTIONS, ids=[" ".join(extra) for extra, _ in BAD_OPTIONS])
def test_bad_numbers_are_refused_in_one_line(
    server: LocalS3Server, bucket: str, tmp_path: Path, extra: list[str], named: str
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = run(s3logfs_command("mount", bucket, str(mountpoint), "--endpoint-url", server.endpoint_url,
                                 "--cache-dir", str(tmp_path / "cache"), *extra), check=False)
    assert named in refused_in_one_line(result)
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize(("option", "value"), [("prefetch", "-2"), ("poll_interval", "nan"), ("timeout", "0"),
                                               ("cache_max_size", "0"), ("cache_hours", "-3"), ("prefetch", "lots")])
def test_bad_numbers_in_the_config_file_are_refused_in_one_line(
    server: LocalS3Server, bucket: str, tmp_path: Path, option: str, value: str
) -> None:
    config = tmp_path / "config.ini"
    config.write_text(f"[options]\n{option} = {value}\n")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = run(s3logfs_command("mount", bucket, str(mountpoint), "--endpoint-url", server.endpoint_url,
                                 "--cache-dir", str(tmp_path / "cache"), "-c", str(config)), check=False)
    assert option.replace("_", "-") in refused_in_one_line(result) or option in result.stderr.decode()
    assert not is_mounted(mountpoint)


@pytest.mark.parametrize("arguments", [
    ["--since", "yesterdayish"],
    ["--until", "2026-13-01"],
    ["--since", "1h", "--until", "2h"],
    ["--since", "2026-11-02", "--until", "2026-11-01T23:00Z"],
])
def test_bad_times_give_one_line_and_no_mount(
    server: LocalS3Server, bucket: str, tmp_path: Path, arguments: list[str]
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = run(s3logfs_command("mount", bucket, str(mountpoint), "--endpoint-url", server.endpoint_url,
                                 "--cache-dir", str(tmp_path / "cache"), *arguments), check=False, text=True)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3logfs: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not is_mounted(mountpoint) and daemon_pid(mountpoint) is None
    assert not any(mountpoint.iterdir())


def test_records_with_raw_is_a_one_line_error(bucket: str, tmp_path: Path, server: LocalS3Server) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = run(
        s3logfs_command("mount", bucket, str(mountpoint), "--raw", "--records", "json",
                        "--endpoint-url", server.endpoint_url),
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.decode().strip().count("\n") == 0 and "--raw" in result.stderr.decode()
