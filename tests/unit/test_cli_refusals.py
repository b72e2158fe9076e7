"""Commands refused in one line with no server and no FUSE: a bad source, ``umount`` of what is not
mounted, bad bookmark names and values."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import refuse, refused_in_one_line, run, s3logfs_command


def test_umount_of_a_directory_that_is_not_mounted(empty_dir: Path) -> None:
    line = refuse(s3logfs_command("umount", str(empty_dir)), empty_dir)
    assert "not mounted" in line


def test_bad_source(empty_dir: Path, tmp_path: Path) -> None:
    line = refuse(s3logfs_command("mount", "s3://", str(empty_dir)), empty_dir)
    assert "no bucket" in line


@pytest.mark.parametrize(("arguments", "named"), [
    (["set", "bad name", "s3://b/p"], "bad bookmark name"),
    (["set", "a/b", "s3://b/p"], "bad bookmark name"),
    (["set", "x" * 300, "s3://b/p"], "bad bookmark name"),
    (["set", "ok", "s3://b/p", "garbage"], "not a bookmark"),
    (["set", "ok", "s3://b/p", "key:-1"], "not a bookmark"),
    (["set", "ok", "s3://b/p", "key@12ab"], "not a bookmark"),
    (["set", "ok", "s3://b/p", "123"], "offset"),
    (["rm", "nothing-here"], "no bookmark named"),
])
def test_bad_bookmark_names_and_values_are_refused_in_one_line(
    tmp_path: Path, arguments: list[str], named: str
) -> None:
    config = tmp_path / "config.ini"
    result = run(s3logfs_command("bookmarks", "-c", str(config), *arguments), check=False)
    assert named in refused_in_one_line(result)
    assert not config.exists() or "ok" not in config.read_text()
