"""Careless input gets one clear line that says what to write, never a traceback (no server needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import free_port, run, s3logfs_command

DEAD = f"http://127.0.0.1:{free_port()}"


def _lines(result: subprocess.CompletedProcess) -> list[str]:
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


def _refused(*args: str) -> str:
    result = run(s3logfs_command(*args), check=False, timeout=60)
    lines = _lines(result)
    assert result.returncode != 0 and len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("value", ["-5m", "-1h30m"])
def test_a_negative_age_is_read_as_an_age(value: str, tmp_path: Path) -> None:
    """``--since -5m`` would be an option to argparse; it means five minutes ago, as ``5m`` does."""
    line = _refused("cat", "b/p/", "--since", value, "--endpoint-url", DEAD, "--timeout", "1",
                    "--cache-dir", str(tmp_path / "cache"))
    assert line.startswith("s3logfs: cannot reach the endpoint"), line  # past the options: the window parsed


def test_a_huge_cache_size_says_the_upper_bound() -> None:
    line = _refused("cat", "b/p/", "--cache-max-size", "9999999T")
    assert "expected at most 1E" in line and "1M or more" not in line, line


@pytest.mark.parametrize(("text", "where"), [
    ("[options]\ncache_hours = 3\nthis is not ini\n", "line 3: not a 'name = value' line"),
    ("x = 1\n", "line 1: a setting before any [section] header"),
    ("[options]\ncache_hours = 3\ncache_hours = 4\n", "line 3: 'cache_hours' is set twice in [options]"),
])
def test_a_config_error_names_the_file_and_the_line(text: str, where: str, tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text(text)
    line = _refused("cat", "b/p/", "-c", str(config))
    assert line.startswith(f"s3logfs: cannot read config file {config}, {where}"), line


def test_an_unknown_config_option_is_a_warning_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text("[options]\ncache_hours = 3\ncache_hourz = 4\n")
    result = run(s3logfs_command("cat", "b/p/", "-c", str(config), "--endpoint-url", DEAD, "--timeout", "1",
                                 "--cache-dir", str(tmp_path / "cache")), check=False, timeout=60)
    lines = _lines(result)
    assert lines[0] == f"s3logfs: warning: unknown option 'cache_hourz' in [options] of {config} (ignored)"
    assert len(lines) == 2 and "cache_hours" not in lines[0].replace("cache_hourz", "")


def test_a_log_file_in_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "dir" / "x.log"
    line = _refused("cat", "b/p/", "--log-file", str(target), "--endpoint-url", DEAD)
    assert line == f"s3logfs: cannot log to {target}: the directory {target.parent} does not exist"
    assert not (tmp_path / "missing").exists()
